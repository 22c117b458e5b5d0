//! What reached the model: the request bodies the OpenAI fake recorded, and the tool
//! results they carried back.

use pincer_fakes::openai::{OpenAiFake, Transport};
use serde_json::Value;

/// The bodies of the model requests (`/v1/responses` over SSE or WebSocket, warm-ups
/// left out) the fake got, in order.
pub fn requests(fake: &OpenAiFake) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| matches!(r.transport, Transport::Sse | Transport::Ws) && !r.warmup)
        .filter(|r| r.body.get("model").is_some())
        .map(|r| r.body)
        .collect()
}

/// The `function_call_output` items of one request body, in order.
pub fn outputs(body: &Value) -> Vec<String> {
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "function_call_output")
        .filter_map(|i| i["output"].as_str().map(str::to_string))
        .collect()
}

/// Every `function_call_output` of every model request so far, in order.
pub fn all_outputs(fake: &OpenAiFake) -> Vec<String> {
    requests(fake).iter().flat_map(outputs).collect()
}
