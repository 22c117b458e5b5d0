//! Errors the fake answers before any event is streamed, in the two wire shapes: the HTTP
//! body `{"error":{...}}` and the WebSocket frame `{"type":"error","status",...}`.

use serde_json::{Value, json};

use super::state::{Shared, bump};

/// `error.code` of a request larger than the context window.
pub(super) const CONTEXT_LENGTH_EXCEEDED: &str = "context_length_exceeded";

/// The real API's message for it, over HTTP and in streams alike.
pub(super) const CONTEXT_LENGTH_MESSAGE: &str =
    "Your input exceeds the context window of this model. Please adjust your input and try again.";

/// An error answered instead of a response. Boxed: it travels in `Result`s on hot paths.
#[derive(Debug, Clone)]
pub(super) struct ApiError(Box<ErrorData>);

/// The fields of an [`ApiError`].
#[derive(Debug, Clone)]
pub(super) struct ErrorData {
    pub(super) status: u16,
    pub(super) error_type: String,
    pub(super) code: Option<String>,
    pub(super) message: String,
    pub(super) param: Option<String>,
    /// Extra HTTP headers (ignored on WebSocket, which has no per-frame headers).
    pub(super) headers: Vec<(String, String)>,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorData;

    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl ApiError {
    fn new(status: u16, error_type: &str, code: Option<&str>, message: String) -> ApiError {
        ApiError(Box::new(ErrorData {
            status,
            error_type: error_type.to_owned(),
            code: code.map(str::to_owned),
            message,
            param: None,
            headers: Vec::new(),
        }))
    }

    fn with_param(mut self, param: &str) -> ApiError {
        self.0.param = Some(param.to_owned());
        self
    }

    pub(super) fn invalid_api_key(key: Option<&str>) -> ApiError {
        let message = match key {
            Some(key) => format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                mask(key)
            ),
            None => "You didn't provide an API key. You need to provide your API key in an \
                     Authorization header using Bearer auth (i.e. Authorization: Bearer \
                     YOUR_KEY)."
                .to_owned(),
        };
        ApiError::new(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            message,
        )
    }

    pub(super) fn rate_limited(retry_after_ms: u64) -> ApiError {
        let mut err = ApiError::new(
            429,
            "requests",
            Some("rate_limit_exceeded"),
            format!(
                "Rate limit reached for requests per min (RPM). Please try again in \
                 {retry_after_ms}ms."
            ),
        );
        err.0
            .headers
            .push(("retry-after-ms".to_owned(), retry_after_ms.to_string()));
        err
    }

    pub(super) fn invalid_json() -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            None,
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly.)"
                .to_owned(),
        )
    }

    pub(super) fn missing_param(param: &str) -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("missing_required_parameter"),
            format!("Missing required parameter: '{param}'."),
        )
        .with_param(param)
    }

    pub(super) fn model_not_found(model: &str) -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
    }

    pub(super) fn previous_not_found(id: &str) -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("previous_response_not_found"),
            format!("Previous response with id '{id}' not found."),
        )
        .with_param("previous_response_id")
    }

    pub(super) fn already_in_flight() -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("response_already_in_flight"),
            "A response is already in progress on this connection. Wait for it to finish \
             or open another connection."
                .to_owned(),
        )
    }

    /// A request larger than the model's context window (the real text and `param`).
    pub(super) fn context_length_exceeded() -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some(CONTEXT_LENGTH_EXCEEDED),
            CONTEXT_LENGTH_MESSAGE.to_owned(),
        )
        .with_param("input")
    }

    pub(super) fn connection_limit() -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("websocket_connection_limit_reached"),
            "This WebSocket connection has reached its maximum duration. Open a new \
             connection to continue."
                .to_owned(),
        )
    }

    pub(super) fn unknown_message_type(kind: &str) -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("unknown_message_type"),
            format!("Unknown message type '{kind}'. Expected 'response.create'."),
        )
        .with_param("type")
    }

    pub(super) fn binary_frame() -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("unsupported_message_type"),
            "Binary frames are not supported; send JSON text frames.".to_owned(),
        )
    }

    pub(super) fn websocket_refused(status: u16) -> ApiError {
        ApiError::new(
            status,
            "invalid_request_error",
            None,
            "WebSocket mode is not available for this request.".to_owned(),
        )
    }

    pub(super) fn invalid_url(method: &str, path: &str) -> ApiError {
        ApiError::new(
            404,
            "invalid_request_error",
            None,
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// An error a script asked for.
    pub(super) fn scripted(
        status: u16,
        code: Option<&str>,
        error_type: &str,
        message: &str,
        headers: &[(String, String)],
    ) -> ApiError {
        let mut err = ApiError::new(status, error_type, code, message.to_owned());
        err.0.headers = headers.to_vec();
        err
    }

    fn object(&self) -> Value {
        json!({
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        })
    }

    /// The HTTP body `{"error":{"message","type","param","code"}}`.
    pub(super) fn http_body(&self) -> Value {
        json!({ "error": self.object() })
    }

    /// The WebSocket frame `{"type":"error","status",error:{...}}`.
    pub(super) fn ws_frame(&self) -> Value {
        json!({ "type": "error", "status": self.status, "error": self.object() })
    }

    /// Counts this error as it is served.
    pub(super) fn count(&self, shared: &Shared) {
        let c = &shared.counters;
        match (self.status, self.code.as_deref()) {
            (429, _) => bump(&c.rate_limited),
            (401, _) => bump(&c.unauthorized),
            (_, Some("previous_response_not_found")) => bump(&c.previous_not_found),
            (_, Some("response_already_in_flight")) => bump(&c.already_in_flight),
            (_, Some(CONTEXT_LENGTH_EXCEEDED)) => bump(&c.context_exceeded),
            _ => {}
        }
    }
}

/// `sk-test1234` -> `sk-t***1234`, like the real message (never echo a whole key).
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}
