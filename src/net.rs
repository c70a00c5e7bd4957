//! The one outbound HTTP client: alert deliveries to Slack and webhooks today, uptime checks
//! next.
//!
//! reqwest over rustls with the process's one ring provider, connect and total timeouts, a user
//! agent, a cap on how much of a reply is read, no proxy taken from the environment, and a guard
//! against server-side request forgery: unless a caller allows private targets, loopback,
//! private, link-local and other non-public addresses are refused.
//!
//! The guard is the client's DNS resolver, so it judges the addresses the connection is then
//! made to (a name that resolves to a public address when a channel is saved and to 127.0.0.1
//! later is refused at connect time). IP-literal URLs, which skip the resolver, are checked
//! before sending; redirects are not followed. Proxies from
//! `HTTP_PROXY` and friends are ignored: through a proxy the guard would only see the proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How a client behaves; [`ClientOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Allow loopback, private and link-local targets (off unless the operator turns it on).
    pub allow_private: bool,
    /// The setting that turns `allow_private` on, named in the refusal message.
    pub private_setting: &'static str,
    /// Whole request, connect to last byte read.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Bytes of a reply body read at most; the rest is dropped with the connection.
    pub max_response_bytes: usize,
}

impl ClientOptions {
    pub fn new(private_setting: &'static str) -> Self {
        ClientOptions {
            allow_private: false,
            private_setting,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// A target the guard refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{host} is not a public address ({addr}: {why}); outbound requests to it are refused \
     unless {setting} = true"
)]
pub struct Refused {
    pub host: String,
    pub addr: IpAddr,
    pub why: &'static str,
    setting: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0}")]
    BadUrl(String),
    /// Timeout, refused connection, TLS or protocol failure: worth retrying. The message names
    /// no URL (URLs hold secrets: Slack's path is its credential).
    #[error("{0}")]
    Transport(String),
    #[error("the HTTP client cannot be built: {0}")]
    Build(String),
}

/// What a server answered: status, headers and at most `max_response_bytes` of the body.
#[derive(Debug)]
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
    /// Whether the body was longer than what was read.
    pub truncated: bool,
}

impl Reply {
    /// The start of the body as text, at most `chars` characters.
    pub fn text_prefix(&self, chars: usize) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(chars)
            .collect()
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    opts: Arc<ClientOptions>,
}

impl HttpClient {
    pub fn new(opts: ClientOptions) -> Result<Self, NetError> {
        // `main` installs ring first thing; a library user (a test) that did not gets the same
        // provider here rather than a panic at the first handshake.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let guard = Guard {
            allow_private: opts.allow_private,
            setting: opts.private_setting,
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("Hearth/", env!("CARGO_PKG_VERSION")))
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .no_proxy()
            // A redirect is an answer, not followed: a redirect to an IP literal would not
            // pass the resolver. (Uptime checks that follow redirects need a policy that runs
            // `Guard::check_url` on every hop.)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(guard)
            .build()
            .map_err(|e| NetError::Build(describe(&e)))?;
        Ok(HttpClient {
            client,
            opts: Arc::new(opts),
        })
    }

    /// A POST to `url`, to be finished and passed to [`HttpClient::send`].
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends a request built from this client and reads at most `max_response_bytes` of the
    /// reply. Any status is a reply; only failures to get one are errors.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<Reply, NetError> {
        let req = req
            .build()
            .map_err(|e| NetError::BadUrl(describe(&e.without_url())))?;
        self.guard().check_url(req.url())?;
        let mut resp = self.client.execute(req).await.map_err(failure)?;
        let status = resp.status();
        let headers = std::mem::take(resp.headers_mut());
        let cap = self.opts.max_response_bytes;
        let mut body = BytesMut::new();
        let mut truncated = false;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = cap - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // The status arrived; a body cut short does not change the answer.
                Err(_) => {
                    truncated = true;
                    break;
                }
            }
        }
        Ok(Reply {
            status,
            headers,
            body: body.freeze(),
            truncated,
        })
    }

    fn guard(&self) -> Guard {
        Guard {
            allow_private: self.opts.allow_private,
            setting: self.opts.private_setting,
        }
    }

    /// Refuses `url` when its host is an IP literal the guard blocks, or a name that resolves
    /// (now) to one: a clear error when a channel is saved. Delivery checks again at connect
    /// time, where it counts; a name that does not resolve now passes here.
    pub async fn check_target(&self, url: &str) -> Result<(), NetError> {
        let parsed = url::Url::parse(url).map_err(|e| NetError::BadUrl(e.to_string()))?;
        let guard = self.guard();
        guard.check_url(&parsed)?;
        if let (false, Some(url::Host::Domain(name))) = (guard.allow_private, parsed.host()) {
            let port = parsed.port_or_known_default().unwrap_or(0);
            if let Ok(addrs) = tokio::net::lookup_host((name, port)).await {
                guard.check_addrs(name, addrs)?;
            }
        }
        Ok(())
    }
}

/// Maps a reqwest failure to an error without the URL, keeping a refusal by the guard as one.
fn failure(e: reqwest::Error) -> NetError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return NetError::Refused(r.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return NetError::Transport("timed out".into());
    }
    NetError::Transport(describe(&e.without_url()))
}

/// An error with its causes, "a: b: c" (reqwest's own text is only the outermost).
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[derive(Clone, Copy)]
struct Guard {
    allow_private: bool,
    setting: &'static str,
}

impl Guard {
    fn refused(&self, host: &str, addr: IpAddr, why: &'static str) -> Refused {
        Refused {
            host: host.to_string(),
            addr,
            why,
            setting: self.setting,
        }
    }

    /// Checks the URL's scheme and, for an IP-literal host, the address.
    fn check_url(&self, url: &url::Url) -> Result<(), NetError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NetError::BadUrl(format!(
                "{} is not an http(s) URL",
                redact_url(url.as_str())
            )));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(NetError::BadUrl("the URL has no host".into())),
        };
        if !self.allow_private
            && let Some(why) = non_public(ip)
        {
            return Err(self.refused(&ip.to_string(), ip, why).into());
        }
        Ok(())
    }

    /// Refuses the whole answer if any address is blocked: a name that mixes public and
    /// private addresses is not one to trust with a fallback.
    fn check_addrs(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        if !self.allow_private {
            for a in &addrs {
                if let Some(why) = non_public(a.ip()) {
                    return Err(self.refused(host, a.ip(), why));
                }
            }
        }
        Ok(addrs)
    }
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = *self;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs = guard.check_addrs(&host, found)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why `ip` is not a public unicast address, or `None` when it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => non_public_v4(a),
        IpAddr::V6(a) => non_public_v6(a),
    }
}

fn non_public_v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(match o {
        [0, ..] => "unspecified",
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => "private",
        [100, 64..=127, ..] => "carrier-grade NAT",
        [127, ..] => "loopback",
        [169, 254, ..] => "link-local",
        [192, 0, 0, _] => "IETF protocol assignment",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18..=19, ..] => "benchmarking",
        [224..=239, ..] => "multicast",
        [240..=255, ..] => "reserved or broadcast",
        _ => return None,
    })
}

fn non_public_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and the old IPv4-compatible form (::a.b.c.d).
    if let Some(v4) = a.to_ipv4() {
        return non_public_v4(v4);
    }
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    Some(match s {
        // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return non_public_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => "local-use NAT64",
        // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => return non_public_v4(embedded(hi, lo)),
        [0x100, 0, 0, 0, ..] => "discard-only",
        [0x2001, 0, ..] => "Teredo",
        [0x2001, 0xdb8, ..] => "documentation",
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique local (private)",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local",
        [x, ..] if x & 0xffc0 == 0xfec0 => "site-local",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// `url` with only scheme, host and port: Slack's path, a webhook's query token and any
/// `user:password@` are credentials. `/…` marks a path or query that was removed.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = (u.path() != "/" && !u.path().is_empty())
                || u.query().is_some()
                || u.fragment().is_some();
            let rest = if hidden { "/…" } else { "" };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

/// `text` with every http(s) URL in it passed through [`redact_url`].
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["http://", "https://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .map_or(rest.len(), |n| i + n);
        // A URL ends before trailing punctuation that belongs to the sentence.
        let url = rest[i..end].trim_end_matches([',', ';', '.', ':']);
        out.push_str(&redact_url(url));
        rest = &rest[i + url.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for (a, why) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved or broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("fc00::1", "unique local (private)"),
            ("fd12:3456::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(non_public(ip(a)), Some(why), "{a}");
        }
        for a in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn urls_are_redacted_to_scheme_host_and_port() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@example.com:8080/h?token=abc"),
            "http://example.com:8080/…"
        );
        assert_eq!(redact_url("https://example.com/"), "https://example.com");
        assert_eq!(redact_url("not a url"), "(an invalid URL)");
        assert_eq!(
            redact_urls_in("POST https://x.example/a/b?c=d answered 500, see http://y.example/z."),
            "POST https://x.example/… answered 500, see http://y.example/…."
        );
        assert_eq!(redact_urls_in("no links here"), "no links here");
    }

    #[test]
    fn literal_targets_are_checked_before_sending() {
        let g = Guard {
            allow_private: false,
            setting: "[x] y",
        };
        for u in [
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/",
            "http://[::ffff:7f00:1]/",
            // WHATWG parsing turns these spellings into 127.0.0.1.
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let err = g.check_url(&url::Url::parse(u).unwrap()).unwrap_err();
            assert!(err.to_string().contains("[x] y = true"), "{u}: {err}");
        }
        assert!(
            g.check_url(&url::Url::parse("https://example.com/").unwrap())
                .is_ok()
        );
        assert!(
            g.check_url(&url::Url::parse("ftp://example.com/").unwrap())
                .is_err()
        );
        let open = Guard {
            allow_private: true,
            setting: "[x] y",
        };
        assert!(
            open.check_url(&url::Url::parse("http://127.0.0.1/").unwrap())
                .is_ok()
        );
    }
}
