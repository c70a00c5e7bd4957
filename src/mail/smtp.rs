//! The SMTP side: the pooled lettre transport built from `[smtp]`, turning stored messages into
//! MIME, classifying relay answers into sent / retry / fail, and errors an operator can act on.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as LAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::model::{Body, MessageRecord};
use crate::config::{SmtpConfig, SmtpTls};

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Builds the relay transport; `None` when no host is configured (mail then stays queued).
pub fn transport(cfg: &SmtpConfig) -> Result<Option<Transport>, String> {
    if cfg.host.trim().is_empty() {
        return Ok(None);
    }
    let host = cfg.host.trim().to_string();
    let tls = match cfg.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_params(&host)?),
        SmtpTls::Implicit => Tls::Wrapper(tls_params(&host)?),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(cfg.timeout.get()))
        .pool_config(
            PoolConfig::new()
                .max_size(cfg.pool_size.max(1))
                // Below the common 60 s server idle timeout, so the pool seldom hands out a
                // connection the server already closed (lettre #743).
                .idle_timeout(Duration::from_secs(30)),
        );
    if !cfg.username.is_empty() {
        b = b.credentials(Credentials::new(
            cfg.username.clone(),
            cfg.password.expose().to_string(),
        ));
    }
    Ok(Some(b.build()))
}

fn tls_params(host: &str) -> Result<TlsParameters, String> {
    TlsParameters::new(host.to_string()).map_err(|e| format!("TLS setup for {host}: {e}"))
}

fn mailbox(s: &str) -> Result<Mailbox, String> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{s:?} is not an email address: {e}"))
}

/// Checks an address the way the relay step will parse it.
pub fn check_address(s: &str) -> Result<(), String> {
    mailbox(s).map(|_| ())
}

/// A dedup key `thread:<root>:<parent>:<own>` (tokens of ASCII letters, digits, `.` and `-`)
/// places the message in a mail thread: its Message-ID is `<own@domain>`, it answers
/// `<parent@domain>` (In-Reply-To) and References names the root and the parent, so mail
/// clients thread the replies of one conversation together (chat's email tickets use it).
pub fn thread_ids(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.strip_prefix("thread:")?.split(':');
    let (root, parent, own) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = |t: &str| {
        !t.is_empty()
            && t.len() <= 100
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
    };
    (parts.next().is_none() && ok(root) && ok(parent) && ok(own)).then_some((root, parent, own))
}

/// The MIME message for a stored message.
pub fn build_message(m: &MessageRecord, body: &Body) -> Result<Message, String> {
    let from = mailbox(&m.from)?;
    // Stable across retries, so a receiver can spot a duplicate of an at-least-once resend.
    let domain = from.email.domain().to_string();
    let mut message_id = format!("<hearth.{}.{}@{domain}>", m.id, m.created_ms);
    // ---- threading (chat's email replies, issue 14) ----
    let thread = m.dedup_key.as_deref().and_then(thread_ids);
    if let Some((_, _, own)) = thread {
        message_id = format!("<{own}@{domain}>");
    }
    // ---- end threading ----
    let mut b = Message::builder()
        .from(from)
        .subject(m.subject.clone())
        .message_id(Some(message_id))
        .date_now();
    if let Some((root, parent, _)) = thread {
        let references = if parent == root {
            format!("<{root}@{domain}>")
        } else {
            format!("<{root}@{domain}> <{parent}@{domain}>")
        };
        b = b
            .in_reply_to(format!("<{parent}@{domain}>"))
            .references(references);
    }
    for t in &m.to {
        b = b.to(mailbox(t)?);
    }
    for c in &m.cc {
        b = b.cc(mailbox(c)?);
    }
    for c in &m.bcc {
        b = b.bcc(mailbox(c)?);
    }
    let raw = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
    b = b
        .raw_header(raw("X-Hearth-Message-Id", m.id.to_string()))
        .raw_header(raw("X-Hearth-Category", m.category.as_str().to_string()));
    let alternative = body
        .html
        .as_ref()
        .map(|html| MultiPart::alternative_plain_html(body.text.clone(), html.clone()));
    let result = if body.attachments.is_empty() {
        match alternative {
            Some(alt) => b.multipart(alt),
            None => b.singlepart(SinglePart::plain(body.text.clone())),
        }
    } else {
        let mut mixed = match alternative {
            Some(alt) => MultiPart::mixed().multipart(alt),
            None => MultiPart::mixed().singlepart(SinglePart::plain(body.text.clone())),
        };
        for a in &body.attachments {
            let ct = ContentType::parse(&a.content_type)
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").unwrap());
            mixed = mixed.singlepart(LAttachment::new(a.filename.clone()).body(a.data.clone(), ct));
        }
        b.multipart(mixed)
    };
    result.map_err(|e| format!("cannot build the message: {e}"))
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
    Sent {
        code: Option<u16>,
        reply: String,
    },
    /// 4xx, connection refused, timeout, TLS trouble: try again later.
    Transient {
        code: Option<u16>,
        error: String,
    },
    /// 5xx or a message the relay can never take: stop.
    Permanent {
        code: Option<u16>,
        error: String,
    },
}

fn code_of(c: lettre::transport::smtp::response::Code) -> Option<u16> {
    c.to_string().parse().ok()
}

pub async fn send(transport: &Transport, m: &MessageRecord, body: &Body) -> Attempt {
    let msg = match build_message(m, body) {
        Ok(msg) => msg,
        Err(error) => return Attempt::Permanent { code: None, error },
    };
    match transport.send(msg).await {
        Ok(resp) => Attempt::Sent {
            code: code_of(resp.code()),
            reply: resp.message().collect::<Vec<_>>().join(" "),
        },
        Err(e) => classify(&e),
    }
}

pub fn classify(e: &lettre::transport::smtp::Error) -> Attempt {
    let code = e.status().and_then(code_of);
    let error = e.to_string();
    if e.is_permanent() {
        Attempt::Permanent { code, error }
    } else if e.is_client() && !error.contains("STARTTLS") {
        // A message lettre cannot encode will not get better by waiting.
        Attempt::Permanent { code, error }
    } else {
        Attempt::Transient { code, error }
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = s.source();
    }
    None
}

/// Turns a relay error into a sentence that says what to change in `[smtp]`.
pub fn explain(cfg: &SmtpConfig, e: &lettre::transport::smtp::Error) -> String {
    let host = cfg.host.trim();
    let port = cfg.port;
    let detail = chain(e);
    let lower = detail.to_ascii_lowercase();
    let mode = match cfg.tls {
        SmtpTls::Starttls => "starttls",
        SmtpTls::Implicit => "implicit",
        SmtpTls::None => "none",
    };
    let ports = "usual ports: 587 with tls = \"starttls\", 465 with tls = \"implicit\", 25 with tls = \"none\" for a relay on this machine";
    if matches!(io_kind(e), Some(std::io::ErrorKind::ConnectionRefused))
        || lower.contains("connection refused")
    {
        return format!(
            "connection refused by {host}:{port}: nothing accepts SMTP there. Check [smtp] host and port ({ports}). ({detail})"
        );
    }
    if lower.contains("lookup")
        || lower.contains("name or service not known")
        || lower.contains("no address")
        || lower.contains("nodename nor servname")
        || lower.contains("temporary failure in name resolution")
    {
        return format!(
            "cannot resolve the host name {host:?}: check the spelling of [smtp] host and this machine's DNS. ({detail})"
        );
    }
    if e.is_timeout() || lower.contains("timed out") || lower.contains("timeout") {
        let hint = if cfg.tls == SmtpTls::Starttls && port == 465 {
            " Port 465 expects TLS from the first byte: set [smtp] tls = \"implicit\"."
        } else {
            " A firewall may drop SMTP traffic, or the port expects another TLS mode."
        };
        return format!(
            "no answer from {host}:{port} within {:?} (tls = \"{mode}\").{hint} ({ports}) ({detail})",
            cfg.timeout.get()
        );
    }
    if e.is_tls()
        || lower.contains("tls")
        || lower.contains("corrupt message")
        || lower.contains("invalidcontenttype")
        || lower.contains("certificate")
    {
        let hint = match cfg.tls {
            SmtpTls::Implicit if port != 465 => format!(
                "port {port} probably speaks plain SMTP first: use tls = \"starttls\" (port 587) or port 465 for implicit TLS"
            ),
            SmtpTls::Starttls if port == 465 => {
                "port 465 expects TLS from the first byte: set tls = \"implicit\"".to_string()
            }
            _ if lower.contains("certificate") => format!(
                "the server's certificate is not valid for {host:?}: use the host name the certificate names"
            ),
            _ => format!("check that tls = \"{mode}\" matches what port {port} offers ({ports})"),
        };
        return format!("TLS with {host}:{port} failed: {hint}. ({detail})");
    }
    if lower.contains("starttls is not supported") {
        return format!(
            "{host}:{port} does not offer STARTTLS: use tls = \"implicit\" with port 465, or tls = \"none\" only for a relay on this machine. ({detail})"
        );
    }
    if lower.contains("no compatible authentication mechanism") {
        return format!(
            "{host}:{port} offers no login method Hearth can use (PLAIN or LOGIN); many servers only offer them after TLS, so check [smtp] tls. ({detail})"
        );
    }
    let code = e.status().and_then(code_of);
    if matches!(code, Some(530 | 534 | 535 | 454)) || lower.contains("authentication") {
        return format!(
            "{host} refused the login: check [smtp] username and password (or password_file). ({detail})"
        );
    }
    if e.is_permanent() {
        return format!(
            "the relay rejected the message: {detail}. Check that [smtp] from is an address this relay lets you send as, and the recipient."
        );
    }
    if e.is_transient() {
        return format!("the relay asked to try again later: {detail}");
    }
    format!("sending through {host}:{port} (tls = \"{mode}\") failed: {detail}")
}

/// Sends one message straight through the relay (no outbox), for `hearth send-test-email` and
/// the API's test action. The error is [`explain`]ed.
pub async fn send_test_email(cfg: &SmtpConfig, to: &str) -> Result<String, String> {
    let Some(transport) = transport(cfg)? else {
        return Err(
            "no SMTP relay configured: set [smtp] host (and port, tls, username, password)".into(),
        );
    };
    let to_box = mailbox(to)?;
    let from = mailbox(&cfg.from).map_err(|e| format!("[smtp] from: {e}"))?;
    let msg = Message::builder()
        .from(from)
        .to(to_box)
        .subject("Hearth test email")
        .date_now()
        .singlepart(SinglePart::plain(format!(
            "This is a test email from Hearth {}.\n\nIf you can read it, the [smtp] settings work.\n",
            crate::VERSION
        )))
        .map_err(|e| format!("cannot build the test message: {e}"))?;
    match transport.send(msg).await {
        Ok(resp) => Ok(format!(
            "{} {}",
            resp.code(),
            resp.message().collect::<Vec<_>>().join(" ")
        )),
        Err(e) => Err(explain(cfg, &e)),
    }
}

/// The outbox's connection pool to the relay.
///
/// lettre's pooled transport writes a message's body and its terminating `CRLF.CRLF` in two
/// writes on a socket without `TCP_NODELAY`, so Nagle's algorithm meets the relay's delayed ACK
/// and every message waits ~40 ms per connection. For plain and STARTTLS relays this pool opens
/// the TCP connection itself with `TCP_NODELAY` and hands it to lettre's SMTP client; implicit
/// TLS (which lettre only sets up on its own sockets) goes through lettre's transport.
pub struct Relay {
    cfg: SmtpConfig,
    lettre: Option<Transport>,
    idle: tokio::sync::Mutex<Vec<lettre::transport::smtp::client::AsyncSmtpConnection>>,
}

impl Relay {
    /// `None` when no host is configured.
    pub fn new(cfg: &SmtpConfig) -> Result<Option<Relay>, String> {
        let Some(t) = transport(cfg)? else {
            return Ok(None);
        };
        Ok(Some(Relay {
            cfg: cfg.clone(),
            lettre: (cfg.tls == SmtpTls::Implicit).then_some(t),
            idle: tokio::sync::Mutex::new(Vec::new()),
        }))
    }

    async fn connect(
        &self,
    ) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, Attempt> {
        use lettre::transport::smtp::authentication::Mechanism;
        use lettre::transport::smtp::client::AsyncSmtpConnection;
        use lettre::transport::smtp::extension::ClientId;
        let host = self.cfg.host.trim();
        let timeout = self.cfg.timeout.get();
        let transient = |error: String| Attempt::Transient { code: None, error };
        let tcp = match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host, self.cfg.port)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(transient(format!("Connection error: {e}"))),
            Err(_) => {
                return Err(transient(format!(
                    "Connection error: connecting to {host}:{} timed out",
                    self.cfg.port
                )));
            }
        };
        let _ = tcp.set_nodelay(true);
        let hello = ClientId::default();
        let setup = async {
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await?;
            if self.cfg.tls == SmtpTls::Starttls {
                let params = TlsParameters::new(host.to_string())?;
                conn.starttls(params, &hello).await?;
            }
            if !self.cfg.username.is_empty() {
                let creds = Credentials::new(
                    self.cfg.username.clone(),
                    self.cfg.password.expose().to_string(),
                );
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                    .await?;
            }
            Ok::<_, lettre::transport::smtp::Error>(conn)
        };
        match tokio::time::timeout(timeout, setup).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(transient(format!(
                "no SMTP greeting/handshake from {host}:{} within {timeout:?}",
                self.cfg.port
            ))),
        }
    }

    /// Sends one stored message.
    pub async fn send(&self, m: &MessageRecord, body: &Body) -> Attempt {
        let msg = match build_message(m, body) {
            Ok(msg) => msg,
            Err(error) => return Attempt::Permanent { code: None, error },
        };
        if let Some(t) = &self.lettre {
            return match t.send(msg).await {
                Ok(resp) => Attempt::Sent {
                    code: code_of(resp.code()),
                    reply: resp.message().collect::<Vec<_>>().join(" "),
                },
                Err(e) => classify(&e),
            };
        }
        let envelope = msg.envelope().clone();
        let bytes = msg.formatted();
        let timeout = self.cfg.timeout.get();
        // A pooled connection the relay closed while idle fails on first use (lettre #743):
        // one more try on a fresh connection.
        for fresh in [false, true] {
            let pooled = if fresh {
                None
            } else {
                self.idle.lock().await.pop()
            };
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(a) => return a,
                },
            };
            let result = tokio::time::timeout(timeout, conn.send(&envelope, &bytes)).await;
            let result = match result {
                Ok(r) => r,
                Err(_) => {
                    conn.abort().await;
                    return Attempt::Transient {
                        code: None,
                        error: format!("the relay did not answer within {timeout:?}"),
                    };
                }
            };
            if conn.has_broken() {
                conn.abort().await;
            } else {
                let mut idle = self.idle.lock().await;
                if idle.len() < self.cfg.pool_size.max(1) as usize {
                    idle.push(conn);
                } else {
                    drop(idle);
                    let _ = conn.quit().await;
                }
            }
            match result {
                Ok(resp) => {
                    return Attempt::Sent {
                        code: code_of(resp.code()),
                        reply: resp.message().collect::<Vec<_>>().join(" "),
                    };
                }
                Err(e) if reused && !e.is_permanent() && !e.is_transient() => continue,
                Err(e) => return classify(&e),
            }
        }
        Attempt::Transient {
            code: None,
            error: "the relay closed the connection".into(),
        }
    }
}
