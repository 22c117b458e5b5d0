//! Wire shapes: reading request parameters (JSON, urlencoded form, query string), the
//! reply envelope, and the JSON of users and chats.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{Bot, Chat, ChatKind, User};

/// Request parameters, merged from the query string and the body.
pub(super) type Params = Map<String, Value>;

/// A decided reply: HTTP status and the JSON envelope.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl Answer {
    /// `{"ok":true,"result":...}`.
    pub(super) fn ok(result: Value) -> Answer {
        Answer {
            status: 200,
            body: json!({"ok": true, "result": result}),
        }
    }

    /// `{"ok":true,"result":...,"description":...}` (as `setWebhook` answers).
    pub(super) fn ok_described(result: Value, description: &str) -> Answer {
        Answer {
            status: 200,
            body: json!({"ok": true, "result": result, "description": description}),
        }
    }

    /// `{"ok":false,"error_code":code,"description":...}` with HTTP status `code`.
    pub(super) fn error(code: u16, description: &str) -> Answer {
        Answer {
            status: code,
            body: json!({"ok": false, "error_code": code, "description": description}),
        }
    }

    /// 400 `Bad Request: {what}`.
    pub(super) fn bad(what: &str) -> Answer {
        Answer::error(400, &format!("Bad Request: {what}"))
    }

    /// 409 `Conflict: {what}`.
    pub(super) fn conflict(what: &str) -> Answer {
        Answer::error(409, &format!("Conflict: {what}"))
    }

    /// 429 with `parameters.retry_after`.
    pub(super) fn too_many(retry_after: u64) -> Answer {
        Answer {
            status: 429,
            body: json!({
                "ok": false,
                "error_code": 429,
                "description": format!("Too Many Requests: retry after {retry_after}"),
                "parameters": {"retry_after": retry_after},
            }),
        }
    }
}

/// Seconds since the Unix epoch (message `date`).
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A human user's `User` object.
pub(super) fn user_json(user: &User) -> Value {
    let mut v = json!({"id": user.id, "is_bot": user.is_bot, "first_name": user.first_name});
    if let Some(username) = &user.username {
        v["username"] = json!(username);
    }
    v
}

/// The bot's `User` object, as `getMe` and `from` of its messages show it.
pub(super) fn bot_json(bot: &Bot) -> Value {
    json!({
        "id": bot.id,
        "is_bot": true,
        "first_name": bot.first_name,
        "username": bot.username,
    })
}

/// A `Chat` object; a private chat takes its name from its user when known.
pub(super) fn chat_json(chat: &Chat, private_user: Option<&User>) -> Value {
    let mut v = json!({"id": chat.id, "type": chat.kind.as_str()});
    if chat.kind == ChatKind::Private {
        let first_name = private_user.map_or("User", |u| u.first_name.as_str());
        v["first_name"] = json!(first_name);
        if let Some(username) = private_user.and_then(|u| u.username.as_ref()) {
            v["username"] = json!(username);
        }
    } else if let Some(title) = &chat.title {
        v["title"] = json!(title);
    }
    if chat.is_forum {
        v["is_forum"] = json!(true);
    }
    v
}

/// Parses the query string and the body into one parameter map (body wins). JSON bodies
/// must be objects; form bodies and the query give strings.
pub(super) fn parse_params(
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Params, Answer> {
    let mut params = Params::new();
    decode_form(query, &mut params);
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(params);
    }
    let is_json = content_type.starts_with("application/json")
        || (content_type.is_empty() && trimmed.first() == Some(&b'{'));
    if is_json {
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(Value::Object(map)) => params.extend(map),
            _ => return Err(Answer::bad("can't parse JSON object")),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.is_empty()
    {
        decode_form(&String::from_utf8_lossy(trimmed), &mut params);
    }
    // Other bodies (multipart/form-data, text/plain) are not read: only the query counts.
    Ok(params)
}

/// Decodes `a=1&b=x+y%21` into `params` (later keys win).
fn decode_form(text: &str, params: &mut Params) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(percent_decode(key), Value::String(percent_decode(value)));
    }
}

/// Percent-decodes a form component (`+` is a space); bad escapes are kept as written.
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Typed access to parameters, tolerant like the real server: numbers may be strings, and
/// objects and arrays may be JSON-serialized strings (as forms carry them).
#[derive(Debug, Clone, Copy)]
pub(super) struct Args<'a>(pub(super) &'a Params);

/// A parameter that is present but not a valid integer.
#[derive(Debug, Clone, Copy)]
pub(super) struct NotAnInteger;

impl Args<'_> {
    /// Whether the parameter is present and non-empty.
    pub(super) fn has(&self, key: &str) -> bool {
        match self.0.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }

    /// An integer parameter; `Ok(None)` when absent or empty.
    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, NotAnInteger> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(NotAnInteger),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| NotAnInteger),
            Some(_) => Err(NotAnInteger),
        }
    }

    /// An integer parameter where garbage reads as absent (as Telegram reads optional ids).
    pub(super) fn int_lenient(&self, key: &str) -> Option<i64> {
        self.int(key).ok().flatten()
    }

    /// A string parameter (numbers and booleans are rendered as text).
    pub(super) fn string(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// A boolean parameter (`true`, `"true"`, `1`, `"1"`); anything else is false.
    pub(super) fn flag(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
            Some(Value::String(s)) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1")
            }
            _ => false,
        }
    }

    /// A JSON value parameter: as given, or parsed from a JSON string.
    pub(super) fn json(&self, key: &str) -> Option<Value> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        }
    }

    /// A list of strings (`allowed_updates`): a JSON array, or its serialized form.
    pub(super) fn list(&self, key: &str) -> Option<Vec<String>> {
        let Value::Array(items) = self.json(key)? else {
            return None;
        };
        Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    }
}
