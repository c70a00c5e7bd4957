//! What one check observed ([`CheckResult`], which the executors in [`super::checks`] produce)
//! and what one condition or built-in criterion made of it ([`Outcome`], which
//! [`super::conditions`] and the built-in criteria produce). Both sides import these facts;
//! neither imports the other for them.

use std::net::IpAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// What one check observed. Fields a kind does not produce stay empty (`None`, `false`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// When the check started (the reference for `[CERTIFICATE_EXPIRATION]`).
    pub checked_at: Timestamp,
    /// A connection (TCP, and TLS where the kind speaks it) was established.
    pub connected: bool,
    /// The transport failure, if the check could not get an answer at all.
    pub error: Option<String>,
    /// The address the check talked to.
    pub ip: Option<IpAddr>,
    /// Time to the answer: HTTP response headers, TCP connect, TLS handshake, DNS reply.
    pub response_time: Option<Duration>,
    /// HTTP status code.
    pub status: Option<u16>,
    /// The body as read, at most the configured cap (DNS: the answers, one per line).
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
    /// The body was longer than the cap and reading stopped there.
    pub body_truncated: bool,
    /// notAfter of the peer's leaf certificate.
    pub cert_expires_at: Option<Timestamp>,
    /// Whether the certificate chain verified against the trusted roots for the host name.
    pub cert_valid: Option<bool>,
    /// Why verification failed.
    pub cert_error: Option<String>,
    /// DNS response code, `NOERROR`, `NXDOMAIN`, ...
    pub dns_rcode: Option<String>,
    /// DNS answers of the queried type, as text (`192.0.2.1`, `10 mx.example.com.`, ...).
    pub dns_answers: Vec<String>,
}

impl CheckResult {
    pub fn new(checked_at: Timestamp) -> Self {
        CheckResult {
            checked_at,
            ..CheckResult::default()
        }
    }

    /// A failed check with a transport error.
    pub fn failed(checked_at: Timestamp, error: impl Into<String>) -> Self {
        CheckResult {
            checked_at,
            error: Some(error.into()),
            ..CheckResult::default()
        }
    }

    /// Time left before the certificate expires, as of `checked_at` (negative once expired).
    pub fn cert_expires_in(&self) -> Option<SignedDuration> {
        self.cert_expires_at
            .map(|at| at.duration_since(self.checked_at))
    }

    /// The first `max` bytes of the body as text, cut at a character boundary: what is stored
    /// with a result and shown in the dashboard.
    pub fn body_excerpt(&self, max: usize) -> String {
        let mut end = self.body.len().min(max);
        // Step back over a partial UTF-8 sequence at the cut.
        while end > 0 && end < self.body.len() && (self.body[end] & 0b1100_0000) == 0b1000_0000 {
            end -= 1;
        }
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

/// Stores the body as (lossy) text: results are kept for the dashboard, not byte-exact.
mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

/// The result of evaluating one condition (or one built-in criterion) against a check result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The condition as written (or the built-in criterion's name).
    pub condition: String,
    pub success: bool,
    /// The condition with resolved values, Gatus style: `[STATUS] (503) == 200`.
    pub detail: String,
    /// Why it could not be evaluated normally: a missing JSON path, a value that is not a
    /// number, no certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Outcome {
    pub(crate) fn builtin(name: &str, success: bool, detail: String) -> Outcome {
        Outcome {
            condition: name.to_string(),
            success,
            detail,
            reason: None,
        }
    }
}
