//! One error type for every HTTP answer that is not a success.
//!
//! The body is always `{"error": {"code": "...", "message": "..."}}`. Codes are stable
//! snake_case strings clients can match on; messages say what to do. The underlying cause of a
//! 500 is logged, never sent.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every error code Hearth answers with, and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    InvalidJson,
    MalformedEnvelope,
    MissingAuth,
    InvalidAuth,
    InvalidCredentials,
    SessionExpired,
    Forbidden,
    ProjectKeyInvalid,
    NotFound,
    MethodNotAllowed,
    Conflict,
    SetupAlreadyDone,
    SetupLinkInvalid,
    PayloadTooLarge,
    UnsupportedEncoding,
    RateLimited,
    LoginRateLimited,
    Backpressure,
    Unavailable,
    Timeout,
    Internal,
    TemplateLimitExceeded,
    TargetNotAllowed,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::BadRequest,
        Code::InvalidJson,
        Code::MalformedEnvelope,
        Code::MissingAuth,
        Code::InvalidAuth,
        Code::InvalidCredentials,
        Code::SessionExpired,
        Code::Forbidden,
        Code::ProjectKeyInvalid,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::SetupAlreadyDone,
        Code::SetupLinkInvalid,
        Code::PayloadTooLarge,
        Code::UnsupportedEncoding,
        Code::RateLimited,
        Code::LoginRateLimited,
        Code::Backpressure,
        Code::Unavailable,
        Code::Timeout,
        Code::Internal,
        Code::TemplateLimitExceeded,
        Code::TargetNotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::InvalidJson => "invalid_json",
            Code::MalformedEnvelope => "malformed_envelope",
            Code::MissingAuth => "missing_auth",
            Code::InvalidAuth => "invalid_auth",
            Code::InvalidCredentials => "invalid_credentials",
            Code::SessionExpired => "session_expired",
            Code::Forbidden => "forbidden",
            Code::ProjectKeyInvalid => "project_key_invalid",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Conflict => "conflict",
            Code::SetupAlreadyDone => "setup_already_done",
            Code::SetupLinkInvalid => "setup_link_invalid",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedEncoding => "unsupported_encoding",
            Code::RateLimited => "rate_limited",
            Code::LoginRateLimited => "login_rate_limited",
            Code::Backpressure => "backpressure",
            Code::Unavailable => "unavailable",
            Code::Timeout => "timeout",
            Code::Internal => "internal",
            Code::TemplateLimitExceeded => "template_limit_exceeded",
            Code::TargetNotAllowed => "target_not_allowed",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::BadRequest | Code::InvalidJson | Code::MalformedEnvelope => {
                StatusCode::BAD_REQUEST
            }
            Code::MissingAuth
            | Code::InvalidAuth
            | Code::InvalidCredentials
            | Code::SessionExpired => StatusCode::UNAUTHORIZED,
            Code::Forbidden | Code::ProjectKeyInvalid | Code::SetupLinkInvalid => {
                StatusCode::FORBIDDEN
            }
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Conflict | Code::SetupAlreadyDone => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::RateLimited | Code::LoginRateLimited | Code::Backpressure => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::TemplateLimitExceeded | Code::TargetNotAllowed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Extra response headers (Retry-After, X-Sentry-Rate-Limits); a Vec keeps the error small.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found; check the id"))
    }

    pub fn missing_auth() -> Self {
        Self::new(
            Code::MissingAuth,
            "sign in, or send an API token as `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden(needed: &str) -> Self {
        Self::new(
            Code::Forbidden,
            format!("this action needs the {needed} role; ask an owner to change your role"),
        )
    }

    /// A 500 whose cause is logged here and not shown to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id = %id, "internal error: {cause}");
        Self::new(
            Code::Internal,
            format!("internal error {id}; the server log has the details"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code.as_str(), "message": self.message}}));
        let mut resp = (self.code.status(), body).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // Logged (rate-limited) where it is detected, not once per request.
            crate::store::StoreError::DiskFull => ApiError::new(Code::Unavailable, e.to_string())
                .with_header(
                    "retry-after",
                    crate::store::space::RETRY_AFTER_SECS.to_string(),
                ),
            e => ApiError::internal(e),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match e {
            J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                Code::PayloadTooLarge,
                "the request body is larger than this endpoint accepts",
            ),
            J::MissingJsonContentType(_) => ApiError::new(
                Code::InvalidJson,
                "send the body as JSON with `Content-Type: application/json`",
            ),
            other => ApiError::new(
                Code::InvalidJson,
                format!("invalid JSON body: {}", other.body_text()),
            ),
        }
    }
}

/// `Json` that turns rejections into [`ApiError`]s, for handlers.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{s}"
            );
        }
    }
}
