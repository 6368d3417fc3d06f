//! Which delivery targets we refuse: unless `dispatcher.allow_private_targets`
//! is set, no request may reach a loopback, private, link-local, CGNAT,
//! multicast, broadcast or unspecified address (server-side request forgery
//! into the operator's network; API.md "Webhooks").
//!
//! The check happens where the address is chosen, not before: hostnames are
//! resolved by [`PublicOnlyResolver`], the resolver of the HTTP client
//! itself, so a DNS answer cannot change between the check and the connect
//! (DNS rebinding). IP literals never reach a resolver and are checked by
//! [`check_literal`]. Redirects are not followed at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A target refused by policy; its message is what the delivery log shows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "refused target {host}: {ip} is a {kind} address (set dispatcher.allow_private_targets to allow it)"
)]
pub struct TargetRefused {
    pub host: String,
    pub ip: IpAddr,
    pub kind: &'static str,
}

/// Why `ip` may not be a target, or `None` when it is a public address.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
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
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    // ::ffff:a.b.c.d is the IPv4 host a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_unique_local() {
        Some("private")
    } else if ip.is_unicast_link_local() {
        Some("link-local")
    } else {
        None
    }
}

/// Refuses a URL whose host is a non-public IP literal; hostnames pass here
/// and are checked by the resolver.
pub fn check_literal(url: &Url) -> Result<(), TargetRefused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match non_public_kind(ip) {
        Some(kind) => Err(TargetRefused {
            host: url.host_str().unwrap_or_default().to_owned(),
            ip,
            kind,
        }),
        None => Ok(()),
    }
}

/// The system resolver, failing a lookup when any answer is not public
/// (refusing outright rather than filtering, so a name that points inside
/// is reported instead of silently half-working).
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some((ip, kind)) = addrs
                .iter()
                .find_map(|a| non_public_kind(a.ip()).map(|k| (a.ip(), k)))
            {
                return Err(Box::new(TargetRefused { host, ip, kind }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        non_public_kind(s.parse().unwrap())
    }

    #[test]
    fn non_public_addresses_are_classified() {
        assert_eq!(kind("127.0.0.1"), Some("loopback"));
        assert_eq!(kind("10.1.2.3"), Some("private"));
        assert_eq!(kind("172.16.0.1"), Some("private"));
        assert_eq!(kind("192.168.1.1"), Some("private"));
        assert_eq!(kind("169.254.169.254"), Some("link-local"));
        assert_eq!(kind("100.64.0.1"), Some("carrier-grade NAT"));
        assert_eq!(kind("100.127.255.255"), Some("carrier-grade NAT"));
        assert_eq!(kind("224.0.0.1"), Some("multicast"));
        assert_eq!(kind("255.255.255.255"), Some("broadcast"));
        assert_eq!(kind("0.0.0.0"), Some("unspecified"));
        assert_eq!(kind("::1"), Some("loopback"));
        assert_eq!(kind("::"), Some("unspecified"));
        assert_eq!(kind("fd00::1"), Some("private"));
        assert_eq!(kind("fe80::1"), Some("link-local"));
        assert_eq!(kind("ff02::1"), Some("multicast"));
        assert_eq!(kind("::ffff:127.0.0.1"), Some("loopback"));
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["93.184.216.34", "100.128.0.1", "8.8.8.8", "2606:4700::1111"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn ip_literals_are_checked_and_hostnames_left_to_the_resolver() {
        let refused = check_literal(&Url::parse("http://[::1]:8080/x").unwrap()).unwrap_err();
        assert_eq!(refused.kind, "loopback");
        assert!(refused.to_string().contains("allow_private_targets"));
        assert!(check_literal(&Url::parse("https://10.0.0.1/").unwrap()).is_err());
        assert!(check_literal(&Url::parse("https://example.com/").unwrap()).is_ok());
        assert!(check_literal(&Url::parse("https://8.8.8.8/").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_inside() {
        let err = match PublicOnlyResolver
            .resolve("localhost".parse().unwrap())
            .await
        {
            Ok(_) => panic!("localhost resolved"),
            Err(e) => e,
        };
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
