//! Real local servers for the check tests: HTTP (told to fail, slow down, change its body, or
//! stream without end), TLS with a generated certificate, and DNS over UDP and TCP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Polls `cond` until it holds (or panics after 10 s): synchronisation without sleeps as
/// guesses.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What the HTTP server answers on `/`.
#[derive(Clone)]
pub struct Behavior {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

#[derive(Clone)]
struct HttpState {
    behavior: Arc<Mutex<Behavior>>,
    endless_sent: Arc<AtomicU64>,
    endless_dropped: Arc<AtomicBool>,
}

/// An HTTP server on 127.0.0.1 whose answer the test changes while it runs.
pub struct HttpServer {
    pub addr: SocketAddr,
    state: HttpState,
    stop: CancellationToken,
}

impl HttpServer {
    pub async fn start() -> HttpServer {
        let state = HttpState {
            behavior: Arc::new(Mutex::new(Behavior {
                status: 200,
                body: "ok".into(),
                delay: Duration::ZERO,
            })),
            endless_sent: Arc::new(AtomicU64::new(0)),
            endless_dropped: Arc::new(AtomicBool::new(false)),
        };
        let app = Router::new()
            .route("/", any(behave))
            .route("/endless", any(endless))
            .route("/echo", any(echo))
            .route(
                "/redirect",
                any(|| async { redirect(StatusCode::FOUND, "/") }),
            )
            .route(
                "/redirect-303",
                any(|| async { redirect(StatusCode::SEE_OTHER, "/echo") }),
            )
            .route(
                "/redirect-307",
                any(|| async { redirect(StatusCode::TEMPORARY_REDIRECT, "/echo") }),
            )
            .route(
                "/loop",
                any(|| async { redirect(StatusCode::FOUND, "/loop") }),
            )
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
                .unwrap();
        });
        HttpServer { addr, state, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.state.behavior.lock().unwrap());
    }

    /// Bytes the endless route has handed to the connection so far.
    pub fn endless_sent(&self) -> u64 {
        self.state.endless_sent.load(Ordering::SeqCst)
    }

    /// Whether the endless body was dropped (the client went away).
    pub fn endless_dropped(&self) -> bool {
        self.state.endless_dropped.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn redirect(status: StatusCode, to: &str) -> Response {
    (status, [(header::LOCATION, to.to_string())]).into_response()
}

async fn behave(State(s): State<HttpState>) -> Response {
    let b = s.behavior.lock().unwrap().clone();
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    (StatusCode::from_u16(b.status).unwrap(), b.body).into_response()
}

async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "body": String::from_utf8_lossy(&body),
        "x_token": h("x-token"),
        "authorization": h("authorization"),
    }))
    .into_response()
}

/// Sets a flag when the body stream is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn endless(State(s): State<HttpState>) -> Response {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let flag = DropFlag(s.endless_dropped.clone());
    let sent = s.endless_sent.clone();
    let stream = futures_util::stream::unfold((flag, sent), move |(flag, sent)| {
        let chunk = chunk.clone();
        async move {
            sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            Some((Ok::<_, Infallible>(chunk), (flag, sent)))
        }
    });
    Response::new(Body::from_stream(stream))
}

/// A certificate and key generated for a test, signed by a test CA.
pub struct TestCert {
    pub ca_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// A leaf certificate for `localhost` and 127.0.0.1, valid from `not_before` to `not_after`
/// (seconds from now), signed by a fresh CA.
pub fn test_cert(not_before_secs: i64, not_after_secs: i64) -> TestCert {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Hearth test CA");
    ca_params.not_before = now - time::Duration::days(30);
    ca_params.not_after = now + time::Duration::days(365);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.not_before = now + time::Duration::seconds(not_before_secs);
    params.not_after = now + time::Duration::seconds(not_after_secs);
    let cert = params.signed_by(&key, &issuer).unwrap();
    TestCert {
        ca_pem: ca_cert.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// A TLS server on 127.0.0.1 that completes handshakes with the given certificate, then waits
/// for the client to close.
pub struct TlsServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl TlsServer {
    pub async fn start(cert: &TestCert) -> TlsServer {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    r = listener.accept() => r.unwrap(),
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let mut buf = [0u8; 256];
                        while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                });
            }
        });
        TlsServer { addr, stop }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One zone entry of the test DNS server.
#[derive(Clone)]
pub enum Answer {
    Records(Vec<RData>),
    /// Answer over UDP with the TC bit and no records; the records only over TCP.
    TcpOnly(Vec<RData>),
    Rcode(ResponseCode),
}

/// A DNS server on 127.0.0.1 (UDP and TCP on the same port) answering from a fixed zone;
/// names it does not know get NXDOMAIN.
pub struct DnsServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

type Zone = Arc<HashMap<(String, RecordType), Answer>>;

impl DnsServer {
    pub async fn start(zone: Vec<(&str, RecordType, Answer)>) -> DnsServer {
        let zone: Zone = Arc::new(
            zone.into_iter()
                .map(|(n, t, a)| ((n.trim_end_matches('.').to_ascii_lowercase(), t), a))
                .collect(),
        );
        // Bind UDP first, then TCP on the same port (retry if another test took it).
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (t1, t2) = (stop.clone(), stop.clone());
        let z1 = zone.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, peer) = tokio::select! {
                    _ = t1.cancelled() => return,
                    r = udp.recv_from(&mut buf) => r.unwrap(),
                };
                if let Some(reply) = answer(&z1, &buf[..n], false) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = t2.cancelled() => return,
                    r = tcp.accept() => r.unwrap(),
                };
                let zone = zone.clone();
                tokio::spawn(serve_tcp(stream, zone));
            }
        });
        DnsServer { addr, stop }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve_tcp(mut stream: TcpStream, zone: Zone) {
    let mut len = [0u8; 2];
    if stream.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
    if stream.read_exact(&mut query).await.is_err() {
        return;
    }
    if let Some(reply) = answer(&zone, &query, true) {
        let _ = stream.write_all(&(reply.len() as u16).to_be_bytes()).await;
        let _ = stream.write_all(&reply).await;
    }
}

fn answer(zone: &Zone, query: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let q = query.queries.first()?.clone();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let key = (
        q.name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        q.query_type(),
    );
    let records = |data: &[RData]| -> Vec<Record> {
        data.iter()
            .map(|d| Record::from_rdata(Name::from_ascii(&key.0).unwrap(), 60, d.clone()))
            .collect()
    };
    match zone.get(&key) {
        Some(Answer::Records(data)) => {
            reply.add_answers(records(data));
        }
        Some(Answer::TcpOnly(data)) if over_tcp => {
            reply.add_answers(records(data));
        }
        Some(Answer::TcpOnly(_)) => reply.metadata.truncation = true,
        Some(Answer::Rcode(code)) => reply.metadata.response_code = *code,
        None => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply.to_vec().ok()
}
