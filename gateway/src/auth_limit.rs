//! Failed authentications per client address, before any key lookup: a
//! token bucket per address of `gateway.auth_failures_per_address` tokens,
//! refilled in full over `gateway.auth_failure_window_secs`. Each presented
//! key that is refused (malformed, unknown, expired, revoked) takes a token;
//! an address without one gets 429 `too_many_auth_failures` with
//! `Retry-After` for every request that bears a key, valid or not, so the
//! answer says nothing about the key it carries.
//!
//! The client address is the TCP peer. `X-Forwarded-For` is read only when
//! the peer is one of `gateway.trusted_proxies`: then the client is the
//! right-most address of the header that is not itself a trusted proxy
//! (what the nearest proxy saw; the left part is the client's to forge).
//! An IPv6 client counts by its /64, what one subscriber typically holds.
//!
//! Memory is bounded: past `MAX_ADDRESSES` the buckets that refilled are
//! dropped, and if that is not enough the table starts over.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;

use shared::http::ApiError;
use shared::settings::GatewaySettings;
use shared::targets::Cidr;

/// Addresses tracked at most.
const MAX_ADDRESSES: usize = 100_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct AuthFailureLimiter {
    burst: f64,
    per_second: f64,
    trusted: Vec<Cidr>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AuthFailureLimiter {
    pub fn from_settings(g: &GatewaySettings) -> anyhow::Result<Self> {
        let trusted = g
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<Cidr>()
                    .map_err(|e| anyhow::anyhow!("gateway.trusted_proxies: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let burst = f64::from(g.auth_failures_per_address.max(1));
        Ok(Self {
            burst,
            per_second: burst / g.auth_failure_window_secs.max(1) as f64,
            trusted,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The address whose failures `req` counts against (`None` without a peer).
    pub fn client(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        let mut client = peer;
        if !self.is_trusted(peer) {
            return Some(bucket_key(client));
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // Garbage: trust nothing left of it.
                break;
            };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(bucket_key(client))
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.updated = now;
    }

    /// 429 `too_many_auth_failures` if `client` has no failure left.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = client else { return Ok(()) };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let Some(b) = buckets.get_mut(&ip) else {
            return Ok(());
        };
        self.refill(b, Instant::now());
        if b.tokens >= 1.0 {
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / self.per_second).ceil().max(1.0) as u64;
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_auth_failures",
            "too many requests with invalid API keys from this address; wait before trying again",
        );
        e.retry_after_secs = Some(wait);
        Err(e)
    }

    /// Counts one refused key against `client`.
    pub fn record_failure(&self, client: Option<IpAddr>) {
        let Some(ip) = client else { return };
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let now = Instant::now();
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&ip) {
            let full = self.burst;
            let rate = self.per_second;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < full
            });
            if buckets.len() >= MAX_ADDRESSES {
                buckets.clear();
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// IPv4 (also IPv4-mapped IPv6) as is; other IPv6 by its /64.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limiter(burst: u32, trusted: &[&str]) -> AuthFailureLimiter {
        let mut g = shared::settings::Settings::defaults().unwrap().gateway;
        g.auth_failures_per_address = burst;
        g.auth_failure_window_secs = 60;
        g.trusted_proxies = trusted.iter().map(|s| (*s).to_owned()).collect();
        AuthFailureLimiter::from_settings(&g).unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let req = |peer: &str, xff: &str| {
            TestRequest::default()
                .peer_addr(peer.parse().unwrap())
                .insert_header(("x-forwarded-for", xff))
                .to_http_request()
        };
        let untrusted = limiter(3, &[]);
        assert_eq!(
            untrusted.client(&req("203.0.113.9:4000", "198.51.100.1")),
            Some("203.0.113.9".parse().unwrap())
        );
        let proxied = limiter(3, &["10.0.0.0/8"]);
        // The client may forge the left part; the right-most untrusted hop counts.
        assert_eq!(
            proxied.client(&req("10.0.0.2:4000", "1.1.1.1, 198.51.100.7, 10.0.0.3")),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            proxied.client(&req("10.0.0.2:4000", "not-an-ip")),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(
            proxied.client(&req("[2001:db8:1:2:3:4:5:6]:4000", "")),
            Some("2001:db8:1:2::".parse().unwrap())
        );
    }

    #[test]
    fn failures_past_the_burst_are_refused_and_the_table_is_bounded() {
        let l = limiter(2, &[]);
        let ip = Some("192.0.2.1".parse().unwrap());
        assert!(l.check(ip).is_ok());
        l.record_failure(ip);
        l.record_failure(ip);
        let refused = l.check(ip).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after_secs, Some(30));
        assert!(l.check(Some("192.0.2.2".parse().unwrap())).is_ok());
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            l.record_failure(Some(IpAddr::V4(i.into())));
        }
        assert!(l.tracked() <= MAX_ADDRESSES);
    }
}
