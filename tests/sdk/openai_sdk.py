"""The official `openai` Python SDK against the real gateway (driven by tests/openai_sdk.rs,
which starts the gateway on the OpenAI fake and checks what reached the fake).

Usage: python3 tests/sdk/openai_sdk.py BASE_URL TOKEN
Prints one JSON object a line, `{"check": name, ...}`; exits non-zero on a failed check.
"""

import json
import sys

import openai


def out(check, **fields):
    print(json.dumps({"check": check, **fields}), flush=True)


def main():
    base, token = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)

    # 1. Stateless: the request's history and system message are the context.
    r = client.chat.completions.create(
        model="pincer:main",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "my name is Ada"},
            {"role": "assistant", "content": "hello Ada"},
            {"role": "user", "content": "what is my name?"},
        ],
        max_tokens=50,
        temperature=0.3,
    )
    out("stateless", content=r.choices[0].message.content,
        finish=r.choices[0].finish_reason, usage=r.usage.model_dump())

    # 2. n=2 cannot be honoured: a 400 naming the field.
    try:
        client.chat.completions.create(
            model="pincer:main", messages=[{"role": "user", "content": "hi"}], n=2)
        out("n2", status=200)
    except openai.BadRequestError as e:
        out("n2", status=e.status_code, param=e.body.get("param"), code=e.code)

    # 3. A client tool round trip, stateless.
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    ask = [{"role": "user", "content": "weather in Paris?"}]
    r = client.chat.completions.create(model="pincer:main", messages=ask, tools=tools)
    call = r.choices[0].message.tool_calls[0]
    out("tool_call", finish=r.choices[0].finish_reason, name=call.function.name,
        arguments=call.function.arguments)
    follow = ask + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 C"},
    ]
    r = client.chat.completions.create(model="pincer:main", messages=follow, tools=tools)
    out("tool_result", content=r.choices[0].message.content,
        finish=r.choices[0].finish_reason)

    # 4. Streamed chat with the usage chunk.
    text, usage = "", None
    for chunk in client.chat.completions.create(
            model="pincer:main", messages=[{"role": "user", "content": "stream me"}],
            stream=True, stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage.model_dump()
    out("stream", content=text, usage=usage)

    # 5. The Responses API, not streamed and streamed.
    r = client.responses.create(model="pincer:main", input="hello responses",
                                instructions="Be brief.", max_output_tokens=40)
    out("responses", text=r.output_text, status=r.status, usage=r.usage.model_dump())
    types, deltas = [], ""
    for event in client.responses.create(model="pincer:main", input="stream responses",
                                         stream=True):
        types.append(event.type)
        if event.type == "response.output_text.delta":
            deltas += event.delta
    out("responses_stream", types=types, text=deltas)

    # 6. One model, and a model that does not exist.
    m = client.models.retrieve("pincer:main")
    try:
        client.models.retrieve("pincer:nope")
        missing = 200
    except openai.NotFoundError as e:
        missing = e.status_code
    out("model", id=m.id, missing=missing)

    # 7. A reply cut by the output cap says so: `length`, and an incomplete response.
    r = client.chat.completions.create(
        model="pincer:main", messages=[{"role": "user", "content": "say a lot please"}],
        max_tokens=2)
    out("cut", content=r.choices[0].message.content, finish=r.choices[0].finish_reason)
    r = client.responses.create(model="pincer:main", input="say a lot please",
                                max_output_tokens=2)
    out("cut_responses", text=r.output_text, status=r.status,
        reason=r.incomplete_details.reason if r.incomplete_details else None)


if __name__ == "__main__":
    main()
