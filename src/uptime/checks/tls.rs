//! TLS checks on any port: the leaf certificate's expiry and whether the chain is trusted.
//!
//! The handshake always completes (a recording verifier runs the normal WebPKI verification,
//! keeps its verdict and lets the handshake go on), so an expired or self-signed certificate is
//! still measured: the result carries `cert_valid = false` with the reason and the notAfter
//! date. Nothing is sent over the connection, it is closed right after the handshake.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use x509_cert::der::Decode;

use super::tcp::{connect, timed_out, validate_host_port};
use crate::uptime::check_result::CheckResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCheck {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The name sent as SNI and verified; defaults to `host`.
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default = "super::tcp::default_timeout", with = "super::millis")]
    pub timeout: Duration,
    /// Measure the expiry but do not fail on an untrusted chain (self-signed internal services).
    #[serde(default)]
    pub allow_invalid: bool,
    /// Extra trusted CA certificates (PEM) for services under an internal CA.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

fn default_port() -> u16 {
    443
}

impl TlsCheck {
    pub fn new(host: &str, port: u16) -> TlsCheck {
        TlsCheck {
            host: host.to_string(),
            port,
            server_name: None,
            timeout: super::tcp::default_timeout(),
            allow_invalid: false,
            ca_pem: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        validate_host_port(&self.host, self.port)?;
        super::validate_timeout(self.timeout)?;
        let name = self.server_name.as_deref().unwrap_or(&self.host);
        ServerName::try_from(name.to_string())
            .map_err(|_| format!("server_name: '{name}' is not a DNS name or an IP address"))?;
        if let Some(pem) = &self.ca_pem {
            extra_roots(pem)?;
        }
        Ok(())
    }
}

/// The notAfter of a DER certificate.
pub fn not_after(der: &[u8]) -> Option<Timestamp> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let secs = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs();
    Timestamp::from_second(i64::try_from(secs).ok()?).ok()
}

fn extra_roots(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ca_pem: {e}"))?;
    if certs.is_empty() {
        return Err("ca_pem: no CERTIFICATE block found".into());
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The verifier for the default roots is built once; one with extra CAs per check.
fn verifier(ca_pem: Option<&str>) -> Result<Arc<WebPkiServerVerifier>, String> {
    static DEFAULT: OnceLock<Arc<WebPkiServerVerifier>> = OnceLock::new();
    let build = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("building the certificate verifier: {e}"))
    };
    match ca_pem {
        None => {
            if let Some(v) = DEFAULT.get() {
                return Ok(v.clone());
            }
            let v = build(webpki_roots())?;
            Ok(DEFAULT.get_or_init(|| v).clone())
        }
        Some(pem) => {
            let mut roots = webpki_roots();
            for cert in extra_roots(pem)? {
                roots.add(cert).map_err(|e| format!("ca_pem: {e}"))?;
            }
            build(roots)
        }
    }
}

/// Runs WebPKI verification, remembers the verdict and lets the handshake continue.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Mutex<Option<Result<(), String>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ())
            .map_err(|e| describe_cert_error(&e));
        *self.verdict.lock().expect("verdict lock") = Some(verdict);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn describe_cert_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            C::UnknownIssuer => {
                "issued by an unknown authority (self-signed or missing intermediate)".into()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the certificate is not valid for this host name".into()
            }
            C::Revoked => "the certificate is revoked".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => other.to_string(),
    }
}

pub async fn check(spec: &TlsCheck, now: Timestamp) -> CheckResult {
    let mut result = CheckResult::new(now);
    let started = Instant::now();
    match tokio::time::timeout(spec.timeout, handshake(spec, &mut result, started)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => result.error = Some(e),
        Err(_) => result.error = Some(timed_out(spec.timeout)),
    }
    result
}

async fn handshake(
    spec: &TlsCheck,
    result: &mut CheckResult,
    started: Instant,
) -> Result<(), String> {
    let name = spec
        .server_name
        .clone()
        .unwrap_or_else(|| spec.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| format!("'{name}' is not a DNS name or an IP address"))?;
    let recording = Arc::new(Recording {
        inner: verifier(spec.ca_pem.as_deref())?,
        verdict: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recording.clone())
        .with_no_client_auth();
    let (tcp, addr) = connect(&spec.host, spec.port).await?;
    result.ip = Some(addr.ip());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
    result.connected = true;
    result.response_time = Some(started.elapsed());
    let (_, connection) = tls.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("the server sent no certificate")?;
    result.cert_expires_at =
        Some(not_after(leaf).ok_or("the server's certificate could not be parsed")?);
    let verdict = recording
        .verdict
        .lock()
        .expect("verdict lock")
        .clone()
        .unwrap_or_else(|| Err("the certificate was not verified".into()));
    result.cert_valid = Some(verdict.is_ok());
    result.cert_error = verdict.err();
    Ok(())
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::uptime::checks::test_servers::{TlsServer, test_cert};
    use crate::uptime::checks::{CheckSpec, judge};
    use crate::uptime::conditions::Condition;

    const DAY: i64 = 86_400;

    fn spec(port: u16, ca_pem: Option<String>) -> TlsCheck {
        TlsCheck {
            host: "127.0.0.1".into(),
            port,
            server_name: Some("localhost".into()),
            timeout: Duration::from_secs(10),
            allow_invalid: false,
            ca_pem,
        }
    }

    #[tokio::test]
    async fn a_certificate_expiring_in_five_days_is_measured_and_trusted_with_its_ca() {
        let cert = test_cert(-DAY, 5 * DAY);
        let server = TlsServer::start(&cert).await;
        let now = Timestamp::now();
        let spec = spec(server.addr.port(), Some(cert.ca_pem.clone()));
        let r = check(&spec, now).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert!(r.connected);
        assert_eq!(r.cert_valid, Some(true), "{:?}", r.cert_error);
        let left = r.cert_expires_in().unwrap();
        let five_days = SignedDuration::from_hours(120);
        assert!(
            (left - five_days).abs() < SignedDuration::from_mins(2),
            "expires in {left:?}"
        );
        let cs = CheckSpec::Tls(spec);
        assert!(
            judge(
                &cs,
                &r,
                &[Condition::parse("[CERTIFICATE_EXPIRATION] > 48h").unwrap()]
            )
            .up
        );
        let v = judge(
            &cs,
            &r,
            &[Condition::parse("[CERTIFICATE_EXPIRATION] > 7d").unwrap()],
        );
        assert!(!v.up);
        assert_eq!(
            v.first_failure().unwrap().condition,
            "[CERTIFICATE_EXPIRATION] > 7d"
        );
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_still_measured_and_fails_unless_allowed() {
        let cert = test_cert(-DAY, 5 * DAY);
        let server = TlsServer::start(&cert).await;
        let mut spec = spec(server.addr.port(), None);
        let r = check(&spec, Timestamp::now()).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.cert_valid, Some(false));
        assert!(
            r.cert_error
                .as_deref()
                .unwrap()
                .contains("unknown authority")
        );
        assert!(r.cert_expires_at.is_some());
        let v = judge(&CheckSpec::Tls(spec.clone()), &r, &[]);
        assert!(!v.up);
        assert!(
            v.reason().contains("certificate not trusted"),
            "{}",
            v.reason()
        );

        spec.allow_invalid = true;
        assert!(judge(&CheckSpec::Tls(spec), &r, &[]).up);
    }

    #[tokio::test]
    async fn an_expired_certificate_says_so() {
        let cert = test_cert(-10 * DAY, -DAY);
        let server = TlsServer::start(&cert).await;
        let spec = spec(server.addr.port(), Some(cert.ca_pem.clone()));
        let r = check(&spec, Timestamp::now()).await;
        assert_eq!(r.cert_valid, Some(false));
        assert_eq!(r.cert_error.as_deref(), Some("the certificate has expired"));
        assert!(r.cert_expires_in().unwrap().is_negative());
    }

    #[tokio::test]
    async fn a_wrong_name_is_not_valid() {
        let cert = test_cert(-DAY, 5 * DAY);
        let server = TlsServer::start(&cert).await;
        let mut spec = spec(server.addr.port(), Some(cert.ca_pem.clone()));
        spec.server_name = Some("other.example".into());
        let r = check(&spec, Timestamp::now()).await;
        assert_eq!(
            r.cert_error.as_deref(),
            Some("the certificate is not valid for this host name")
        );
    }

    #[tokio::test]
    async fn a_port_without_tls_fails_the_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // A server that answers garbage instead of a ServerHello.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let r = check(&spec(port, None), Timestamp::now()).await;
        assert!(!r.connected);
        assert!(r.error.unwrap().starts_with("TLS handshake with 127.0.0.1"));
    }

    #[test]
    fn not_after_reads_the_certificate() {
        let cert = test_cert(0, 3 * DAY);
        let at = not_after(&cert.cert_der).unwrap();
        let expected = Timestamp::now() + SignedDuration::from_hours(72);
        assert!((at.duration_since(expected)).abs() < SignedDuration::from_mins(2));
        assert_eq!(not_after(b"not a certificate"), None);
    }

    #[test]
    fn validation_checks_the_name_and_the_pem() {
        let mut s = TlsCheck::new("db.internal", 5432);
        assert_eq!(s.validate(), Ok(()));
        s.ca_pem = Some("nonsense".into());
        assert!(s.validate().unwrap_err().starts_with("ca_pem"));
        s.ca_pem = Some(test_cert(0, DAY).ca_pem);
        assert_eq!(s.validate(), Ok(()));
        s.server_name = Some("bad name!".into());
        assert!(s.validate().unwrap_err().starts_with("server_name"));
    }
}
