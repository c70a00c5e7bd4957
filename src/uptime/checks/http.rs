//! HTTP(S) checks (also keyword and JSON monitors: their conditions read `[BODY]`).
//!
//! The body is streamed and reading stops at `max_body_bytes`, so a 1 GB answer never reaches
//! memory: the connection is dropped at the cap and the result says `body_truncated`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::header::{
    AUTHORIZATION, COOKIE, HeaderName, HeaderValue, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::uptime::check_result::CheckResult;
use crate::uptime::check_result::Outcome;

/// Redirects followed at most (the same limit as browsers' lower bound and reqwest's default).
pub const MAX_REDIRECTS: usize = 10;
/// Largest body cap a monitor may ask for.
pub const MAX_BODY_CAP: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that count as up; empty accepts every status (conditions decide).
    #[serde(default = "default_expected")]
    pub expected_status: Vec<StatusRange>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "default_timeout", with = "super::millis")]
    pub timeout: Duration,
    /// Bytes of body read at most (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_method() -> String {
    "GET".into()
}
fn default_expected() -> Vec<StatusRange> {
    vec![StatusRange { from: 200, to: 299 }]
}
fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_body() -> usize {
    1024 * 1024
}

impl HttpCheck {
    /// A GET with the defaults: 2xx expected, redirects followed, 10 s, 1 MiB.
    pub fn get(url: &str) -> HttpCheck {
        HttpCheck {
            url: url.to_string(),
            method: default_method(),
            headers: Vec::new(),
            body: None,
            expected_status: default_expected(),
            follow_redirects: true,
            timeout: default_timeout(),
            max_body_bytes: default_max_body(),
        }
    }

    /// Checks what serde cannot: the URL, method, headers and limits. For the save path.
    pub fn validate(&self) -> Result<(), String> {
        let url = Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url: scheme must be http or https, not {}",
                url.scheme()
            ));
        }
        if url.host().is_none() {
            return Err("url: a host is required".into());
        }
        Method::from_bytes(self.method.as_bytes())
            .map_err(|_| format!("method: '{}' is not an HTTP method", self.method))?;
        for (name, value) in &self.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name '{name}' is not valid"))?;
            HeaderValue::from_str(value)
                .map_err(|_| format!("header {name}: the value is not valid"))?;
        }
        super::validate_timeout(self.timeout)?;
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_CAP {
            return Err(format!(
                "max_body_bytes must be between 1 and {MAX_BODY_CAP}"
            ));
        }
        Ok(())
    }

    pub(crate) fn expected_status_outcome(&self, status: Option<u16>) -> Outcome {
        let listed = self
            .expected_status
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let (success, detail) = match status {
            _ if self.expected_status.is_empty() => (true, "any status accepted".to_string()),
            Some(s) => (
                self.expected_status.iter().any(|r| r.contains(s)),
                format!("status {s}, expected {listed}"),
            ),
            None => (false, format!("no status, expected {listed}")),
        };
        Outcome::builtin("expected status", success, detail)
    }
}

/// An inclusive range of statuses, written `200`, `200-299` or `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

impl StatusRange {
    pub fn contains(&self, status: u16) -> bool {
        self.from <= status && status <= self.to
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl FromStr for StatusRange {
    type Err = String;

    fn from_str(s: &str) -> Result<StatusRange, String> {
        let bad = || format!("'{s}' is not a status, a range like 200-299 or a class like 2xx");
        let code = |t: &str| -> Result<u16, String> {
            let n: u16 = t.trim().parse().map_err(|_| bad())?;
            if (100..=599).contains(&n) {
                Ok(n)
            } else {
                Err(bad())
            }
        };
        let s = s.trim();
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            let d = code(&format!("{class}00"))?;
            return Ok(StatusRange {
                from: d,
                to: d + 99,
            });
        }
        let range = match s.split_once('-') {
            Some((a, b)) => StatusRange {
                from: code(a)?,
                to: code(b)?,
            },
            None => {
                let c = code(s)?;
                StatusRange { from: c, to: c }
            }
        };
        if range.from > range.to {
            return Err(bad());
        }
        Ok(range)
    }
}

impl Serialize for StatusRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StatusRange, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u16),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string().parse(),
            Raw::Text(t) => t.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Runs the check. `client` must not follow redirects itself (see [`super::run`]).
pub async fn check(client: &reqwest::Client, spec: &HttpCheck, now: Timestamp) -> CheckResult {
    let mut result = CheckResult::new(now);
    let started = Instant::now();
    match tokio::time::timeout(spec.timeout, request(client, spec, &mut result, started)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => result.error = Some(e),
        Err(_) => result.error = Some(super::tcp::timed_out(spec.timeout)),
    }
    result
}

async fn request(
    client: &reqwest::Client,
    spec: &HttpCheck,
    result: &mut CheckResult,
    started: Instant,
) -> Result<(), String> {
    let first = Url::parse(&spec.url).map_err(|e| format!("url: {e}"))?;
    let mut url = first.clone();
    let mut method = Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| format!("bad method {}", spec.method))?;
    let mut body = spec.body.clone();
    for _hop in 0..=MAX_REDIRECTS {
        let same_origin = url.origin() == first.origin();
        let mut req = client.request(method.clone(), url.clone());
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name}: {e}"))?;
            // Credentials go only to the origin the monitor names, as browsers and curl do.
            if !same_origin && [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION].contains(&name) {
                continue;
            }
            req = req.header(name, value.as_str());
        }
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let mut resp = req.send().await.map_err(describe)?;
        result.connected = true;
        result.response_time = Some(started.elapsed());
        result.ip = resp.remote_addr().map(|a| a.ip());
        result.status = Some(resp.status().as_u16());
        if let Some(info) = resp.extensions().get::<reqwest::tls::TlsInfo>() {
            result.cert_expires_at = info.peer_certificate().and_then(super::tls::not_after);
        }
        let location = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok());
        if let Some(location) =
            location.filter(|_| spec.follow_redirects && resp.status().is_redirection())
        {
            url = url
                .join(location)
                .map_err(|e| format!("redirect to '{location}': {e}"))?;
            // 303 always, and 301/302 after a POST, continue as GET without a body
            // (what browsers and curl -L do); 307/308 repeat the request as it was.
            let status = resp.status();
            if status == StatusCode::SEE_OTHER
                || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            continue;
        }
        let cap = spec.max_body_bytes;
        while let Some(chunk) = resp.chunk().await.map_err(describe)? {
            let room = cap - result.body.len();
            if chunk.len() > room {
                result.body.extend_from_slice(&chunk[..room]);
                result.body_truncated = true;
                // Dropping the response here closes the connection: nothing more is read.
                break;
            }
            result.body.extend_from_slice(&chunk);
        }
        return Ok(());
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// A one-line description of a request error: its kind and the root cause.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else if e.is_redirect() {
        "redirect failed"
    } else {
        "request failed"
    };
    let mut root: &dyn std::error::Error = &e;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    if cause == e.to_string() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::uptime::checks::test_servers::{HttpServer, wait_for};
    use crate::uptime::checks::{CheckSpec, judge};
    use crate::uptime::conditions::Condition;

    /// The client the product will hand in: no automatic redirects, TLS info on.
    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_info(true)
            .build()
            .unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    #[tokio::test]
    async fn up_then_failing_then_changed_body_then_slow() {
        let server = HttpServer::start().await;
        let client = client();
        let mut spec = HttpCheck::get(&server.url("/"));
        spec.timeout = Duration::from_millis(500);
        let conds = [Condition::parse("[BODY] == pat(*healthy*)").unwrap()];
        let cs = CheckSpec::Http(spec.clone());

        server.set(|b| b.body = "all healthy".into());
        let r = check(&client, &spec, now()).await;
        assert_eq!(r.status, Some(200));
        assert!(r.connected && r.error.is_none());
        assert_eq!(r.ip, Some("127.0.0.1".parse().unwrap()));
        assert!(judge(&cs, &r, &conds).up);

        server.set(|b| b.status = 503);
        let v = judge(&cs, &check(&client, &spec, now()).await, &conds);
        assert!(!v.up);
        assert_eq!(
            v.first_failure().unwrap().detail,
            "status 503, expected 200-299"
        );

        server.set(|b| {
            b.status = 200;
            b.body = "degraded".into();
        });
        let v = judge(&cs, &check(&client, &spec, now()).await, &conds);
        assert!(!v.up);
        assert_eq!(
            v.first_failure().unwrap().condition,
            "[BODY] == pat(*healthy*)"
        );

        // Slower than the timeout: a clear error, no status.
        server.set(|b| {
            b.body = "healthy".into();
            b.delay = Duration::from_secs(30);
        });
        let r = check(&client, &spec, now()).await;
        assert_eq!(r.error.as_deref(), Some("timed out after 500ms"));
        assert!(!judge(&cs, &r, &conds).up);

        // Slow but within the timeout: the response time is at least the delay.
        server.set(|b| b.delay = Duration::from_millis(150));
        let r = check(&client, &spec, now()).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert!(r.response_time.unwrap() >= Duration::from_millis(150));
        let slow = [Condition::parse("[RESPONSE_TIME] < 100").unwrap()];
        assert!(!judge(&cs, &r, &slow).up);
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_cap() {
        let server = HttpServer::start().await;
        let mut spec = HttpCheck::get(&server.url("/endless"));
        spec.max_body_bytes = 100_000;
        let r = check(&client(), &spec, now()).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.body.len(), 100_000);
        assert!(r.body_truncated);
        // The check hung up: the server's body stream ends, having handed over only what the
        // socket buffers took (without the cap this body never ends).
        wait_for("the server to see the client go", || {
            server.endless_dropped()
        })
        .await;
        let sent = server.endless_sent();
        assert!(sent < 64 * 1024 * 1024, "server sent {sent} bytes");
    }

    #[tokio::test]
    async fn a_body_at_exactly_the_cap_is_not_truncated() {
        let server = HttpServer::start().await;
        server.set(|b| b.body = "x".repeat(1000));
        let mut spec = HttpCheck::get(&server.url("/"));
        spec.max_body_bytes = 1000;
        let r = check(&client(), &spec, now()).await;
        assert_eq!(r.body.len(), 1000);
        assert!(!r.body_truncated);
    }

    #[tokio::test]
    async fn redirects_are_followed_only_when_asked() {
        let server = HttpServer::start().await;
        server.set(|b| b.body = "landed".into());
        let client = client();
        let mut spec = HttpCheck::get(&server.url("/redirect"));
        let r = check(&client, &spec, now()).await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (Some(200), b"landed".as_slice())
        );

        spec.follow_redirects = false;
        let r = check(&client, &spec, now()).await;
        assert_eq!(r.status, Some(302));
        assert!(!judge(&CheckSpec::Http(spec.clone()), &r, &[]).up);

        spec.follow_redirects = true;
        spec.url = server.url("/loop");
        let r = check(&client, &spec, now()).await;
        assert_eq!(r.error.as_deref(), Some("more than 10 redirects"));
    }

    #[tokio::test]
    async fn method_headers_and_body_are_sent_and_redirects_keep_or_drop_them() {
        let server = HttpServer::start().await;
        let client = client();
        let mut spec = HttpCheck::get(&server.url("/echo"));
        spec.method = "POST".into();
        spec.body = Some("payload".into());
        spec.headers = vec![
            ("X-Token".into(), "t1".into()),
            ("Authorization".into(), "Bearer s".into()),
        ];
        let json = |r: &CheckResult| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
        let r = check(&client, &spec, now()).await;
        let v = json(&r);
        assert_eq!(
            (v["method"].as_str(), v["body"].as_str()),
            (Some("POST"), Some("payload"))
        );
        assert_eq!(v["x_token"], "t1");
        assert_eq!(v["authorization"], "Bearer s");

        // 307 repeats the POST with its body; the same origin keeps the credentials.
        spec.url = server.url("/redirect-307");
        let v = json(&check(&client, &spec, now()).await);
        assert_eq!(
            (v["method"].as_str(), v["body"].as_str()),
            (Some("POST"), Some("payload"))
        );
        assert_eq!(v["authorization"], "Bearer s");

        // 303 continues as a GET without the body.
        spec.url = server.url("/redirect-303");
        let v = json(&check(&client, &spec, now()).await);
        assert_eq!(
            (v["method"].as_str(), v["body"].as_str()),
            (Some("GET"), Some(""))
        );

        // A JSON condition on the echoed body.
        let r = check(&client, &spec, now()).await;
        let cond = Condition::parse("[BODY].method == GET").unwrap();
        assert!(cond.evaluate(&r).success);
    }

    #[tokio::test]
    async fn a_closed_port_fails_with_the_cause() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let r = check(
            &client(),
            &HttpCheck::get(&format!("http://{addr}/")),
            now(),
        )
        .await;
        assert!(!r.connected);
        let e = r.error.unwrap();
        assert!(e.starts_with("connection failed"), "{e}");
        assert!(e.to_lowercase().contains("refused"), "{e}");
    }

    #[test]
    fn status_ranges_parse_and_serialize() {
        let parse = |s: &str| s.parse::<StatusRange>();
        assert_eq!(parse("200").unwrap(), StatusRange { from: 200, to: 200 });
        assert_eq!(
            parse("200-299").unwrap(),
            StatusRange { from: 200, to: 299 }
        );
        assert_eq!(parse("3xx").unwrap(), StatusRange { from: 300, to: 399 });
        for bad in ["", "abc", "299-200", "700", "2xxx", "99"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let spec: HttpCheck =
            serde_json::from_value(serde_json::json!({"url": "https://a.example/", "expected_status": [200, "300-308"], "timeout": 2500}))
                .unwrap();
        assert_eq!(
            spec.expected_status,
            vec![
                StatusRange { from: 200, to: 200 },
                StatusRange { from: 300, to: 308 }
            ]
        );
        assert_eq!(spec.timeout, Duration::from_millis(2500));
        assert_eq!(spec.method, "GET");
        assert!(spec.follow_redirects);
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            back["expected_status"],
            serde_json::json!(["200", "300-308"])
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut spec = HttpCheck::get("ftp://a.example/");
        assert!(spec.validate().unwrap_err().starts_with("url: scheme"));
        spec.url = "https://a.example/".into();
        spec.method = "GE T".into();
        assert!(spec.validate().unwrap_err().starts_with("method"));
        spec.method = "HEAD".into();
        spec.headers = vec![("X Bad".into(), "v".into())];
        assert!(spec.validate().unwrap_err().starts_with("header name"));
        spec.headers.clear();
        spec.max_body_bytes = MAX_BODY_CAP + 1;
        assert!(spec.validate().unwrap_err().starts_with("max_body_bytes"));
        spec.max_body_bytes = 10;
        spec.timeout = Duration::ZERO;
        assert!(spec.validate().unwrap_err().starts_with("timeout"));
        spec.timeout = Duration::from_secs(5);
        assert_eq!(spec.validate(), Ok(()));
    }
}
