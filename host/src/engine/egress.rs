//! The outbound-network policy of an attempt: which hosts a guest may reach
//! through `wasi:http`, which private addresses (if any) are allowed, and the
//! limits of each request.
//!
//! A namespace stores an [`EgressPolicy`] (JSON, owned by the service); the
//! service compiles it per module into [`EgressRules`], which travel with the
//! [`AttemptRequest`](super::AttemptRequest) to the sender in `http.rs`. The
//! sender asks two questions of the rules on every request: is this URL's
//! scheme, host and port allowed ([`EgressRules::check_url`]), and are all
//! the addresses its name resolved to public or explicitly allowed
//! ([`EgressRules::check_ip`]). Nothing here does I/O, so all of it is tested
//! below without a network.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Outbound HTTP policy of a namespace, as stored and shown. The default
/// (no hosts) denies every request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct EgressPolicy {
    /// Hosts requests may go to: `https://api.example.com`, `*.example.com`,
    /// `http://127.0.0.1:8080`, `example.com:*`, `*` (any host). Without a
    /// scheme both http and https match; without a port only the scheme's
    /// default port (80, 443) does.
    pub allow_hosts: Vec<String>,
    /// Non-public address ranges (CIDR, e.g. `127.0.0.0/8`, `10.0.0.0/8`,
    /// `::1/128`) requests may reach. Loopback, private, CGNAT, link-local,
    /// unique-local, multicast and unspecified addresses are refused unless
    /// listed here, whatever `allow_hosts` says.
    pub allow_private: Vec<String>,
    /// Narrows a module: `NAME` or `NAME@VERSION` -> hosts it may reach. A
    /// request must match both this list and `allow_hosts`. The service
    /// binds each entry to the content of the version(s) it names when the
    /// policy is set; other content uploaded under a narrowed name reaches
    /// nothing, and modules not named here get `allow_hosts` as is.
    pub modules: BTreeMap<String, Vec<String>>,
    /// Limits of each request.
    pub limits: EgressLimits,
}

/// Limits of outbound requests; defaults suit an untrusted tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct EgressLimits {
    /// Requests one attempt may send (each redirect hop is one).
    pub max_requests_per_attempt: u32,
    /// Largest request body, in bytes.
    pub max_request_bytes: u64,
    /// Largest response body, in bytes; a longer body stops with an error.
    pub max_response_bytes: u64,
    /// DNS resolution plus TCP (and TLS) connection, in ms.
    pub connect_timeout_ms: u64,
    /// From sending the request to the response head, in ms.
    pub first_byte_timeout_ms: u64,
    /// Whole request, response body included, in ms.
    pub total_timeout_ms: u64,
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self {
            max_requests_per_attempt: 100,
            max_request_bytes: 1 << 20,
            max_response_bytes: 8 << 20,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 10_000,
            total_timeout_ms: 30_000,
        }
    }
}

impl EgressPolicy {
    /// True if no host is allowed (every request is denied).
    pub fn is_deny_all(&self) -> bool {
        self.allow_hosts.is_empty()
    }

    /// Checks every pattern, range and limit; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        self.compile(None)?;
        for (module, hosts) in &self.modules {
            parse_patterns(hosts).map_err(|e| format!("modules.{module}: {e}"))?;
        }
        let l = &self.limits;
        if l.connect_timeout_ms == 0 || l.first_byte_timeout_ms == 0 || l.total_timeout_ms == 0 {
            return Err("egress timeouts must be at least 1 ms".into());
        }
        Ok(())
    }

    /// The rules for one module of the namespace, narrowed to `narrowed`
    /// (the hosts of its entries in [`modules`](Self::modules), as the
    /// service matched them to the module's content; empty reaches nothing)
    /// or not narrowed (`None`).
    pub fn compile(&self, narrowed: Option<&[String]>) -> Result<EgressRules, String> {
        let hosts = parse_patterns(&self.allow_hosts)?;
        let narrowed = match narrowed {
            Some(list) => Some(parse_patterns(list)?),
            None => None,
        };
        let private = self
            .allow_private
            .iter()
            .map(|c| parse_range(c))
            .collect::<Result<_, _>>()?;
        Ok(EgressRules {
            hosts,
            narrowed,
            private,
            limits: self.limits.clone(),
        })
    }
}

/// A compiled policy, as the sender checks it.
#[derive(Clone, Debug, Default)]
pub struct EgressRules {
    hosts: Vec<HostPattern>,
    narrowed: Option<Vec<HostPattern>>,
    private: Vec<IpNet>,
    /// Limits of each request.
    pub limits: EgressLimits,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No host at all is granted.
    #[error("no hosts are granted to this module")]
    NothingGranted,
    /// The host is not on the allowlist.
    #[error("{0} is not on the namespace's allowlist")]
    HostNotAllowed(String),
    /// The host is on the namespace's list but not the module's.
    #[error("{0} is not on this module's allowlist")]
    ModuleNotAllowed(String),
    /// The host is or resolves to an address that is not public.
    #[error(
        "{}{ip} is a {class} address, and private networks are not allowed",
        resolved(host)
    )]
    PrivateAddress {
        /// Host as requested.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// What kind of address it is.
        class: &'static str,
    },
    /// The attempt sent its maximum number of requests.
    #[error("the attempt already sent its maximum of {0} requests")]
    TooManyRequests(u32),
    /// The URL has no host or an unsupported scheme.
    #[error("{0}")]
    BadUrl(String),
}

/// `"NAME resolves to "` when the host was a name, nothing for an address.
fn resolved(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(_) => String::new(),
        Err(_) => format!("{host} resolves to "),
    }
}

impl EgressRules {
    /// Rules that deny everything (no policy).
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Checks scheme, host and port of a request URL.
    pub fn check_url(&self, https: bool, host: &str, port: u16) -> Result<(), Denial> {
        if self.hosts.is_empty() {
            return Err(Denial::NothingGranted);
        }
        let host = normalize_host(host);
        let shown = format!("{}://{}:{port}", if https { "https" } else { "http" }, host);
        if !self.hosts.iter().any(|p| p.matches(https, &host, port)) {
            return Err(Denial::HostNotAllowed(shown));
        }
        if let Some(list) = &self.narrowed {
            if !list.iter().any(|p| p.matches(https, &host, port)) {
                return Err(Denial::ModuleNotAllowed(shown));
            }
        }
        Ok(())
    }

    /// Checks one address a host resolved to.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Denial> {
        let ip = canonical(ip);
        let Some(class) = non_public(ip) else {
            return Ok(());
        };
        if self.private.iter().any(|c| c.contains(&ip)) {
            return Ok(());
        }
        Err(Denial::PrivateAddress {
            host: host.to_owned(),
            ip,
            class,
        })
    }

    /// Connection (DNS + TCP + TLS) timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.connect_timeout_ms)
    }
}

/// Lower case, without the brackets of an IPv6 literal or a trailing dot.
fn normalize_host(host: &str) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// `*.example.com`: any name under the suffix (stored with its dot).
    Suffix(String),
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortMatch {
    /// The scheme's default port.
    Default,
    Any,
    Is(u16),
}

/// One allowlist entry: `[scheme://]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPattern {
    /// `None`: http and https; `Some(true)`: https only.
    https: Option<bool>,
    host: HostMatch,
    port: PortMatch,
}

fn parse_patterns(list: &[String]) -> Result<Vec<HostPattern>, String> {
    list.iter().map(|p| HostPattern::parse(p)).collect()
}

impl HostPattern {
    fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid host pattern {s:?}: {why}");
        let (https, rest) = match s.split_once("://") {
            Some(("https", r)) => (Some(true), r),
            Some(("http", r)) => (Some(false), r),
            Some(_) => return Err(bad("the scheme must be http or https")),
            None => (None, s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad("expected [scheme://]host[:port], nothing else"));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Is(p.parse().map_err(|_| bad("the port must be 1-65535"))?),
        };
        if port == PortMatch::Is(0) {
            return Err(bad("the port must be 1-65535"));
        }
        let host = normalize_host(host);
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(bad("a wildcard is '*.' followed by a domain"));
            }
            HostMatch::Suffix(format!(".{suffix}"))
        } else if host.is_empty()
            || host.contains('*')
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad("not a host name or address"));
        } else {
            HostMatch::Exact(host)
        };
        Ok(Self { https, host, port })
    }

    fn matches(&self, https: bool, host: &str, port: u16) -> bool {
        let default = if https { 443 } else { 80 };
        self.https.is_none_or(|s| s == https)
            && match &self.port {
                PortMatch::Default => port == default,
                PortMatch::Any => true,
                PortMatch::Is(p) => *p == port,
            }
            && match &self.host {
                HostMatch::Any => true,
                HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
                HostMatch::Exact(h) => h == host,
            }
    }
}

/// Parses an `allow_private` entry: a CIDR range or a single address. The
/// address is judged as [`canonical`] makes it, so `::ffff:127.0.0.0/8` is
/// refused (its prefix is longer than an IPv4 address) rather than read as
/// an IPv6 range that no canonical address falls in.
fn parse_range(s: &str) -> Result<IpNet, String> {
    let bad = || format!("invalid address range {s:?}: expected CIDR like 127.0.0.0/8");
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let net = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
    match prefix {
        Some(p) => IpNet::new(net, p).map_err(|_| bad()),
        None => Ok(IpNet::from(net)),
    }
}

/// `64:ff9b::/96`, the well-known NAT64 prefix.
const NAT64: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
/// `::ffff:0:0/96`, IPv4-translated addresses (SIIT).
const SIIT: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96);
/// `2002::/16`, 6to4.
const SIX_TO_FOUR: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);
/// `::/96`, IPv4-compatible addresses (deprecated).
const V4_COMPATIBLE: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 96);

/// IPv4 addresses in IPv6 clothing judged as the IPv4 address they reach:
/// mapped `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d` (SIIT), the
/// well-known NAT64 prefix `64:ff9b::/96` and 6to4 `2002:AABB:CCDD::/48`
/// (whose relay delivers to the IPv4 host `A.B.C.D`).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let o = v6.octets();
            if NAT64.contains(&v6) || SIIT.contains(&v6) {
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            if SIX_TO_FOUR.contains(&v6) {
                return IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Non-public IPv4 ranges and what they are.
const NON_PUBLIC_V4: &[(Ipv4Net, &str)] = {
    const fn net(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
        Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
    }
    &[
        (net(0, 0, 0, 0, 8), "unspecified"),
        (net(10, 0, 0, 0, 8), "private"),
        (net(100, 64, 0, 0, 10), "shared (CGNAT)"),
        (net(127, 0, 0, 0, 8), "loopback"),
        (net(169, 254, 0, 0, 16), "link-local"),
        (net(172, 16, 0, 0, 12), "private"),
        (net(192, 0, 0, 0, 24), "IETF protocol"),
        (net(192, 168, 0, 0, 16), "private"),
        (net(198, 18, 0, 0, 15), "benchmarking"),
        (net(224, 0, 0, 0, 4), "multicast"),
        (net(240, 0, 0, 0, 4), "reserved"),
    ]
};

/// Non-public IPv6 ranges (besides `::`, `::1` and IPv4-compatible
/// addresses) and what they are.
const NON_PUBLIC_V6: &[(Ipv6Net, &str)] = {
    const fn net(first: [u16; 3], prefix: u8) -> Ipv6Net {
        let [a, b, c] = first;
        Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0), prefix)
    }
    &[
        (net([0xfe80, 0, 0], 10), "link-local"),
        (net([0xfec0, 0, 0], 10), "site-local"),
        (net([0xfc00, 0, 0], 7), "unique-local"),
        (net([0xff00, 0, 0], 8), "multicast"),
        // Teredo tunnels to an IPv4 client behind a NAT chosen by the
        // address's own bits; nothing public needs it.
        (net([0x2001, 0, 0], 32), "Teredo tunnel"),
        // Local-use NAT64 (RFC 8215) translates into the operator's own
        // IPv4 network.
        (net([0x64, 0xff9b, 1], 48), "local-use NAT64"),
        (net([0x2001, 0xdb8, 0], 32), "documentation"),
        (net([0x100, 0, 0], 64), "discard"),
    ]
};

/// What kind of non-public address `ip` is, or `None` if it is public.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => NON_PUBLIC_V4
            .iter()
            .find(|(net, _)| net.contains(&a))
            .map(|(_, class)| *class),
        IpAddr::V6(a) => {
            if a == Ipv6Addr::UNSPECIFIED {
                Some("unspecified")
            } else if a == Ipv6Addr::LOCALHOST {
                Some("loopback")
            } else if let Some((_, class)) = NON_PUBLIC_V6.iter().find(|(net, _)| net.contains(&a))
            {
                Some(*class)
            } else if V4_COMPATIBLE.contains(&a) {
                // IPv4-compatible `::a.b.c.d` (deprecated): judged as the IPv4.
                let o = a.octets();
                non_public(IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15])))
                    .or(Some("IPv4-compatible"))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: &[&str], private: &[&str]) -> EgressRules {
        EgressPolicy {
            allow_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allow_private: private.iter().map(|s| s.to_string()).collect(),
            ..EgressPolicy::default()
        }
        .compile(None)
        .unwrap()
    }

    #[test]
    fn host_patterns_match_scheme_host_and_port() {
        let r = rules(
            &[
                "https://api.example.com",
                "*.example.org:8443",
                "http://127.0.0.1:8080",
                "[::1]:*",
            ],
            &[],
        );
        assert!(r.check_url(true, "api.example.com", 443).is_ok());
        assert!(r.check_url(true, "API.Example.com.", 443).is_ok());
        assert!(r.check_url(false, "api.example.com", 80).is_err());
        assert!(r.check_url(true, "api.example.com", 8443).is_err());
        assert!(r.check_url(true, "evil-api.example.com", 443).is_err());
        assert!(r.check_url(true, "a.b.example.org", 8443).is_ok());
        assert!(r.check_url(false, "a.example.org", 8443).is_ok());
        assert!(r.check_url(true, "example.org", 8443).is_err());
        assert!(r.check_url(true, "a.example.org", 443).is_err());
        assert!(r.check_url(false, "127.0.0.1", 8080).is_ok());
        assert!(r.check_url(false, "127.0.0.1", 8081).is_err());
        assert!(r.check_url(false, "[::1]", 9).is_ok());
        assert_eq!(
            rules(&[], &[]).check_url(true, "x", 443),
            Err(Denial::NothingGranted)
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "ftp://x",
            "https://x/path",
            "x:0",
            "x:99999",
            "*x.com",
            "a.*.com",
            "",
            "u@x",
        ] {
            assert!(HostPattern::parse(p).is_err(), "{p}");
        }
        assert!(parse_range("10.0.0.0/33").is_err());
        assert!(parse_range("::ffff:127.0.0.0/104").is_err());
        assert!(parse_range("nope").is_err());
    }

    #[test]
    fn modules_are_narrowed_within_the_namespace() {
        let mut p = EgressPolicy {
            allow_hosts: vec!["*.example.com".into()],
            ..EgressPolicy::default()
        };
        p.modules
            .insert("billing".into(), vec!["pay.example.com".into()]);
        let billing = p
            .compile(p.modules.get("billing").map(Vec::as_slice))
            .unwrap();
        assert!(billing.check_url(true, "pay.example.com", 443).is_ok());
        assert!(matches!(
            billing.check_url(true, "www.example.com", 443),
            Err(Denial::ModuleNotAllowed(_))
        ));
        let other = p.compile(None).unwrap();
        assert!(other.check_url(true, "www.example.com", 443).is_ok());
        let unbound = p.compile(Some(&[])).unwrap();
        assert!(matches!(
            unbound.check_url(true, "pay.example.com", 443),
            Err(Denial::ModuleNotAllowed(_))
        ));
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let r = rules(&["*"], &[]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            // 6to4 of 127.0.0.1 and of 169.254.169.254
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            // Teredo (server 65.54.227.120, any client)
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            // local-use NAT64 and SIIT-translated forms of private addresses
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "2001:db8::1",
            "100::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(r.check_ip("h", ip).is_err(), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "::ffff:8.8.8.8",
            "::ffff:0:808:808",
            "2002:5db8:d822::1",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(r.check_ip("h", ip).is_ok(), "{ip} should be allowed");
        }
        let r = rules(&["*"], &["127.0.0.0/8", "::1"]);
        assert!(r.check_ip("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(r.check_ip("h", "::ffff:127.0.0.2".parse().unwrap()).is_ok());
        assert!(r.check_ip("h", "::1".parse().unwrap()).is_ok());
        assert!(r.check_ip("h", "10.0.0.1".parse().unwrap()).is_err());
    }
}
