//! A Chat Completions request read into what a turn is asked: the new user message, the
//! caller's history, system messages, options and tools ([`Caller`]), and whether the
//! request is stateless. Every field is either honoured or refused with a 400 naming it
//! (`param`): nothing is silently ignored.

use serde_json::{Map, Value};

use super::super::ApiError;
use pincer_config::Config;
use pincer_core::Role;
use pincer_providers::{Caller, CallerItem, Options, ResponseFormat, ToolChoice, ToolSpec};

/// What a request asks.
#[derive(Debug)]
pub(super) struct Asked {
    /// The agent.
    pub(super) agent: String,
    /// The model as the caller named it (echoed back).
    pub(super) model: String,
    /// The new user message.
    pub(super) text: String,
    /// Whether the reply is streamed.
    pub(super) stream: bool,
    /// Whether a streamed reply ends with a usage chunk.
    pub(super) include_usage: bool,
    /// The stable session named by `x-pincer-session` or `user`; `None`: stateless.
    pub(super) session: Option<String>,
    /// History, system messages, options, tools.
    pub(super) caller: Caller,
}

/// Fields read for how the request travels or what it is about, not what the model does:
/// accepted and not passed on.
const TRAVEL: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "user",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// The agent a request names: the `x-pincer-agent` header, else `model` (`pincer:<agent>`
/// or `<agent>`); 404 `model_not_found` when there is no such agent.
pub(super) fn agent(
    config: &Config,
    body: &Value,
    header: Option<&str>,
) -> Result<(String, String), ApiError> {
    let model = body.get("model").and_then(Value::as_str);
    let (agent, model) = match (header, model) {
        (Some(agent), model) => (agent, model.unwrap_or(agent)),
        (None, Some(model)) => (model.strip_prefix("pincer:").unwrap_or(model), model),
        (None, None) => {
            return Err(ApiError::param(
                "model",
                "invalid_value",
                "`model` is required (pincer:<agent> or <agent>), or the header x-pincer-agent",
            ));
        }
    };
    if !config.agents.contains_key(agent) {
        return Err(ApiError::not_found(
            format!("The model `{model}` does not exist: no agent `{agent}` (see GET /v1/models)"),
            "model_not_found",
        ));
    }
    Ok((agent.to_string(), model.to_string()))
}

/// Reads a Chat Completions body.
pub(super) fn chat(
    config: &Config,
    body: &Value,
    agent_header: Option<&str>,
    session_header: Option<String>,
) -> Result<Asked, ApiError> {
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let (agent, model) = agent(config, body, agent_header)?;
    let options = options(fields)?;
    let tools = tools(fields.get("tools"))?;
    check_refused(fields)?;
    let messages = fields
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::param(
                "messages",
                "invalid_value",
                "`messages` must be a non-empty array",
            )
        })?;
    let conversation = messages_of(messages)?;
    let session = session_header
        .or_else(|| {
            fields
                .get("user")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty());
    if session.as_ref().is_some_and(|s| s.len() > 256) {
        return Err(ApiError::bad_request(
            "the session id is longer than 256 bytes",
        ));
    }
    let caller = conversation.into_caller(session.is_none(), options, tools)?;
    check_providers(config, &agent, &caller.options)?;
    let text = caller_text(&caller, messages)?;
    Ok(Asked {
        agent,
        model,
        text,
        stream: fields
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        session,
        caller,
    })
}

/// The new user message's text (kept apart from the caller's items by [`Conversation`]).
fn caller_text(_caller: &Caller, messages: &[Value]) -> Result<String, ApiError> {
    let (i, last) = messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m.get("role").and_then(Value::as_str) == Some("user"))
        .ok_or_else(|| {
            ApiError::param(
                "messages",
                "invalid_value",
                "`messages` has no message with role `user`",
            )
        })?;
    text(last.get("content"), i)
}

/// A request's messages sorted by what the turn does with them.
#[derive(Debug, Default)]
pub(super) struct Conversation {
    /// System and developer messages, in order.
    pub(super) system: Vec<String>,
    /// Items before the last user message.
    pub(super) before: Vec<CallerItem>,
    /// Items after it: the assistant's calls and the tools' results continuing a turn.
    pub(super) after: Vec<CallerItem>,
}

impl Conversation {
    /// The caller's part of the turn: a stateless request keeps everything; a stateful one
    /// offers `before` as the seed of a session without history, and cannot continue a
    /// turn (its session keeps the conversation).
    pub(super) fn into_caller(
        self,
        stateless: bool,
        options: Options,
        tools: Vec<ToolSpec>,
    ) -> Result<Caller, ApiError> {
        if !stateless && !self.after.is_empty() {
            return Err(ApiError::param(
                "messages",
                "invalid_value",
                "messages after the last user message (tool results, assistant turns) continue a turn only in a stateless request: send the whole exchange without `user` and x-pincer-session",
            ));
        }
        Ok(Caller {
            stateless,
            system: (!self.system.is_empty()).then(|| self.system.join("\n\n")),
            history: self.before,
            after: self.after,
            options,
            tools,
        })
    }
}

/// Sorts `messages` (OpenAI's roles) into a [`Conversation`].
pub(super) fn messages_of(messages: &[Value]) -> Result<Conversation, ApiError> {
    let last_user = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    let mut out = Conversation::default();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let side = if Some(i) < last_user {
            &mut out.before
        } else {
            &mut out.after
        };
        match role {
            "system" | "developer" => out.system.push(text(m.get("content"), i)?),
            // The new turn: read by `caller_text`; its parts are checked here too.
            "user" if Some(i) == last_user => {
                text(m.get("content"), i)?;
            }
            "user" => side.push(CallerItem::Message {
                role: Role::User,
                content: text(m.get("content"), i)?,
            }),
            "assistant" => {
                let content = match m.get("content") {
                    None | Some(Value::Null) => String::new(),
                    content => text(content, i)?,
                };
                if !content.is_empty() {
                    side.push(CallerItem::Message {
                        role: Role::Assistant,
                        content,
                    });
                }
                for (j, call) in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let at = format!("messages[{i}].tool_calls[{j}]");
                    let field = |name: &str| {
                        call.pointer(name)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                ApiError::param(
                                    &at,
                                    "invalid_value",
                                    format!("`{at}` has no `{}`", &name[1..]),
                                )
                            })
                    };
                    side.push(CallerItem::ToolCall {
                        call_id: field("/id")?,
                        name: field("/function/name")?,
                        arguments: field("/function/arguments")?,
                    });
                }
            }
            "tool" => {
                let call_id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        let at = format!("messages[{i}].tool_call_id");
                        ApiError::param(
                            &at,
                            "invalid_value",
                            format!("`{at}` is required for role `tool`"),
                        )
                    })?
                    .to_string();
                side.push(CallerItem::ToolOutput {
                    call_id,
                    output: text(m.get("content"), i)?,
                });
            }
            "function" => {
                return Err(ApiError::param(
                    format!("messages[{i}].role"),
                    "unsupported_parameter",
                    "role `function` (the deprecated function calling) is not supported: use `tools` and role `tool`",
                ));
            }
            other => {
                return Err(ApiError::param(
                    format!("messages[{i}].role"),
                    "invalid_value",
                    format!("unknown role `{other}` (system, developer, user, assistant, tool)"),
                ));
            }
        }
    }
    Ok(out)
}

/// A message's text: a string, or text parts; any other part (an image, audio, a file)
/// is refused: the gateway passes text only.
fn text(content: Option<&Value>, i: usize) -> Result<String, ApiError> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                match (kind, part.get("text").and_then(Value::as_str)) {
                    ("text", Some(t)) => text.push(t),
                    _ => {
                        return Err(ApiError::param(
                            format!("messages[{i}].content[{j}]"),
                            "unsupported_parameter",
                            format!(
                                "content parts of type `{kind}` are not supported: only `text` parts reach the model"
                            ),
                        ));
                    }
                }
            }
            Ok(text.join("\n"))
        }
        _ => Err(ApiError::param(
            format!("messages[{i}].content"),
            "invalid_value",
            format!("`messages[{i}].content` must be a string or an array of text parts"),
        )),
    }
}

/// The sampling, format and tool-choice fields.
pub(super) fn options(fields: &Map<String, Value>) -> Result<Options, ApiError> {
    let number = |name: &str, max: f64| -> Result<Option<f64>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| (0.0..=max).contains(x))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::param(
                        name,
                        "invalid_value",
                        format!("`{name}` must be a number from 0 to {max}"),
                    )
                }),
        }
    };
    let max_tokens = match (
        fields.get("max_completion_tokens"),
        fields.get("max_tokens"),
    ) {
        (Some(v), _) if !v.is_null() => Some(("max_completion_tokens", v)),
        (_, Some(v)) if !v.is_null() => Some(("max_tokens", v)),
        _ => None,
    };
    let max_tokens = match max_tokens {
        Some((name, v)) => Some(
            v.as_u64()
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::param(
                        name,
                        "invalid_value",
                        format!("`{name}` must be a positive integer"),
                    )
                })?,
        ),
        None => None,
    };
    let stop = match fields.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => {
            return Err(ApiError::param(
                "stop",
                "invalid_value",
                "`stop` must be a string or up to 4 strings",
            ));
        }
    };
    let seed = match fields.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::param("seed", "invalid_value", "`seed` must be an integer")
        })?),
    };
    Ok(Options {
        max_tokens,
        temperature: number("temperature", 2.0)?,
        top_p: number("top_p", 1.0)?,
        stop,
        response_format: response_format(fields.get("response_format"))?,
        seed,
        tool_choice: tool_choice(fields.get("tool_choice"))?,
    })
}

fn response_format(format: Option<&Value>) -> Result<Option<ResponseFormat>, ApiError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let spec = format.get("json_schema");
            let name = spec.and_then(|s| s.get("name")).and_then(Value::as_str);
            let (Some(spec), Some(name)) = (spec, name) else {
                return Err(ApiError::param(
                    "response_format.json_schema",
                    "invalid_value",
                    "`response_format.json_schema` needs a `name` and a `schema`",
                ));
            };
            Ok(Some(ResponseFormat::JsonSchema {
                name: name.to_string(),
                schema: spec
                    .get("schema")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new())),
                strict: spec.get("strict").and_then(Value::as_bool),
            }))
        }
        _ => Err(ApiError::param(
            "response_format",
            "invalid_value",
            "`response_format.type` must be `text`, `json_object` or `json_schema`",
        )),
    }
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice>, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(ApiError::param(
                "tool_choice",
                "invalid_value",
                "`tool_choice` must be auto, none, required or a function",
            )),
        },
        Some(v) => v
            .pointer("/function/name")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
            .map(|name| Some(ToolChoice::Function(name.to_string())))
            .ok_or_else(|| {
                ApiError::param(
                    "tool_choice",
                    "invalid_value",
                    "`tool_choice` names no function",
                )
            }),
    }
}

/// The caller's tools (Chat Completions' `{"type":"function","function":{...}}`).
pub(super) fn tools(tools: Option<&Value>) -> Result<Vec<ToolSpec>, ApiError> {
    let Some(tools) = tools.filter(|t| !t.is_null()) else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| ApiError::param("tools", "invalid_value", "`tools` must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = format!("tools[{i}]");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(ApiError::param(
                    &at,
                    "unsupported_parameter",
                    format!("`{at}`: only tools of type `function` are supported"),
                ));
            }
            // Chat Completions nests the function; the Responses API does not.
            let function = tool.get("function").unwrap_or(tool);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ApiError::param(&at, "invalid_value", format!("`{at}` has no function name"))
                })?;
            Ok(ToolSpec {
                name: name.to_string(),
                description: function
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                parameters: function
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}

/// Fields the gateway cannot honour (refused when set to anything but their default), and
/// any field it does not know.
fn check_refused(fields: &Map<String, Value>) -> Result<(), ApiError> {
    const READ: &[&str] = &[
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "response_format",
        "seed",
        "tools",
        "tool_choice",
    ];
    for (name, value) in fields {
        let default = match name.as_str() {
            n if TRAVEL.contains(&n) || READ.contains(&n) => continue,
            "n" => value.as_u64() == Some(1),
            "logprobs" | "parallel_tool_calls" => {
                value.as_bool() == Some(name == "parallel_tool_calls")
            }
            "presence_penalty" | "frequency_penalty" => value.as_f64() == Some(0.0),
            "logit_bias" => value.as_object().is_some_and(Map::is_empty),
            "modalities" => *value == serde_json::json!(["text"]),
            "top_logprobs" | "audio" | "prediction" | "functions" | "function_call"
            | "reasoning_effort" | "web_search_options" | "verbosity" => false,
            other => {
                return Err(ApiError::param(
                    other,
                    "unsupported_parameter",
                    format!("unknown field `{other}`"),
                ));
            }
        };
        if !default && !value.is_null() {
            return Err(ApiError::param(
                name.as_str(),
                "unsupported_parameter",
                format!(
                    "`{name}` = {value} cannot be honoured by this gateway (one choice, text only, no log probabilities or penalties)"
                ),
            ));
        }
    }
    Ok(())
}

/// Every model of the agent's chain must honour the options: a fallback that cannot is
/// refused now rather than silently ignored later.
pub(super) fn check_providers(
    config: &Config,
    agent: &str,
    options: &Options,
) -> Result<(), ApiError> {
    let Some(agent_config) = config.agents.get(agent) else {
        return Ok(());
    };
    for (provider, model) in agent_config.model_chain() {
        if let Some(field) = options.unsupported_by(&provider) {
            return Err(ApiError::param(
                field,
                "unsupported_parameter",
                format!(
                    "`{field}` cannot be honoured: agent `{agent}` uses {provider}/{model}, whose API has no such setting"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: Value) -> ApiError {
        let fields = body.as_object().cloned().unwrap_or_default();
        options(&fields)
            .and_then(|_| check_refused(&fields))
            .expect_err("refused")
    }

    #[test]
    fn fields_that_cannot_be_honoured_are_named() {
        assert_eq!(refused(json!({"n": 2})).param.as_deref(), Some("n"));
        assert_eq!(
            refused(json!({"logprobs": true})).param.as_deref(),
            Some("logprobs")
        );
        assert_eq!(
            refused(json!({"frobnicate": 1})).param.as_deref(),
            Some("frobnicate")
        );
        assert_eq!(
            refused(json!({"temperature": 3})).param.as_deref(),
            Some("temperature")
        );
        assert_eq!(
            refused(json!({"max_tokens": 0})).param.as_deref(),
            Some("max_tokens")
        );
        let ok = json!({"n": 1, "logprobs": false, "stream_options": {"include_usage": true}});
        assert!(check_refused(ok.as_object().expect("object")).is_ok());
    }

    #[test]
    fn an_image_part_is_refused_by_its_place() {
        let messages = [json!({"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:x"}}
        ]})];
        let e = messages_of(&messages).expect_err("refused");
        assert_eq!(e.param.as_deref(), Some("messages[0].content[1]"));
    }

    #[test]
    fn history_and_a_continued_tool_call_are_sorted_around_the_last_user_message() {
        let messages = [
            json!({"role": "system", "content": "be terse"}),
            json!({"role": "user", "content": "my name is Ada"}),
            json!({"role": "assistant", "content": "hello Ada"}),
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
        ];
        let c = messages_of(&messages).expect("sorted");
        assert_eq!(c.system, ["be terse"]);
        assert_eq!(c.before.len(), 2);
        assert_eq!(c.after.len(), 2);
        // A stateful request cannot continue a turn: its session keeps the conversation.
        let stateful = messages_of(&messages)
            .and_then(|c| c.into_caller(false, Options::default(), Vec::new()))
            .expect_err("refused");
        assert_eq!(stateful.param.as_deref(), Some("messages"));
        let stateless = c
            .into_caller(true, Options::default(), Vec::new())
            .expect("stateless");
        assert_eq!(stateless.system.as_deref(), Some("be terse"));
    }
}
