//! Auth extractors: the role a handler needs is visible in its signature,
//! e.g. `async fn purge(Admin(user): Admin, ...)`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::accounts::model::Role;
use crate::app::AppState;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthVia {
    Session,
    Token,
    /// The local admin socket in the data directory (file permissions are the credential).
    LocalSocket,
}

/// An authenticated caller.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authed {
    pub user_id: u64,
    pub email: String,
    pub role: Role,
    pub via: AuthVia,
    /// The stored hash of the session or token that authenticated the request (none for the
    /// local socket): what "your other sessions" excludes.
    #[serde(skip)]
    pub credential: Option<String>,
}

/// Marker inserted into requests that arrived over the local admin socket.
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket;

async fn require(parts: &mut Parts, state: &AppState, needed: Role) -> Result<Authed, ApiError> {
    if let Some(a) = parts.extensions.get::<Authed>() {
        return check(a.clone(), needed);
    }
    let authed = state.accounts.authenticate(parts).await?;
    parts.extensions.insert(authed.clone());
    check(authed, needed)
}

fn check(a: Authed, needed: Role) -> Result<Authed, ApiError> {
    if a.role >= needed {
        Ok(a)
    } else {
        Err(ApiError::forbidden(needed.as_str()))
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Authed);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                require(parts, state, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// Any signed-in user (viewer or above): read-only access.
    Viewer,
    Role::Viewer
);
role_extractor!(
    /// Agent or above: may work issues, conversations and tickets.
    Agent,
    Role::Agent
);
role_extractor!(
    /// Admin or above: projects, keys, alert rules, mail, the bus.
    Admin,
    Role::Admin
);
role_extractor!(
    /// Owner only: users and roles, backups.
    Owner,
    Role::Owner
);

/// Whether a browser request comes from Hearth's own pages: `Sec-Fetch-Site` says
/// `same-origin` (or `none`: typed by the user), or, from a browser that does not send it,
/// `Origin` is Hearth's public URL or the request's own host. A request with neither header is
/// not from a browser page and is refused too: scripts authenticate with an API token.
pub fn same_origin(headers: &axum::http::HeaderMap, public_base: &str) -> bool {
    use axum::http::header;
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return matches!(site.trim(), "same-origin" | "none");
    }
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(|o| o.trim().trim_end_matches('/'))
    else {
        return false;
    };
    if origin.eq_ignore_ascii_case(origin_of(public_base)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.split_once("://"), host) {
        (Some((scheme, rest)), Some(host)) => {
            matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host.trim())
        }
        _ => false,
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// Whether a method changes state (everything but GET, HEAD and OPTIONS).
pub fn is_write(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_checks_fetch_metadata_then_origin() {
        let base = "https://hearth.example.com";
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            base
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            base
        ));
        assert!(!same_origin(
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://hearth.example.com")
            ]),
            base
        ));
        assert!(same_origin(
            &headers(&[("origin", "https://hearth.example.com")]),
            base
        ));
        assert!(same_origin(
            &headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ]),
            base
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            base
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), base));
        assert!(!same_origin(&headers(&[]), base));
        assert_eq!(origin_of("https://a.example/x/y"), "https://a.example");
        assert_eq!(origin_of("http://a:1"), "http://a:1");
    }
}
