//! Who is at the other end of a request: the TCP peer, or, when that peer is the configured
//! `trusted_proxy`, the client the proxy names last in X-Forwarded-For (the address the proxy
//! itself saw; anything before it the client could have written). Used for the per-client
//! sign-in limit and the audit log.

use super::tls::TlsListener;
use axum::extract::connect_info::Connected;
use axum::http::HeaderMap;
use axum::serve::IncomingStream;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpListener;

/// The TCP peer of a connection, plain or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// The client's address: X-Forwarded-For's last entry when the peer is `trusted_proxy`.
pub fn client_ip(trusted_proxy: Option<IpAddr>, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if trusted_proxy != Some(peer.ip()) {
        return peer.ip();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trusted_proxy_is_believed_and_only_its_own_entry() {
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        let trusted = Some("127.0.0.1".parse().unwrap());
        assert_eq!(client_ip(trusted, proxy, &h), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(None, proxy, &h), proxy.ip(), "no proxy configured: the header is ignored");
        let other: SocketAddr = "198.51.100.1:1".parse().unwrap();
        assert_eq!(client_ip(trusted, other, &h), other.ip(), "from anyone else: ignored");
        assert_eq!(client_ip(trusted, proxy, &HeaderMap::new()), proxy.ip());
    }
}
