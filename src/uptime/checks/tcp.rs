//! TCP checks: can a connection be opened within the timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::uptime::check_result::CheckResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    pub host: String,
    pub port: u16,
    #[serde(default = "default_timeout", with = "super::millis")]
    pub timeout: Duration,
}

pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TcpCheck {
    pub fn validate(&self) -> Result<(), String> {
        validate_host_port(&self.host, self.port)?;
        super::validate_timeout(self.timeout)
    }
}

pub(crate) fn validate_host_port(host: &str, port: u16) -> Result<(), String> {
    if host.is_empty() || host.len() > 253 || host.contains(|c: char| c.is_whitespace() || c == '/')
    {
        return Err("host must be a host name or an IP address".into());
    }
    if port == 0 {
        return Err("port must be between 1 and 65535".into());
    }
    Ok(())
}

/// Resolves `host` and connects to the first address that accepts, in resolver order.
pub(crate) async fn connect(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    let mut last = format!("resolving {host}: no addresses");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}

pub(crate) fn timed_out(timeout: Duration) -> String {
    format!(
        "timed out after {}",
        crate::uptime::format_duration(timeout.try_into().unwrap_or_default())
    )
}

pub async fn check(spec: &TcpCheck, now: Timestamp) -> CheckResult {
    let mut result = CheckResult::new(now);
    let started = Instant::now();
    match tokio::time::timeout(spec.timeout, connect(&spec.host, spec.port)).await {
        Ok(Ok((_stream, addr))) => {
            result.connected = true;
            result.ip = Some(addr.ip());
            result.response_time = Some(started.elapsed());
        }
        Ok(Err(e)) => result.error = Some(e),
        Err(_) => result.error = Some(timed_out(spec.timeout)),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uptime::checks::{CheckSpec, judge};
    use crate::uptime::conditions::Condition;

    #[tokio::test]
    async fn an_open_port_is_up_and_a_closed_one_is_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let spec = TcpCheck {
            host: "127.0.0.1".into(),
            port,
            timeout: Duration::from_secs(5),
        };
        let conds = [Condition::parse("[CONNECTED] == true").unwrap()];
        let r = check(&spec, Timestamp::UNIX_EPOCH).await;
        assert!(r.connected && r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.ip, Some("127.0.0.1".parse().unwrap()));
        assert!(r.response_time.is_some());
        assert!(judge(&CheckSpec::Tcp(spec.clone()), &r, &conds).up);

        // The port closes.
        drop(listener);
        let r = check(&spec, Timestamp::UNIX_EPOCH).await;
        assert!(!r.connected);
        let e = r.error.clone().unwrap();
        assert!(
            e.starts_with(&format!("connecting to 127.0.0.1:{port}")),
            "{e}"
        );
        let v = judge(&CheckSpec::Tcp(spec), &r, &conds);
        assert!(!v.up);
        assert_eq!(v.outcomes[1].detail, "[CONNECTED] (false) == true");
    }

    #[tokio::test]
    async fn localhost_resolves() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let spec = TcpCheck {
            host: "localhost".into(),
            port: listener.local_addr().unwrap().port(),
            timeout: Duration::from_secs(5),
        };
        // localhost may resolve to ::1 first; the check tries the next address.
        let r = check(&spec, Timestamp::UNIX_EPOCH).await;
        assert!(r.connected, "{:?}", r.error);
    }

    #[test]
    fn validation() {
        assert!(validate_host_port("", 80).is_err());
        assert!(validate_host_port("a b", 80).is_err());
        assert!(validate_host_port("db.internal", 0).is_err());
        assert!(validate_host_port("db.internal", 5432).is_ok());
    }
}
