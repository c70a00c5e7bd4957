//! Walks the route table and proves that every route that is not public refuses anonymous
//! callers (401) and callers below its role (403), and that routes open to a public credential
//! (a widget's site key, a secret in the URL) refuse requests without a valid one. Routes added later are covered by the walk
//! without touching this file.

use std::collections::BTreeMap;

use hearth::accounts::Role;
use hearth::http::routes::Access;

use crate::common::TestServer;

/// `/api/projects/{id}/keys/{key}` → `/api/projects/1/keys/1`; `{*path}` → `x`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "x".to_string()
            } else if seg.starts_with('{') && seg.ends_with('}') {
                "1".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn needed(access: Access) -> Option<Role> {
    match access {
        Access::Public | Access::DsnKey | Access::Widget | Access::Token => None,
        Access::Viewer => Some(Role::Viewer),
        Access::Agent => Some(Role::Agent),
        Access::Admin => Some(Role::Admin),
        Access::Owner => Some(Role::Owner),
    }
}

#[tokio::test]
async fn every_protected_route_refuses_anonymous_and_lower_roles() {
    let s = TestServer::start().await;
    let mut clients = BTreeMap::new();
    for role in [Role::Viewer, Role::Agent, Role::Admin] {
        clients.insert(role, s.client(role).await);
    }
    let routes = s.state.routes.clone();
    assert!(
        routes
            .iter()
            .any(|r| r.path == "/api/users" && r.access == Access::Owner),
        "the route table is missing accounts' routes"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in routes.iter() {
        let Some(needed) = needed(r.access) else {
            continue;
        };
        checked += 1;
        let path = concrete(r.path);
        let what = format!("{} {} ({:?})", r.method, r.path, r.access);

        let resp = s
            .http
            .request(r.method.clone(), s.url(&path))
            .send()
            .await
            .unwrap();
        if resp.status() != 401 {
            problems.push(format!("{what}: anonymous got {}", resp.status()));
        }
        let resp = s
            .http
            .request(r.method.clone(), s.url(&path))
            .bearer_auth("hth_not_a_real_token")
            .send()
            .await
            .unwrap();
        if resp.status() != 401 {
            problems.push(format!("{what}: a bogus token got {}", resp.status()));
        }
        let resp = s
            .http
            .request(r.method.clone(), s.url(&path))
            .header("cookie", "hearth_session=0000")
            .send()
            .await
            .unwrap();
        if resp.status() != 401 {
            problems.push(format!("{what}: a bogus session got {}", resp.status()));
        }
        for (role, c) in clients.iter().filter(|(role, _)| **role < needed) {
            let resp = c
                .http
                .request(r.method.clone(), c.url(&path))
                .bearer_auth(&c.token)
                .send()
                .await
                .unwrap();
            if resp.status() != 403 {
                problems.push(format!("{what}: {} got {}", role.as_str(), resp.status()));
            } else {
                let body: serde_json::Value = resp.json().await.unwrap();
                if body["error"]["code"] != "forbidden" {
                    problems.push(format!("{what}: {} got body {body}", role.as_str()));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} protected routes walked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.stop().await;
}

/// Routes whose access is a public credential (a widget's site key, a secret in the URL) answer
/// a request without a valid one with a client error, never a success; and the routes a widget
/// visitor shares with agents refuse a made-up widget credential.
#[tokio::test]
async fn public_credential_routes_refuse_missing_and_bogus_credentials() {
    let s = TestServer::start().await;
    let routes = s.state.routes.clone();
    let public: Vec<_> = routes
        .iter()
        .filter(|r| matches!(r.access, Access::Widget | Access::Token))
        .collect();
    for (path, access) in [
        ("/api/chat/widget/session", Access::Widget),
        ("/api/chat/widget/config", Access::Widget),
        ("/ping/{ping_id}", Access::Token),
        ("/ping/{ping_id}/{signal}", Access::Token),
        ("/api/push/{ping_id}", Access::Token),
    ] {
        assert!(
            public.iter().any(|r| r.path == path && r.access == access),
            "{path} is not listed with {access:?} access"
        );
    }
    let mut problems = Vec::new();
    for r in &public {
        let what = format!("{} {} ({:?})", r.method, r.path, r.access);
        let bogus = concrete(r.path).replace("/1", "/not-a-real-token-0000");
        for path in [concrete(r.path), bogus] {
            let resp = s
                .http
                .request(r.method.clone(), s.url(&path))
                .header("x-hearth-site-key", "hs_not_a_real_key")
                .send()
                .await
                .unwrap();
            if !resp.status().is_client_error() {
                problems.push(format!("{what}: {path} got {}", resp.status()));
            }
        }
    }
    let shared = routes
        .iter()
        .filter(|r| r.access == Access::Agent && r.path.starts_with("/api/chat/session/"));
    let mut walked = 0;
    for r in shared {
        walked += 1;
        let resp = s
            .http
            .request(r.method.clone(), s.url(&concrete(r.path)))
            .header("x-hearth-site-key", "hs_not_a_real_key")
            .header("x-hearth-visitor-token", "not_a_real_token")
            .send()
            .await
            .unwrap();
        if resp.status() != 401 {
            let what = format!("{} {}", r.method, r.path);
            problems.push(format!(
                "{what}: a made-up widget credential got {}",
                resp.status()
            ));
        }
    }
    assert!(walked >= 5, "only {walked} visitor routes walked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.stop().await;
}

#[test]
fn params_are_substituted() {
    assert_eq!(
        concrete("/api/projects/{id}/keys/{key}/revoke"),
        "/api/projects/1/keys/1/revoke"
    );
    assert_eq!(concrete("/static/{*path}"), "/static/x");
}

/// Write routes that truly take no request body: the path (and the caller) say everything.
/// A route added later that takes a body and is not documented in `openapi_bodies` fails the
/// walk below; one that takes none is added here on purpose, with the reason.
const NO_BODY: &[(&str, &str)] = &[
    // Sign-out: the session cookie is the whole request.
    ("POST", "/api/auth/logout"),
    // Actions named by the path alone: the key, the dead letter(s), the message, the channel,
    // the conversation, the ticket, the site or the monitor is in the path.
    ("POST", "/api/projects/{id}/keys/{key}/revoke"),
    ("POST", "/api/bus/dlq/{consumer}/{seq}/replay"),
    ("POST", "/api/bus/dlq/{consumer}/replay"),
    ("POST", "/api/projects/{pid}/grouping/upgrade"),
    ("POST", "/api/mail/messages/{id}/cancel"),
    ("POST", "/api/mail/messages/{id}/retry"),
    ("POST", "/api/alerts/channels/{id}/test"),
    ("POST", "/api/chat/session/{id}/close"),
    ("POST", "/api/chat/tickets/{id}/resolve"),
    ("POST", "/api/chat/sites/{id}/rotate-secret"),
    ("POST", "/api/monitors/{id}/pause"),
    ("POST", "/api/monitors/{id}/resume"),
    // The caller is the whole request (the agent going offline; suggestions for the agent).
    ("POST", "/api/chat/agent/offline"),
    ("POST", "/api/chat/conversations/{id}/suggestions"),
];

#[tokio::test]
async fn every_write_route_documents_its_request_body() {
    let s = TestServer::start().await;
    let c = s.client(Role::Owner).await;
    let spec: serde_json::Value = c
        .get("/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut missing = Vec::new();
    let mut documented = 0;
    for r in s.state.routes.iter() {
        let method = r.method.as_str();
        if !matches!(method, "POST" | "PUT" | "PATCH") {
            continue;
        }
        let op = &spec["paths"][r.path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {} is not in openapi.json", r.path);
        let listed = NO_BODY.contains(&(method, r.path));
        match (op.get("requestBody").is_some(), listed) {
            (true, true) => {
                missing.push(format!("{method} {}: allow-listed but documented", r.path))
            }
            (false, false) => missing.push(format!("{method} {}: no requestBody", r.path)),
            (true, false) => documented += 1,
            (false, true) => {}
        }
    }
    for (method, path) in NO_BODY {
        assert!(
            s.state
                .routes
                .iter()
                .any(|r| r.method.as_str() == *method && r.path == *path),
            "allow-listed {method} {path} is not a route any more"
        );
    }
    assert!(documented >= 20, "only {documented} bodies documented");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    s.stop().await;
}
