//! Public credentials: accesses that are not a signed-in user, beside the DSN key.
//!
//! - [`Widget`] (`Access::Widget`): a chat site key, plus the visitor token the widget got from
//!   `POST /api/chat/widget/session` once a visitor acts. Sent as `X-Hearth-Site-Key` and
//!   `X-Hearth-Visitor-Token`, or as `?site_key=&visitor_token=` by a WebSocket (a browser
//!   cannot set its headers). The optional HMAC identity (`user_id` + `user_hash`) rides in the
//!   session request's body; chat checks it there.
//! - [`Token`] (`Access::Token`): a secret in the URL, the route's first path parameter
//!   (heartbeat pings and pushes: `/ping/{ping_id}`, `/api/push/{ping_id}`).
//!
//! The extractors read the credential; the part that issued it checks it (chat looks the site
//! key and visitor token up, uptime the ping id), as ingest does with DSN keys, so `http`
//! knows no part's tables.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::error::{ApiError, Code};

pub const SITE_KEY_HEADER: &str = "x-hearth-site-key";
pub const VISITOR_TOKEN_HEADER: &str = "x-hearth-visitor-token";

/// The widget's credential as sent; not yet checked against a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widget {
    pub site_key: String,
    /// Present once the widget has a visitor session.
    pub visitor_token: Option<String>,
}

impl Widget {
    /// The widget credential in a request's headers (or its query), if it carries a site key.
    pub fn read(parts: &Parts) -> Option<Widget> {
        let site_key = header_str(&parts.headers, SITE_KEY_HEADER)
            .or_else(|| query_param(parts, "site_key"))?;
        let visitor_token = header_str(&parts.headers, VISITOR_TOKEN_HEADER)
            .or_else(|| query_param(parts, "visitor_token"));
        Some(Widget {
            site_key,
            visitor_token,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Widget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Widget::read(parts).ok_or_else(|| {
            ApiError::new(
                Code::MissingAuth,
                "a widget sends X-Hearth-Site-Key (and X-Hearth-Visitor-Token once it has a session)",
            )
        })
    }
}

/// The secret in the URL: the route's first path parameter, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let missing = || ApiError::new(Code::MissingAuth, "the URL carries no token");
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| missing())?;
        let (_, value) = params.iter().next().ok_or_else(missing)?;
        Ok(Token(value.to_string()))
    }
}

fn query_param(parts: &Parts, name: &str) -> Option<String> {
    url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A header's trimmed text, if present and not empty.
pub fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn widget_reads_headers_then_the_query() {
        let p = parts("/x?site_key=q&visitor_token=t", &[(SITE_KEY_HEADER, " h ")]);
        let w = Widget::read(&p).unwrap();
        assert_eq!(w.site_key, "h");
        assert_eq!(w.visitor_token.as_deref(), Some("t"));
        assert_eq!(Widget::read(&parts("/x?visitor_token=t", &[])), None);
        assert_eq!(
            Widget::read(&parts("/x?site_key=k", &[]))
                .unwrap()
                .visitor_token,
            None
        );
    }
}
