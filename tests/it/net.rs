//! The outbound HTTP client (`hearth::net`) against local servers: the SSRF guard judges the
//! addresses a name resolves to when it connects, and reply bodies are read only up to a cap.

use std::time::Duration;

use hearth::net::{ClientOptions, HttpClient, NetError};

use crate::receiver::Receiver;

fn client(allow_private: bool, max_response_bytes: usize) -> HttpClient {
    let mut opts = ClientOptions::new("[test] allow_private");
    opts.allow_private = allow_private;
    opts.max_response_bytes = max_response_bytes;
    opts.timeout = Duration::from_secs(10);
    HttpClient::new(opts).unwrap()
}

/// `localhost` is a name, so no check of the URL's text catches it: the resolver does, on the
/// address the connection would go to. The same request is delivered once private targets are
/// allowed.
#[tokio::test]
async fn the_guard_judges_resolved_addresses_at_connect_time() {
    let rx = Receiver::start(&[]).await;
    let port = rx.base.rsplit(':').next().unwrap().to_string();
    let url = format!("http://localhost:{port}/hook");
    let guarded = client(false, 1024);
    match guarded.send(guarded.post(&url).body("{}")).await {
        Err(NetError::Refused(r)) => {
            assert!(r.addr.is_loopback(), "{r}");
            assert_eq!(r.host, "localhost");
            assert!(r.to_string().contains("[test] allow_private = true"), "{r}");
        }
        other => panic!("not refused: {other:?}"),
    }
    for literal in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let r = guarded.send(guarded.post(&literal).body("{}")).await;
        assert!(matches!(r, Err(NetError::Refused(_))), "{literal}: {r:?}");
    }
    assert!(rx.at("/hook").is_empty(), "nothing reached the receiver");
    let open = client(true, 1024);
    let reply = open.send(open.post(&url).body("{}")).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"ok");
    assert_eq!(rx.at("/hook").len(), 1);
}

/// A receiver that answers with a huge body costs at most `max_response_bytes` of memory.
#[tokio::test]
async fn reply_bodies_are_read_up_to_the_cap() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "x".repeat(4 << 20) });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = client(true, 1000);
    let reply = c
        .send(c.post(&format!("http://{addr}/big")).body("{}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 1000);
    assert!(reply.truncated);
}
