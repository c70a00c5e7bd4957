//! Walks the route table and proves that every route that is not public refuses anonymous
//! callers (401) and callers below its role (403). Routes added later are covered by the walk
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
        Access::Public | Access::DsnKey => None,
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

#[test]
fn params_are_substituted() {
    assert_eq!(
        concrete("/api/projects/{id}/keys/{key}/revoke"),
        "/api/projects/1/keys/1/revoke"
    );
    assert_eq!(concrete("/static/{*path}"), "/static/x");
}
