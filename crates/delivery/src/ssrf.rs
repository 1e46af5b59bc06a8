//! Refusing to call addresses a user should not be able to aim the engine at.
//!
//! Destination endpoints are URLs that users type in. Before the engine connects, the host is
//! resolved and every address checked: link-local (including cloud metadata at
//! 169.254.169.254), unspecified, multicast and broadcast addresses are always refused;
//! loopback, private (RFC 1918), carrier-grade NAT and unique-local addresses are refused unless
//! the operator sets `allow_private_endpoints`. The connection is then pinned to the checked
//! address, so a DNS answer that changes between the check and the connect cannot slip
//! through; redirects are never followed (see [`crate::client`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address may not be called, or `None` if it may.
pub fn refusal(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_private),
        IpAddr::V6(v6) => refusal_v6(v6, allow_private),
    }
}

fn refusal_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() {
        return Some("a link-local address (cloud metadata services live there)");
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 {
        return Some("not a unicast address");
    }
    if ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("a cloud metadata address");
    }
    let private = ip.is_loopback() || ip.is_private() || (a == 100 && (64..128).contains(&b));
    (private && !allow_private)
        .then_some("a loopback or private address (set allow_private_endpoints to allow it)")
}

fn refusal_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if (first & 0xffc0) == 0xfe80 {
        return Some("a link-local address");
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not a unicast address");
    }
    let private = ip.is_loopback() || (first & 0xfe00) == 0xfc00;
    (private && !allow_private)
        .then_some("a loopback or private address (set allow_private_endpoints to allow it)")
}

/// Resolves `url`'s host and checks every address; returns the address to connect to.
pub async fn resolve(url: &reqwest::Url, allow_private: bool) -> Result<SocketAddr, String> {
    let host = url
        .host_str()
        .ok_or_else(|| "the endpoint URL has no host".to_owned())?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "the endpoint URL has no port".to_owned())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("DNS error: cannot resolve {host}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("DNS error: {host} has no address"));
    }
    // Any refused address refuses the host: otherwise which one is used would be luck.
    for addr in &addrs {
        if let Some(why) = refusal(addr.ip(), allow_private) {
            return Err(format!(
                "refused to connect to {host} ({}): {why}",
                addr.ip()
            ));
        }
    }
    Ok(addrs[0])
}

/// A client for one call to `url`: checked as above and pinned to the checked address.
pub async fn pinned_client(
    url: &reqwest::Url,
    allow_private: bool,
) -> Result<reqwest::Client, String> {
    let addr = resolve(url, allow_private).await?;
    let host = url.host_str().unwrap_or_default().to_owned();
    crate::client::builder(None)?
        .resolve(&host, addr)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, allow: bool) -> bool {
        refusal(ip.parse().unwrap(), allow).is_some()
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "0.0.0.0",
            "::",
            "::ffff:169.254.169.254",
            "224.0.0.1",
        ] {
            assert!(refused(ip, true), "{ip}");
        }
    }

    #[test]
    fn private_addresses_only_when_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(refused(ip, false), "{ip}");
            assert!(!refused(ip, true), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::"] {
            assert!(!refused(ip, false), "{ip}");
        }
    }

    #[tokio::test]
    async fn resolve_checks_literals_and_names() {
        let url: reqwest::Url = "http://127.0.0.1:9/x".parse().unwrap();
        assert!(
            resolve(&url, false)
                .await
                .unwrap_err()
                .contains("allow_private_endpoints")
        );
        assert_eq!(resolve(&url, true).await.unwrap().port(), 9);
        let url: reqwest::Url = "http://localhost:9/x".parse().unwrap();
        assert!(resolve(&url, false).await.is_err());
        let url: reqwest::Url = "http://[::1]:9/x".parse().unwrap();
        assert!(resolve(&url, false).await.is_err());
    }
}
