//! Refusing to call addresses a user should not be able to aim the engine at.
//!
//! Destination endpoints are URLs that users type in. Before the engine connects, the host is
//! resolved and every address checked: link-local (including cloud metadata at
//! 169.254.169.254), unspecified, multicast and broadcast addresses are always refused;
//! loopback, private (RFC 1918), carrier-grade NAT and unique-local addresses are refused unless
//! the operator sets `allow_private_endpoints` (all of them) or lists the exact `address:port`
//! in `private_endpoints`. The connection is then pinned to the checked
//! address, so a DNS answer that changes between the check and the connect cannot slip
//! through; redirects are never followed (see [`crate::client`]).
//!
//! Names are looked up through a [`Resolve`] implementation: the system's resolver in
//! production ([`SystemResolver`]), a scripted one in tests, so a test can make a name's answer
//! change between two lookups (DNS rebinding) and show that the second answer is checked too.
//! Pinned clients ignore `HTTP_PROXY`/`HTTPS_PROXY`: a proxy would resolve the name itself and
//! connect wherever its answer pointed, past the check.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// Why an address may not be called, or `None` if it may.
pub fn refusal(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_private),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // Reaching such an address may reach the IPv4 host inside it, so that host decides.
            Some(v4) => refusal_v4(v4, allow_private),
            None => refusal_v6(v6, allow_private),
        },
    }
}

/// The IPv4 address inside an IPv6 address that may lead to it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated but still parsed by stacks), NAT64's well-known
/// prefix (`64:ff9b::a.b.c.d`, RFC 6052) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    let compatible = s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    if compatible || nat64 {
        return Some(v4(s[6], s[7]));
    }
    (s[0] == 0x2002).then(|| v4(s[1], s[2]))
}

fn refusal_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_link_local() {
        return Some("a link-local address (cloud metadata services live there)");
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 || a >= 240 {
        return Some("not a unicast address");
    }
    if ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("a cloud metadata address");
    }
    // Loopback, RFC 1918, carrier-grade NAT (100.64/10), IETF protocol assignments (192.0.0/24)
    // and benchmarking networks (198.18/15): none of them is a customer's public endpoint.
    let private = ip.is_loopback()
        || ip.is_private()
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18);
    (private && !allow_private)
        .then_some("a loopback or private address (set allow_private_endpoints to allow it)")
}

fn refusal_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let [first, second, third, ..] = ip.segments();
    if (first & 0xffc0) == 0xfe80 {
        return Some("a link-local address");
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not a unicast address");
    }
    // Loopback, unique local (fc00::/7), the old site-local (fec0::/10) and NAT64's local-use
    // prefix (64:ff9b:1::/48, RFC 8215), whose embedded address depends on the network.
    let private = ip.is_loopback()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfec0
        || (first == 0x64 && second == 0xff9b && third == 1);
    (private && !allow_private)
        .then_some("a loopback or private address (set allow_private_endpoints to allow it)")
}

/// The future a [`Resolve`] returns.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Looks up a host name's addresses. The engine uses [`SystemResolver`]; tests supply their own
/// to script what DNS answers.
pub trait Resolve: Send + Sync {
    /// The addresses of `host` (a name, never an IP literal), with `port` filled in.
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A resolver shared by every outbound client of a server; [`SystemResolver`] by default.
#[derive(Clone)]
pub struct SharedResolver(Arc<dyn Resolve>);

impl SharedResolver {
    pub fn new(resolver: impl Resolve + 'static) -> Self {
        SharedResolver(Arc::new(resolver))
    }
}

impl Default for SharedResolver {
    fn default() -> Self {
        SharedResolver::new(SystemResolver)
    }
}

impl fmt::Debug for SharedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedResolver")
    }
}

impl Resolve for SharedResolver {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a> {
        self.0.lookup(host, port)
    }
}

/// Which loopback and private addresses an operator lets outbound requests reach: all of them
/// (`allow_private_endpoints`), or only some exact `address:port`s (`private_endpoints`, so
/// `wharf up` can reach its own loopback destination and nothing else on the machine).
/// Metadata, link-local and other never-allowed ranges stay refused either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateAccess {
    pub all: bool,
    pub endpoints: Vec<SocketAddr>,
}

impl PrivateAccess {
    /// Every private address allowed (`true`) or none (`false`).
    pub fn all(all: bool) -> Self {
        PrivateAccess {
            all,
            endpoints: Vec::new(),
        }
    }

    /// Whether a private `addr` may be reached.
    pub fn allows(&self, addr: &SocketAddr) -> bool {
        self.all || self.endpoints.contains(addr)
    }
}

/// Why an endpoint may not be called. Said to the operator as the reason an attempt or a
/// Verify and Save failed, so each names the host and what to change.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the endpoint URL has no host: give one like https://dest.example.com/redox")]
    NoHost,
    #[error("the endpoint URL has no port and its scheme has none: use http or https")]
    NoPort,
    #[error("DNS error: cannot resolve {host}: {source}")]
    Dns {
        host: String,
        source: std::io::Error,
    },
    #[error("DNS error: {host} has no address")]
    NoAddress { host: String },
    /// The host resolves to an address this process may not reach (private, loopback, ...).
    #[error("refused to connect to {host} ({ip}): {why}")]
    Address {
        host: String,
        ip: IpAddr,
        why: &'static str,
    },
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
}

/// Resolves `url`'s host with the system's resolver and checks every address; returns the
/// address to connect to.
pub async fn resolve(url: &reqwest::Url, private: &PrivateAccess) -> Result<SocketAddr, Refused> {
    resolve_with(&SystemResolver, url, private).await
}

/// [`resolve`] with a given resolver.
pub async fn resolve_with(
    resolver: &dyn Resolve,
    url: &reqwest::Url,
    private: &PrivateAccess,
) -> Result<SocketAddr, Refused> {
    let host = url.host_str().ok_or(Refused::NoHost)?;
    let port = url.port_or_known_default().ok_or(Refused::NoPort)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => resolver
            .lookup(bare, port)
            .await
            .map_err(|source| Refused::Dns {
                host: host.to_owned(),
                source,
            })?,
    };
    if addrs.is_empty() {
        return Err(Refused::NoAddress {
            host: host.to_owned(),
        });
    }
    // Any refused address refuses the host: otherwise which one is used would be luck.
    for addr in &addrs {
        if let Some(why) = refusal(addr.ip(), private.allows(addr)) {
            return Err(Refused::Address {
                host: host.to_owned(),
                ip: addr.ip(),
                why,
            });
        }
    }
    Ok(addrs[0])
}

/// A client for one call to `url`: checked as above and pinned to the checked address.
pub async fn pinned_client(
    url: &reqwest::Url,
    private: &PrivateAccess,
) -> Result<reqwest::Client, Refused> {
    pinned_client_with(&SystemResolver, url, private).await
}

/// [`pinned_client`] with a given resolver.
pub async fn pinned_client_with(
    resolver: &dyn Resolve,
    url: &reqwest::Url,
    private: &PrivateAccess,
) -> Result<reqwest::Client, Refused> {
    let addr = resolve_with(resolver, url, private).await?;
    let host = url.host_str().unwrap_or_default().to_owned();
    crate::client::builder(None)?
        // A proxy from the environment would resolve and connect by itself, past the check.
        .no_proxy()
        .resolve(&host, addr)
        .build()
        .map_err(|e| Refused::Client(crate::client::ClientError::Build(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use wharf_testkit::Recorder;

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
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "224.0.0.1",
            "ff02::1",
        ] {
            assert!(refused(ip, true), "{ip}");
            assert!(refused(ip, false), "{ip}");
        }
    }

    #[tokio::test]
    async fn listed_private_endpoints_are_reached_and_no_other() {
        let private = PrivateAccess {
            all: false,
            endpoints: vec!["127.0.0.1:8443".parse().unwrap()],
        };
        let to = |u: &str| reqwest::Url::parse(u).unwrap();
        let reached = resolve(&to("http://127.0.0.1:8443/redox"), &private).await;
        assert_eq!(reached.unwrap(), "127.0.0.1:8443".parse().unwrap());
        for other in [
            "http://127.0.0.1:8444/",
            "http://127.0.0.2:8443/",
            "http://10.0.0.1:8443/",
        ] {
            let e = resolve(&to(other), &private).await.unwrap_err().to_string();
            assert!(e.contains("allow_private_endpoints"), "{other}: {e}");
        }
        let metadata = PrivateAccess {
            all: false,
            endpoints: vec!["169.254.169.254:80".parse().unwrap()],
        };
        assert!(
            resolve(&to("http://169.254.169.254/"), &metadata)
                .await
                .is_err()
        );
    }

    #[test]
    fn private_addresses_only_when_allowed() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::1",
            "fd00::1",
            "fd12::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(refused(ip, false), "{ip}");
            assert!(!refused(ip, true), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(!refused(ip, false), "{ip}");
        }
    }

    #[tokio::test]
    async fn resolve_checks_literals_and_names() {
        for (url, allowed) in [
            ("http://127.0.0.1:9/x", true),
            ("http://localhost:9/x", true),
            ("http://[::1]:9/x", true),
            ("http://[::ffff:127.0.0.1]:9/x", true),
            ("http://10.0.0.1/x", true),
            ("http://192.168.0.1/x", true),
            ("http://[fd00::1]/x", true),
            ("http://169.254.169.254/latest/meta-data", false),
            ("http://0.0.0.0:9/x", false),
            ("http://[::ffff:169.254.169.254]/x", false),
        ] {
            let url: reqwest::Url = url.parse().unwrap();
            let refused = resolve(&url, &PrivateAccess::all(false))
                .await
                .unwrap_err()
                .to_string();
            assert!(
                refused.starts_with("refused to connect"),
                "{url}: {refused}"
            );
            assert_eq!(
                resolve(&url, &PrivateAccess::all(true)).await.is_ok(),
                allowed,
                "{url}"
            );
        }
        let url: reqwest::Url = "http://127.0.0.1:9/x".parse().unwrap();
        assert!(
            resolve(&url, &PrivateAccess::all(false))
                .await
                .unwrap_err()
                .to_string()
                .contains("allow_private_endpoints")
        );
        assert_eq!(
            resolve(&url, &PrivateAccess::all(true))
                .await
                .unwrap()
                .port(),
            9
        );
    }

    /// DNS as a test scripts it: each lookup takes the next answer (the last one repeats).
    struct Scripted {
        answers: Mutex<VecDeque<Vec<IpAddr>>>,
        lookups: AtomicUsize,
    }

    impl Scripted {
        fn new(answers: &[&[&str]]) -> Arc<Self> {
            Arc::new(Scripted {
                answers: Mutex::new(
                    answers
                        .iter()
                        .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
                        .collect(),
                ),
                lookups: AtomicUsize::new(0),
            })
        }
    }

    impl Resolve for Arc<Scripted> {
        fn lookup<'a>(&'a self, _host: &'a str, port: u16) -> Lookup<'a> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers.front().cloned().unwrap_or_default()
            };
            Box::pin(async move {
                Ok(answer
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect())
            })
        }
    }

    #[tokio::test]
    async fn a_changed_dns_answer_is_checked_again() {
        // The name first points at a public address, then (rebinding) at the machine itself,
        // where an internal service listens.
        let internal = Recorder::ok().await;
        let dns = Scripted::new(&[&["93.184.216.34"], &["127.0.0.1"]]);
        let url: reqwest::Url = format!("http://partner.test:{}/hook", internal.addr.port())
            .parse()
            .unwrap();
        assert!(
            pinned_client_with(&dns, &url, &PrivateAccess::all(false))
                .await
                .is_ok()
        );
        let second = pinned_client_with(&dns, &url, &PrivateAccess::all(false))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            second,
            "refused to connect to partner.test (127.0.0.1): a loopback or private address (set allow_private_endpoints to allow it)"
        );
        assert_eq!(dns.lookups.load(Ordering::SeqCst), 2);
        assert_eq!(internal.count(), 0, "no connection to the second answer");

        // One refused address among several refuses the name (which one a client would pick
        // is luck), even when the operator allows private addresses.
        let dns = Scripted::new(&[&["93.184.216.34", "169.254.169.254"]]);
        let refused = pinned_client_with(&dns, &url, &PrivateAccess::all(true))
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("169.254.169.254"), "{refused}");
        let dns = Scripted::new(&[&[]]);
        assert!(
            resolve_with(&dns, &url, &PrivateAccess::all(true))
                .await
                .unwrap_err()
                .to_string()
                .contains("has no address")
        );
    }

    #[tokio::test]
    async fn a_pinned_client_connects_only_to_the_checked_address() {
        // After the check, the name's answer changes to a forbidden address: the client keeps
        // connecting to the address that was checked, and never asks DNS again itself.
        let checked = Recorder::ok().await;
        let dns = Scripted::new(&[&["127.0.0.1"], &["169.254.169.254"]]);
        let url: reqwest::Url = format!("http://partner.test:{}/hook", checked.addr.port())
            .parse()
            .unwrap();
        let client = pinned_client_with(&dns, &url, &PrivateAccess::all(true))
            .await
            .unwrap();
        for _ in 0..3 {
            let response = client.post(url.clone()).body("x").send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        assert_eq!(checked.count(), 3);
        assert_eq!(dns.lookups.load(Ordering::SeqCst), 1);
        // The next client for the name is checked against the new answer, and refused.
        let refused = pinned_client_with(&dns, &url, &PrivateAccess::all(true))
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("link-local"), "{refused}");
    }

    /// A server that answers every request with `302 Location: <location>`.
    async fn redirecting_to(location: String) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let location = location.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let internal = Recorder::ok().await;
        let addr = redirecting_to(internal.url("/admin")).await;
        let url: reqwest::Url = format!("http://{addr}/hook").parse().unwrap();
        let client = pinned_client(&url, &PrivateAccess::all(true))
            .await
            .unwrap();
        let response = client.post(url).body("x").send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(internal.count(), 0);
    }
}
