//! Requests per second per API key: a token bucket per key in each gateway
//! replica. With `gateway.replicas` = N behind a load balancer each replica
//! allows `1/N` of the plan's `requests_per_second`, so the sum is the
//! plan's rate without a shared store on the hot path (a client pinned to
//! one replica gets `1/N` of it; a balancer spreading evenly gives it all).
//!
//! Every answer to a key on a limited plan carries `X-RateLimit-Limit` (the
//! bucket's size: requests per second on this replica), `-Remaining`
//! (requests left now) and `-Reset` (seconds until the bucket is full
//! again); a 429 also carries `Retry-After`. The in-flight limit per
//! workspace is exact and lives in the create transaction
//! (`shared::models::create_batch`); its 429 describes that limit in
//! the same headers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::middleware::Next;
use uuid::Uuid;

use shared::http::ApiError;

/// Buckets kept at most; past it the full (idle) ones are dropped.
const MAX_BUCKETS: usize = 100_000;

/// What a response says about the limit that applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: i64,
    pub remaining: i64,
    pub reset_secs: u64,
    /// Set when the request was refused.
    pub retry_after_secs: Option<u64>,
}

impl RateLimitInfo {
    /// 429 `rate_limited` with this info's `Retry-After`.
    pub fn error(&self, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after_secs = Some(self.retry_after_secs.unwrap_or(1));
        e
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets per key, for this replica.
pub struct RateLimiter {
    replicas: f64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

impl RateLimiter {
    pub fn new(replicas: u32) -> Self {
        Self {
            replicas: f64::from(replicas.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket of `per_second` (the plan's rate).
    pub fn check(&self, key: Uuid, per_second: i64) -> RateLimitInfo {
        let rate = (per_second as f64 / self.replicas).max(0.001);
        let capacity = rate.max(1.0);
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock must not take the API down: let it through.
            return RateLimitInfo {
                limit: capacity as i64,
                remaining: capacity as i64,
                reset_secs: 0,
                retry_after_secs: None,
            };
        };
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| (b.tokens + b.updated.elapsed().as_secs_f64() * rate) < capacity);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let tokens = bucket.tokens;
        RateLimitInfo {
            limit: capacity.round() as i64,
            remaining: tokens.floor() as i64,
            reset_secs: ((capacity - tokens) / rate).ceil() as u64,
            retry_after_secs: (!allowed).then(|| ((1.0 - tokens) / rate).ceil().max(1.0) as u64),
        }
    }
}

/// Writes the `X-RateLimit-*` (and on a refusal `Retry-After`) headers of the
/// `RateLimitInfo` the request carries, on success and error answers alike.
pub async fn headers_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let info = response
        .request()
        .extensions()
        .get::<RateLimitInfo>()
        .copied();
    if let Some(info) = info {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", info.limit.to_string()),
            ("x-ratelimit-remaining", info.remaining.max(0).to_string()),
            ("x-ratelimit-reset", info.reset_secs.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        if let Some(secs) = info.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(RETRY_AFTER, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_then_refuses_with_a_retry_after() {
        let limiter = RateLimiter::new(1);
        let key = Uuid::now_v7();
        let first = limiter.check(key, 3);
        assert_eq!(
            (first.limit, first.remaining, first.retry_after_secs),
            (3, 2, None)
        );
        limiter.check(key, 3);
        limiter.check(key, 3);
        let refused = limiter.check(key, 3);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_secs, Some(1));
        assert!(refused.reset_secs >= 1);
    }

    #[test]
    fn replicas_share_the_plan_rate() {
        let limiter = RateLimiter::new(4);
        let info = limiter.check(Uuid::now_v7(), 40);
        assert_eq!(info.limit, 10);
    }
}
