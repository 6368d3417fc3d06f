//! Which webhook targets are refused (server-side request forgery into the
//! operator's network; docs/api.md "Webhooks"): a URL whose host is, or resolves
//! to, a loopback, private, link-local, carrier-grade NAT, multicast,
//! broadcast, unspecified or reserved address, unless the address lies in
//! one of the CIDRs of `webhooks.allowed_target_cidrs`.
//!
//! One policy, two places: the gateway checks at registration (and on a URL
//! change), the dispatcher again at every delivery, inside its HTTP client's
//! resolver, because a DNS answer can change after registration
//! (DNS rebinding). Reads no environment itself: [`TargetPolicy`] is built
//! from `Settings`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use crate::settings::WebhookSettings;

/// A target refused by policy; its message is what the API and the delivery
/// log show, so it names the address and its kind only when the customer
/// wrote that address: what a host *name* resolved to is the operator's
/// network, never told to a tenant (`ip` and `kind` are for the operator's
/// logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRefused {
    pub host: String,
    pub ip: IpAddr,
    pub kind: &'static str,
    /// The host was an IP literal, not a name.
    pub literal: bool,
}

impl std::fmt::Display for TargetRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HINT: &str = "the operator can allow it in webhooks.allowed_target_cidrs";
        if self.literal {
            write!(
                f,
                "refused target {}: {} is a {} address ({HINT})",
                self.host, self.ip, self.kind
            )
        } else {
            write!(
                f,
                "refused target {}: the name resolves to an address that is not public ({HINT})",
                self.host
            )
        }
    }
}

impl std::error::Error for TargetRefused {}

/// An IPv4 or IPv6 network, `address/prefix` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn same_prefix(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
            if prefix == 0 {
                return true;
            }
            let shift = u32::from(bits - prefix);
            (a >> shift) == (b >> shift)
        }
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(n)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(n), IpAddr::V6(ip)) => {
                same_prefix(u128::from(n), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// `::ffff:a.b.c.d` is the IPv4 host a.b.c.d, for the allow-list as for the
/// classification.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why `ip` may not be a target, or `None` when it is a public address.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        // 100.64.0.0/10, RFC 6598 shared address space.
        Some("carrier-grade NAT")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_unspecified() || a == 0 {
        // 0.0.0.0/8 reaches the local host on most systems.
        Some("unspecified")
    } else if a >= 240
        || (a, b, c) == (192, 0, 0)
        || (a, b, c) == (192, 0, 2)
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
        || (a == 198 && (b & 0xfe) == 18)
    {
        // 240.0.0.0/4 (future use), 192.0.0.0/24 (protocol assignments),
        // the documentation nets and 198.18.0.0/15 (benchmarking): RFC 6890.
        Some("reserved")
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    let segments = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_unique_local() || (segments[0] & 0xffc0) == 0xfec0 {
        // fc00::/7, and the deprecated site-local fec0::/10.
        Some("private")
    } else if ip.is_unicast_link_local() {
        Some("link-local")
    } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // 64:ff9b::/96 (NAT64) reaches the IPv4 address it embeds.
        let [.., a, b, c, d] = ip.octets();
        v4_kind(Ipv4Addr::new(a, b, c, d))
    } else if segments[..3] == [0x64, 0xff9b, 1] {
        // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): translated by the
        // operator's own NAT64, to whatever it maps there.
        Some("local-use NAT64")
    } else if (segments[0], segments[1]) == (0x2001, 0) {
        // 2001::/32, Teredo: a tunnel whose server and client addresses
        // are embedded (obfuscated), so where it leads cannot be checked.
        Some("Teredo")
    } else if segments[0] == 0x2002 {
        // 6to4 (2002::/16) embeds an IPv4 address too.
        let o = ip.octets();
        v4_kind(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else if (segments[0], segments[1]) == (0x2001, 0x0db8) || segments[..6] == [0; 6] {
        // Documentation (2001:db8::/32), IPv4-compatible (::/96, deprecated).
        Some("reserved")
    } else {
        None
    }
}

/// The operator's policy: public addresses, plus the allowed CIDRs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allowed: Vec<Cidr>,
}

impl TargetPolicy {
    pub fn new(allowed: Vec<Cidr>) -> Self {
        Self { allowed }
    }

    /// The policy of `webhooks.allowed_target_cidrs` (blank entries ignored).
    pub fn from_settings(settings: &WebhookSettings) -> Result<Self, CidrError> {
        let allowed = settings
            .allowed_target_cidrs
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// Whether every address is allowed (`0.0.0.0/0` and `::/0`): no check
    /// is needed at all.
    pub fn allows_everything(&self) -> bool {
        let zero = |v4: bool| {
            self.allowed
                .iter()
                .any(|c| c.prefix == 0 && c.network.is_ipv4() == v4)
        };
        zero(true) && zero(false)
    }

    /// Refuses `ip` (an address the name `host` resolved to) unless it is
    /// public or allowed.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), TargetRefused> {
        match non_public_kind(ip) {
            Some(kind) if !self.allowed.iter().any(|c| c.contains(ip)) => Err(TargetRefused {
                host: host.to_owned(),
                ip,
                kind,
                literal: false,
            }),
            _ => Ok(()),
        }
    }

    /// Checks a URL whose host is an IP literal; hostnames pass here (they
    /// are checked once resolved).
    pub fn check_literal(&self, url: &url::Url) -> Result<(), TargetRefused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.check_ip(url.host_str().unwrap_or_default(), ip)
            .map_err(|refused| TargetRefused {
                literal: true,
                ..refused
            })
    }

    /// Checks every address `host` resolves to; the first refused one wins
    /// (refusing outright rather than filtering, so a name that points
    /// inside is reported instead of silently half-working).
    pub fn check_addresses(
        &self,
        host: &str,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Result<(), TargetRefused> {
        addresses
            .into_iter()
            .try_for_each(|ip| self.check_ip(host, ip))
    }

    /// The registration check: the literal, or what the hostname resolves
    /// to now. A name that does not resolve (yet) within `timeout` passes:
    /// it may be registered before its DNS exists, and every delivery
    /// checks again.
    pub async fn check_url(&self, url: &url::Url, timeout: Duration) -> Result<(), TargetRefused> {
        self.check_literal(url)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if self.allows_everything() {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => self.check_addresses(host, addrs.map(|a| a.ip())),
            Ok(Err(e)) => {
                tracing::info!(host, error = %e, "webhook host does not resolve; accepted, checked again at delivery");
                Ok(())
            }
            Err(_) => {
                tracing::info!(
                    host,
                    "webhook host did not resolve in time; accepted, checked again at delivery"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        non_public_kind(s.parse().unwrap())
    }

    fn policy(cidrs: &[&str]) -> TargetPolicy {
        TargetPolicy::new(cidrs.iter().map(|c| c.parse().unwrap()).collect())
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.1", "reserved"),
            ("198.18.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private"),
            ("fec0::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("2001:db8::1", "reserved"),
            ("::127.0.0.1", "reserved"),
            ("2001::1", "Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("64:ff9b:1::a00:1", "local-use NAT64"),
            ("64:ff9b:1:ffff::1", "local-use NAT64"),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "100.128.0.1",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2001:4860::8888",
            "2001:200::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("127.0.0.1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "localhost", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_refuses_non_public_addresses_outside_the_allowed_cidrs() {
        let none = TargetPolicy::default();
        let err = none
            .check_ip("h", "127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(err.kind, "loopback");
        assert!(err.to_string().contains("allowed_target_cidrs"));
        assert!(none.check_ip("h", "8.8.8.8".parse().unwrap()).is_ok());

        let loopback = policy(&["127.0.0.0/8", "::1/128"]);
        assert!(loopback.check_ip("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback.check_ip("h", "::1".parse().unwrap()).is_ok());
        assert!(loopback.check_ip("h", "10.0.0.1".parse().unwrap()).is_err());
        assert!(
            loopback
                .check_addresses(
                    "h",
                    ["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()]
                )
                .is_err(),
            "one inside answer refuses the name"
        );
        assert!(!loopback.allows_everything());
        assert!(policy(&["0.0.0.0/0", "::/0"]).allows_everything());
    }

    #[test]
    fn ip_literals_are_checked_and_hostnames_left_to_resolution() {
        let p = TargetPolicy::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            p.check_literal(&url("http://[::1]:8080/x"))
                .unwrap_err()
                .kind,
            "loopback"
        );
        assert!(p.check_literal(&url("https://10.0.0.1/")).is_err());
        assert!(p.check_literal(&url("https://example.com/")).is_ok());
        assert!(p.check_literal(&url("https://8.8.8.8/")).is_ok());
    }

    #[tokio::test]
    async fn registration_check_resolves_names() {
        let p = TargetPolicy::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        let err = p
            .check_url(&url("http://localhost:9/"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(err.kind, "loopback");
        let message = err.to_string();
        assert!(
            message.contains("not public") && !message.contains("loopback"),
            "{message}"
        );
        assert!(
            !message.contains("127.0.0.1") && !message.contains("::1"),
            "what a name resolved to is not told: {message}"
        );
        let literal = p
            .check_url(&url("http://127.0.0.1:9/"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            literal.literal
                && literal
                    .to_string()
                    .contains("127.0.0.1 is a loopback address")
        );
        assert!(
            p.check_url(
                &url("https://no-such-host.invalid/"),
                Duration::from_secs(2)
            )
            .await
            .is_ok(),
            "a name that does not resolve is checked at delivery"
        );
        assert!(
            policy(&["127.0.0.0/8", "::1/128"])
                .check_url(&url("http://localhost:9/"), Duration::from_secs(2))
                .await
                .is_ok()
        );
    }
}
