//! Active check executors and the judgement of their results.
//!
//! An executor only observes: it returns a [`CheckResult`] (what the target answered, or the
//! transport error) and never decides up or down. [`judge`] decides: the kind's built-in
//! criteria (an HTTP status in the expected list, a certificate the roots trust, the expected
//! DNS answers) plus the monitor's [`Condition`]s, each reported with why it failed, which is
//! what the "test now" button shows.

pub mod dns;
pub mod http;
pub mod tcp;
pub mod tls;

#[cfg(test)]
pub(crate) mod test_servers;

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use super::check_result::CheckResult;
use super::check_result::Outcome;
use super::conditions::{self, Condition};

/// What to check, one variant per kind. Keyword and JSON monitors are HTTP checks whose
/// conditions look at `[BODY]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckSpec {
    Http(http::HttpCheck),
    Tcp(tcp::TcpCheck),
    Tls(tls::TlsCheck),
    Dns(dns::DnsCheck),
}

impl CheckSpec {
    /// Checks what serde cannot (URL, names, limits); the message names the field. For the save
    /// path, next to [`conditions::parse_all`].
    pub fn validate(&self) -> Result<(), String> {
        match self {
            CheckSpec::Http(c) => c.validate(),
            CheckSpec::Tcp(c) => c.validate(),
            CheckSpec::Tls(c) => c.validate(),
            CheckSpec::Dns(c) => c.validate(),
        }
    }

    /// The timeout the executor applies to the whole check.
    pub fn timeout(&self) -> Duration {
        match self {
            CheckSpec::Http(c) => c.timeout,
            CheckSpec::Tcp(c) => c.timeout,
            CheckSpec::Tls(c) => c.timeout,
            CheckSpec::Dns(c) => c.timeout,
        }
    }
}

/// Longest timeout a check may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn validate_timeout(t: Duration) -> Result<(), String> {
    if t.is_zero() || t > MAX_TIMEOUT {
        return Err(format!(
            "timeout must be between 1 ms and {} s",
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(())
}

/// Durations in specs are whole milliseconds in JSON (`"timeout": 10000`).
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Runs one check. `client` is the shared outbound HTTP client (`net.rs`), which must be built
/// with `redirect::Policy::none()` (the HTTP check follows redirects itself when the monitor asks
/// for it) and `tls_info(true)` (so `[CERTIFICATE_EXPIRATION]` works on https monitors).
pub async fn run(spec: &CheckSpec, client: &reqwest::Client, now: Timestamp) -> CheckResult {
    match spec {
        CheckSpec::Http(c) => http::check(client, c, now).await,
        CheckSpec::Tcp(c) => tcp::check(c, now).await,
        CheckSpec::Tls(c) => tls::check(c, now).await,
        CheckSpec::Dns(c) => dns::check(c, now).await,
    }
}

/// The judgement of one result: up when every built-in criterion and every condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub up: bool,
    /// Built-in criteria first, then the monitor's conditions in order.
    pub outcomes: Vec<Outcome>,
}

impl Verdict {
    /// The first failing criterion or condition, for the alert text and the "test now" button.
    pub fn first_failure(&self) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| !o.success)
    }

    /// A one-line reason for a DOWN result ("" when up).
    pub fn reason(&self) -> String {
        match self.first_failure() {
            Some(o) => match &o.reason {
                Some(r) => format!("{}: {r}", o.condition),
                None => o.detail.clone(),
            },
            None => String::new(),
        }
    }
}

/// Judges a result against its kind's built-in criteria and the monitor's conditions.
pub fn judge(spec: &CheckSpec, result: &CheckResult, conditions: &[Condition]) -> Verdict {
    let mut outcomes = Vec::new();
    if let Some(error) = &result.error {
        outcomes.push(Outcome::builtin("check completed", false, error.clone()));
    }
    match spec {
        CheckSpec::Http(c) => {
            if result.error.is_none() {
                outcomes.push(c.expected_status_outcome(result.status));
            }
        }
        CheckSpec::Tcp(_) => {}
        CheckSpec::Tls(c) => {
            if result.error.is_none() && !c.allow_invalid {
                let valid = result.cert_valid.unwrap_or(false);
                let detail = if valid {
                    "certificate trusted".to_string()
                } else {
                    format!(
                        "certificate not trusted: {}",
                        result.cert_error.as_deref().unwrap_or("unknown reason")
                    )
                };
                outcomes.push(Outcome::builtin("certificate valid", valid, detail));
            }
        }
        CheckSpec::Dns(c) => {
            if result.error.is_none() && !c.expected.is_empty() {
                outcomes.push(c.expected_outcome(&result.dns_answers));
            }
        }
    }
    outcomes.extend(conditions::evaluate_all(conditions, result));
    Verdict {
        up: outcomes.iter().all(|o| o.success),
        outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_spec() -> CheckSpec {
        CheckSpec::Http(http::HttpCheck::get("http://example.invalid/"))
    }

    #[test]
    fn a_transport_error_fails_the_verdict_with_its_message() {
        let r = CheckResult::failed(Timestamp::UNIX_EPOCH, "connection refused");
        let v = judge(&http_spec(), &r, &[]);
        assert!(!v.up);
        assert_eq!(v.first_failure().unwrap().detail, "connection refused");
    }

    #[test]
    fn the_expected_status_list_and_the_conditions_are_both_judged() {
        let mut r = CheckResult::new(Timestamp::UNIX_EPOCH);
        r.connected = true;
        r.status = Some(200);
        r.body = b"all good".to_vec();
        let conds = [Condition::parse("[BODY] == pat(*good*)").unwrap()];
        assert!(judge(&http_spec(), &r, &conds).up);

        r.status = Some(503);
        let v = judge(&http_spec(), &r, &conds);
        assert!(!v.up);
        assert_eq!(v.first_failure().unwrap().condition, "expected status");
        assert!(v.reason().contains("503"), "{}", v.reason());

        r.status = Some(200);
        r.body = b"degraded".to_vec();
        let v = judge(&http_spec(), &r, &conds);
        assert_eq!(
            v.first_failure().unwrap().condition,
            "[BODY] == pat(*good*)"
        );
    }

    #[test]
    fn body_excerpt_cuts_at_a_character_boundary() {
        let mut r = CheckResult::new(Timestamp::UNIX_EPOCH);
        r.body = "aé".as_bytes().to_vec(); // 'é' is two bytes
        assert_eq!(r.body_excerpt(2), "a");
        assert_eq!(r.body_excerpt(3), "aé");
    }
}
