//! Health, metrics, security headers and error shape.

use crate::common::TestServer;

#[tokio::test]
async fn health_and_security_headers() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(
        r.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    let r = s.http.get(s.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    s.stop().await;
}

#[tokio::test]
async fn healthcheck_command_sees_the_server() {
    let s = TestServer::start().await;
    let mut config = hearth::Config::default();
    config.server.listen = s.addr;
    assert!(hearth::healthcheck(&config).await);
    s.stop().await;
    assert!(
        !hearth::healthcheck(&config).await,
        "a stopped server must fail the healthcheck"
    );
}

#[tokio::test]
async fn api_token_auth_and_roles() {
    use hearth::accounts::Role;
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/api/projects")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let viewer = s.client(Role::Viewer).await;
    assert_eq!(
        viewer.get("/api/projects").send().await.unwrap().status(),
        200
    );
    let r = viewer
        .post("/api/projects")
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let admin = s.client(Role::Admin).await;
    let r = admin
        .post("/api/projects")
        .json(&serde_json::json!({"name": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let dsn = body["dsn"].as_str().unwrap();
    assert!(dsn.starts_with("http://") && dsn.ends_with("/1"), "{dsn}");
    let r = s
        .http
        .get(s.url("/api/projects"))
        .bearer_auth("hth_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}
