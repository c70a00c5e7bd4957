//! Who the client is: its address, believed from `X-Forwarded-For` only behind trusted
//! proxies (harden-server, issue 12 items 4 and 6).

use std::net::IpAddr;

/// The client's address: the TCP peer, or, when the peer is one of `trusted` proxies, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
/// are whatever the client claimed and are not believed).
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
    trusted: &[crate::limit::Cidr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !crate::limit::Cidr::any_contains(trusted, peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else { return Some(peer) };
        for part in v.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A garbled list: trust nothing the proxy passed on.
                Err(_) => return Some(peer),
            }
        }
    }
    let mut client = peer;
    for ip in hops.into_iter().rev() {
        client = ip;
        if !crate::limit::Cidr::any_contains(trusted, ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<crate::limit::Cidr> =
            vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.1.2.3".parse().unwrap(),
        );
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // From the proxy: the right-most entry that is not a proxy; the client's own claim
        // (6.6.6.6) to its left is not believed.
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.7"));
        // From anyone else the header is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
        // No header, or a garbled one: the peer.
        let empty = axum::http::HeaderMap::new();
        assert_eq!(
            client_ip(ip("127.0.0.1"), &empty, &trusted),
            ip("127.0.0.1")
        );
        h.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
    }
}
