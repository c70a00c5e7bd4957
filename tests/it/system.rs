//! Health, metrics, security headers and error shape.

use crate::common::TestServer;

#[tokio::test]
async fn health_and_security_headers() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers().get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(r.headers().get("x-content-type-options").unwrap(), "nosniff");
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
    assert!(!hearth::healthcheck(&config).await, "a stopped server must fail the healthcheck");
}
