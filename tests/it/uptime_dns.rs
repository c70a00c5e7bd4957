//! The DNS kind through the real binary, against a real DNS server on 127.0.0.1 started by the
//! test (UDP and TCP on one port, messages encoded with `hickory-proto`): "test now" shows the
//! answers and the failing condition; a monitor goes DOWN when the zone stops answering what it
//! expects (NXDOMAIN, then a wrong address) and UP again, with the alerts at the webhook; a
//! truncated UDP answer is asked again over TCP.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::binary::Hearth;
use crate::common::wait_for;
use crate::receiver::Receiver;

const T: Duration = Duration::from_secs(60);

/// What the server answers for a (name, type); anything else is NXDOMAIN.
#[derive(Clone)]
enum Answer {
    Records(Vec<RData>),
    /// The TC bit over UDP; the records over TCP only.
    TcpOnly(Vec<RData>),
    Rcode(ResponseCode),
}

type Zone = Arc<Mutex<HashMap<(String, RecordType), Answer>>>;

/// An authoritative-style DNS server for the test's zone, which the test changes while it runs.
struct DnsServer {
    addr: SocketAddr,
    zone: Zone,
    queries: Arc<Mutex<Vec<(String, bool)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DnsServer {
    async fn start() -> DnsServer {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let zone: Zone = Arc::default();
        let queries: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let (z, q) = (zone.clone(), queries.clone());
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(reply) = answer(&z, &q, &buf[..n], false) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let (z, q) = (zone.clone(), queries.clone());
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    return;
                };
                let (z, q) = (z.clone(), q.clone());
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    if let Some(reply) = answer(&z, &q, &query, true) {
                        let _ = stream.write_all(&(reply.len() as u16).to_be_bytes()).await;
                        let _ = stream.write_all(&reply).await;
                    }
                });
            }
        });
        DnsServer {
            addr,
            zone,
            queries,
            tasks: vec![udp_task, tcp_task],
        }
    }

    fn set(&self, name: &str, t: RecordType, a: Answer) {
        self.zone.lock().unwrap().insert((name.to_string(), t), a);
    }

    /// How many queries for `name` came over TCP / over UDP.
    fn count(&self, name: &str, over_tcp: bool) -> usize {
        self.queries
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, tcp)| n == name && *tcp == over_tcp)
            .count()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn answer(
    zone: &Zone,
    queries: &Mutex<Vec<(String, bool)>>,
    query: &[u8],
    over_tcp: bool,
) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let q = query.queries.first()?.clone();
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    queries.lock().unwrap().push((name.clone(), over_tcp));
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let records = |data: &[RData]| -> Vec<Record> {
        data.iter()
            .map(|d| Record::from_rdata(Name::from_ascii(&name).unwrap(), 60, d.clone()))
            .collect()
    };
    let found = zone
        .lock()
        .unwrap()
        .get(&(name.clone(), q.query_type()))
        .cloned();
    match found {
        Some(Answer::Records(data)) => {
            reply.add_answers(records(&data));
        }
        Some(Answer::TcpOnly(data)) if over_tcp => {
            reply.add_answers(records(&data));
        }
        Some(Answer::TcpOnly(_)) => reply.metadata.truncation = true,
        Some(Answer::Rcode(code)) => reply.metadata.response_code = code,
        None => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply.to_vec().ok()
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A(Ipv4Addr::from(ip)))
}

async fn send_json(req: reqwest::RequestBuilder, body: Value) -> (u16, Value) {
    let r = req.json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn dns_monitor_against_a_local_dns_server_goes_down_and_up() {
    let dns = DnsServer::start().await;
    dns.set(
        "app.test",
        RecordType::A,
        Answer::Records(vec![a([192, 0, 2, 10])]),
    );
    dns.set(
        "app.test",
        RecordType::MX,
        Answer::Records(vec![RData::MX(MX::new(
            10,
            Name::from_ascii("mx.app.test.").unwrap(),
        ))]),
    );
    dns.set(
        "big.test",
        RecordType::TXT,
        Answer::TcpOnly(vec![RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))]),
    );
    let resolver = dns.addr.to_string();

    let rx = Receiver::start(&[]).await;
    let h = Hearth::start("[alerts]\nallow_private_targets = true\n").await;
    let tok = h.owner().await.token;
    let (st, hook) = send_json(
        h.post(&tok, "/api/alerts/channels"),
        json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
    )
    .await;
    assert_eq!(st, 201, "{hook}");
    for kind in ["monitor_down", "monitor_up"] {
        let (st, rule) = send_json(
            h.post(&tok, "/api/alerts/rules"),
            json!({"name": kind, "when": {"type": kind, "monitor": "dns-app"},
                   "channels": [hook["id"]], "throttle_minutes": 0}),
        )
        .await;
        assert_eq!(st, 201, "{rule}");
    }

    // "Test now": the answers, and which condition failed.
    let (st, tested) = send_json(
        h.post(&tok, "/api/monitors/test"),
        json!({"name": "mx", "check": {"kind": "dns", "name": "app.test", "record_type": "MX",
               "resolver": resolver, "expected": ["mx.app.test"]},
               "conditions": [{"condition": "[DNS_RCODE] == NOERROR"}]}),
    )
    .await;
    assert_eq!(st, 200, "{tested}");
    assert_eq!(tested["up"], true, "{tested}");
    assert_eq!(tested["result"]["dns_rcode"], "NOERROR", "{tested}");
    let (st, tested) = send_json(
        h.post(&tok, "/api/monitors/test"),
        json!({"name": "nx", "check": {"kind": "dns", "name": "nothing.test", "resolver": resolver},
               "conditions": [{"condition": "[DNS_RCODE] == NOERROR"}]}),
    )
    .await;
    assert_eq!(st, 200, "{tested}");
    assert_eq!(tested["up"], false, "{tested}");
    assert_eq!(tested["result"]["dns_rcode"], "NXDOMAIN", "{tested}");
    assert!(
        tested["reason"].as_str().unwrap().contains("[DNS_RCODE]"),
        "{tested}"
    );
    // A truncated UDP answer is asked again over TCP.
    let (st, tested) = send_json(
        h.post(&tok, "/api/monitors/test"),
        json!({"name": "big", "check": {"kind": "dns", "name": "big.test", "record_type": "TXT",
               "resolver": resolver, "expected": ["v=spf1 -all"]}}),
    )
    .await;
    assert_eq!(st, 200, "{tested}");
    assert_eq!(tested["up"], true, "{tested}");
    assert!(dns.count("big.test", false) >= 1 && dns.count("big.test", true) >= 1);
    // A resolver that is not an address is refused when saving, naming the field.
    let (st, err) = send_json(
        h.post(&tok, "/api/monitors"),
        json!({"name": "bad", "check": {"kind": "dns", "name": "app.test", "resolver": "dns.example"}}),
    )
    .await;
    assert_eq!(st, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resolver"),
        "{err}"
    );

    let (st, created) = send_json(
        h.post(&tok, "/api/monitors"),
        json!({"name": "App DNS", "slug": "dns-app",
               "check": {"kind": "dns", "name": "app.test", "record_type": "A",
                         "resolver": resolver, "expected": ["192.0.2.10"], "timeout": 2000},
               "interval": "1s", "failure_threshold": 2, "success_threshold": 2,
               "conditions": [{"condition": "[DNS_RCODE] == NOERROR"}]}),
    )
    .await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let state = |h: &Hearth| {
        let req = h.get(&tok, &format!("/api/monitors/{id}"));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    wait_for("the DNS monitor to be up", T, || async {
        (state(&h).await["state"]["status"] == "up").then_some(())
    })
    .await;
    assert!(
        dns.count("app.test", false) >= 1,
        "the binary asked the server"
    );

    // The name disappears (NXDOMAIN): DOWN.
    dns.set(
        "app.test",
        RecordType::A,
        Answer::Rcode(ResponseCode::NXDomain),
    );
    let down = wait_for("the monitor_down webhook", T, || async {
        rx.at("/hook")
            .into_iter()
            .find(|hit| hit.body["data"]["kind"] == "monitor_down")
    })
    .await;
    assert_eq!(down.body["data"]["monitor"], "dns-app");
    let results: Value = h
        .get(&tok, &format!("/api/monitors/{id}/results?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newest = &results["results"][0];
    assert_eq!(newest["beat"], "down", "{results}");
    // The first failing criterion: no answer, so the expected address is missing.
    assert!(
        newest["error"]
            .as_str()
            .unwrap()
            .contains("lack [\"192.0.2.10\"]"),
        "{results}"
    );

    // Back, but with another address: still down (the expected answer is missing).
    dns.set(
        "app.test",
        RecordType::A,
        Answer::Records(vec![a([192, 0, 2, 99])]),
    );
    wait_for("a result naming the missing answer", T, || async {
        let v: Value = h
            .get(&tok, &format!("/api/monitors/{id}/results?limit=1"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let e = v["results"][0]["error"].as_str()?.to_string();
        (e.contains("192.0.2.99") && e.contains("lack")).then_some(())
    })
    .await;
    assert_eq!(state(&h).await["state"]["status"], "down");

    // The right address again: UP, and the UP alert.
    dns.set(
        "app.test",
        RecordType::A,
        Answer::Records(vec![a([192, 0, 2, 10])]),
    );
    let up = wait_for("the monitor_up webhook", T, || async {
        rx.at("/hook")
            .into_iter()
            .find(|hit| hit.body["data"]["kind"] == "monitor_up")
    })
    .await;
    assert_eq!(up.body["data"]["monitor"], "dns-app");
    assert_eq!(
        rx.at("/hook")
            .iter()
            .filter(|hit| hit.body["data"]["kind"] == "monitor_down")
            .count(),
        1,
        "one DOWN per outage"
    );
    assert!(h.stop().await);
}
