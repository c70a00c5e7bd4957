//! DNS checks: one query of a record type to a resolver, over UDP, and again over TCP when the
//! answer comes back truncated. Messages are encoded and decoded with `hickory-proto`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::tcp::timed_out;
use crate::uptime::check_result::CheckResult;
use crate::uptime::check_result::Outcome;
use crate::uptime::conditions::DNS_RCODES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
}

impl RecordKind {
    fn record_type(self) -> RecordType {
        match self {
            RecordKind::A => RecordType::A,
            RecordKind::Aaaa => RecordType::AAAA,
            RecordKind::Cname => RecordType::CNAME,
            RecordKind::Mx => RecordType::MX,
            RecordKind::Txt => RecordType::TXT,
            RecordKind::Ns => RecordType::NS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// The name to query.
    pub name: String,
    #[serde(default = "default_kind")]
    pub record_type: RecordKind,
    /// Resolver address, `1.1.1.1` or `[::1]:5353` (port 53 when left out); the first
    /// `nameserver` of /etc/resolv.conf when not set.
    #[serde(default)]
    pub resolver: Option<String>,
    /// Answers that must all be present (IPs, names, `10 mx.example.com`, TXT text; names
    /// compare without case and trailing dot). Empty: any answer is fine, conditions decide.
    #[serde(default)]
    pub expected: Vec<String>,
    #[serde(default = "default_timeout", with = "super::millis")]
    pub timeout: Duration,
}

fn default_kind() -> RecordKind {
    RecordKind::A
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl DnsCheck {
    pub fn new(name: &str, record_type: RecordKind) -> DnsCheck {
        DnsCheck {
            name: name.to_string(),
            record_type,
            resolver: None,
            expected: Vec::new(),
            timeout: default_timeout(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        Name::from_utf8(&self.name).map_err(|e| format!("name: {e}"))?;
        if let Some(r) = &self.resolver {
            parse_resolver(r)?;
        }
        super::validate_timeout(self.timeout)
    }

    pub(crate) fn expected_outcome(&self, answers: &[String]) -> Outcome {
        let missing: Vec<&String> = self
            .expected
            .iter()
            .filter(|e| !answers.iter().any(|a| answer_matches(a, e)))
            .collect();
        let detail = if missing.is_empty() {
            format!("answers {answers:?} include {:?}", self.expected)
        } else {
            format!("answers {answers:?} lack {missing:?}")
        };
        Outcome::builtin("expected answers", missing.is_empty(), detail)
    }
}

fn normalize(s: &str) -> String {
    s.trim().trim_end_matches('.').to_lowercase()
}

/// An expected value matches an answer when equal after normalizing, or (MX) when it names the
/// exchange without the preference.
fn answer_matches(answer: &str, expected: &str) -> bool {
    let (a, e) = (normalize(answer), normalize(expected));
    a == e
        || a.split_once(' ')
            .is_some_and(|(pref, host)| pref.parse::<u16>().is_ok() && host == e)
}

fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("resolver: '{text}' is not an IP address (with an optional port)"))
}

/// The first `nameserver` in /etc/resolv.conf.
fn system_resolver() -> Result<SocketAddr, String> {
    let conf = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("no resolver given and /etc/resolv.conf unreadable: {e}"))?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| parse_resolver(ip.trim()).ok())
        .ok_or_else(|| "no resolver given and none in /etc/resolv.conf".to_string())
}

/// Largest DNS message read over TCP.
const MAX_TCP_MESSAGE: usize = 65_535;

pub async fn check(spec: &DnsCheck, now: Timestamp) -> CheckResult {
    let mut result = CheckResult::new(now);
    let started = Instant::now();
    match tokio::time::timeout(spec.timeout, query(spec, &mut result, started)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => result.error = Some(e),
        Err(_) => result.error = Some(timed_out(spec.timeout)),
    }
    result
}

async fn query(spec: &DnsCheck, result: &mut CheckResult, started: Instant) -> Result<(), String> {
    let server = match &spec.resolver {
        Some(r) => parse_resolver(r)?,
        None => system_resolver()?,
    };
    result.ip = Some(server.ip());
    let name = Name::from_utf8(&spec.name).map_err(|e| format!("name: {e}"))?;
    let rtype = spec.record_type.record_type();
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(name, rtype));
    let id = request.metadata.id;
    let wire = request
        .to_vec()
        .map_err(|e| format!("encoding the query: {e}"))?;

    let mut reply = udp_exchange(server, &wire, id).await?;
    if reply.metadata.truncation {
        reply = tcp_exchange(server, &wire, id).await?;
    }
    result.connected = true;
    result.response_time = Some(started.elapsed());
    let code = u16::from(reply.metadata.response_code);
    result.dns_rcode = Some(
        DNS_RCODES
            .get(usize::from(code))
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("RCODE{code}")),
    );
    result.dns_answers = reply
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| match &r.data {
            RData::TXT(txt) => txt.to_string(),
            other => other.to_string(),
        })
        .collect();
    result.body = result.dns_answers.join("\n").into_bytes();
    Ok(())
}

fn check_reply(bytes: &[u8], id: u16) -> Result<Option<Message>, String> {
    let msg = Message::from_vec(bytes).map_err(|e| format!("malformed DNS reply: {e}"))?;
    if msg.metadata.id != id || msg.metadata.message_type != MessageType::Response {
        return Ok(None);
    }
    Ok(Some(msg))
}

async fn udp_exchange(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    // Connected: only the resolver's datagrams arrive, and a closed port reports "refused".
    socket
        .connect(server)
        .await
        .map_err(|e| format!("resolver {server}: {e}"))?;
    socket
        .send(wire)
        .await
        .map_err(|e| format!("resolver {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("resolver {server}: {e}"))?;
        // A stray or forged datagram with another id is ignored, not taken as the answer.
        if let Ok(Some(msg)) = check_reply(&buf[..n], id) {
            return Ok(msg);
        }
    }
}

async fn tcp_exchange(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("resolver {server} over TCP: {e}"))?;
    let len = u16::try_from(wire.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("resolver {server} over TCP: {e}"))?;
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| format!("resolver {server} over TCP: {e}"))?;
    let len = usize::from(u16::from_be_bytes(len)).min(MAX_TCP_MESSAGE);
    let mut reply = vec![0u8; len];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(|e| format!("resolver {server} over TCP: {e}"))?;
    check_reply(&reply, id)?
        .ok_or_else(|| format!("resolver {server} answered another query over TCP"))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};

    use super::*;
    use crate::uptime::checks::test_servers::{Answer, DnsServer};
    use crate::uptime::checks::{CheckSpec, judge};
    use crate::uptime::conditions::Condition;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    async fn server() -> DnsServer {
        DnsServer::start(vec![
            (
                "app.test",
                RecordType::A,
                Answer::Records(vec![
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 10))),
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 11))),
                ]),
            ),
            (
                "app.test",
                RecordType::AAAA,
                Answer::Records(vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))]),
            ),
            (
                "www.app.test",
                RecordType::CNAME,
                Answer::Records(vec![RData::CNAME(CNAME(name("app.test.")))]),
            ),
            (
                "app.test",
                RecordType::MX,
                Answer::Records(vec![RData::MX(MX::new(10, name("mx.app.test.")))]),
            ),
            (
                "app.test",
                RecordType::TXT,
                Answer::Records(vec![RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))]),
            ),
            (
                "big.test",
                RecordType::TXT,
                Answer::TcpOnly(vec![RData::TXT(TXT::new(vec!["only over tcp".into()]))]),
            ),
            (
                "broken.test",
                RecordType::A,
                Answer::Rcode(ResponseCode::ServFail),
            ),
        ])
        .await
    }

    fn spec(server: &DnsServer, name: &str, kind: RecordKind) -> DnsCheck {
        let mut s = DnsCheck::new(name, kind);
        s.resolver = Some(server.addr.to_string());
        s
    }

    #[tokio::test]
    async fn record_types_answer_as_text() {
        let server = server().await;
        let cases = [
            ("app.test", RecordKind::A, vec!["192.0.2.10", "192.0.2.11"]),
            ("app.test", RecordKind::Aaaa, vec!["::1"]),
            ("www.app.test", RecordKind::Cname, vec!["app.test."]),
            ("app.test", RecordKind::Mx, vec!["10 mx.app.test."]),
            ("app.test", RecordKind::Txt, vec!["v=spf1 -all"]),
        ];
        for (n, kind, answers) in cases {
            let r = check(&spec(&server, n, kind), Timestamp::UNIX_EPOCH).await;
            assert!(r.error.is_none(), "{n} {kind:?}: {:?}", r.error);
            assert_eq!(r.dns_rcode.as_deref(), Some("NOERROR"));
            assert_eq!(r.dns_answers, answers, "{n} {kind:?}");
            assert_eq!(r.ip, Some(server.addr.ip()));
        }
    }

    #[tokio::test]
    async fn expected_answers_and_rcode_conditions() {
        let server = server().await;
        let mut s = spec(&server, "app.test", RecordKind::A);
        s.expected = vec!["192.0.2.11".into()];
        let r = check(&s, Timestamp::UNIX_EPOCH).await;
        let cs = CheckSpec::Dns(s.clone());
        let rcode_ok = [Condition::parse("[DNS_RCODE] == NOERROR").unwrap()];
        assert!(judge(&cs, &r, &rcode_ok).up);
        assert!(
            judge(
                &cs,
                &r,
                &[Condition::parse("[BODY] == pat(*192.0.2.10*)").unwrap()]
            )
            .up
        );

        s.expected = vec!["192.0.2.99".into()];
        let v = judge(&CheckSpec::Dns(s), &r, &rcode_ok);
        assert!(!v.up);
        assert_eq!(v.first_failure().unwrap().condition, "expected answers");
        assert!(v.reason().contains("192.0.2.99"), "{}", v.reason());

        // MX matched by the exchange alone, names without case or trailing dot.
        let mut mx = spec(&server, "APP.test", RecordKind::Mx);
        mx.expected = vec!["MX.app.test".into()];
        let r = check(&mx, Timestamp::UNIX_EPOCH).await;
        assert!(
            judge(&CheckSpec::Dns(mx), &r, &[]).up,
            "{:?}",
            r.dns_answers
        );

        // Unknown name: NXDOMAIN, which a condition can require or refuse.
        let r = check(
            &spec(&server, "nope.test", RecordKind::A),
            Timestamp::UNIX_EPOCH,
        )
        .await;
        assert_eq!(r.dns_rcode.as_deref(), Some("NXDOMAIN"));
        assert!(r.dns_answers.is_empty());
        let nx = Condition::parse("[DNS_RCODE] == NXDOMAIN").unwrap();
        assert!(nx.evaluate(&r).success);
        assert!(!rcode_ok[0].evaluate(&r).success);

        let r = check(
            &spec(&server, "broken.test", RecordKind::A),
            Timestamp::UNIX_EPOCH,
        )
        .await;
        assert_eq!(r.dns_rcode.as_deref(), Some("SERVFAIL"));
    }

    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp() {
        let server = server().await;
        let r = check(
            &spec(&server, "big.test", RecordKind::Txt),
            Timestamp::UNIX_EPOCH,
        )
        .await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.dns_answers, ["only over tcp"]);
    }

    #[tokio::test]
    async fn a_resolver_that_is_not_there_fails_clearly() {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let mut s = DnsCheck::new("app.test", RecordKind::A);
        s.resolver = Some(format!("127.0.0.1:{port}"));
        s.timeout = Duration::from_secs(2);
        let r = check(&s, Timestamp::UNIX_EPOCH).await;
        assert!(!r.connected);
        let e = r.error.unwrap();
        // Linux reports the ICMP port-unreachable as "refused"; elsewhere it may time out.
        assert!(e.contains("refused") || e.starts_with("timed out"), "{e}");
    }

    #[test]
    fn resolver_addresses_and_validation() {
        assert_eq!(
            parse_resolver("1.1.1.1").unwrap(),
            "1.1.1.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert_eq!(parse_resolver("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_resolver("dns.google").is_err());
        let mut s = DnsCheck::new("example.com", RecordKind::Mx);
        assert_eq!(s.validate(), Ok(()));
        s.resolver = Some("nope".into());
        assert!(s.validate().unwrap_err().starts_with("resolver"));
        let json = serde_json::json!({"name": "example.com", "record_type": "AAAA"});
        let parsed: DnsCheck = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.record_type, RecordKind::Aaaa);
    }
}
