//! Bearer-key authentication. A secret is checked for shape and checksum
//! first (no lookup for noise), then hashed; only the hash goes to the key
//! service, and its answer is cached for `gateway.key_cache_ttl_ms`.
//!
//! Invariants:
//! - A key invalidated on `voiceprod.keys` (revoked, rotated) is dropped
//!   from the cache at once, and an answer from the key service that was
//!   requested before an invalidation arrived is not trusted (the epoch
//!   check), so no key is admitted after its revocation reached this gateway.
//! - While the key service is unreachable, keys verified within
//!   `key_stale_window_ms` keep working; anything else gets 503.
//! - Use of a key is recorded in memory and flushed in batches
//!   (`last_used.rs`), never as a database write per request.
//! - Hashes the key service does not know are remembered apart from the
//!   known keys, for `key_negative_cache_ttl_ms`, at most
//!   `key_negative_cache_capacity` of them: a flood of random keys asks the
//!   key service once per key and can never evict a known key. Every
//!   invalidation (a rotation, a revocation, a reconnect) forgets them all,
//!   so no new secret is shadowed by an earlier miss.
//! - Refused keys count against the client address (`auth_limit.rs`), which
//!   is checked before anything else is looked at.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use shared::api_key;
use shared::http::ApiError;
use shared::ids::{KeyId, WorkspaceId};
use shared::keys_api::{VERIFY_PATH, VerifiedKey, VerifyRequest};
use shared::metrics::Metrics;
use shared::settings::Plan;

use crate::key_service::KeyServiceClient;
use crate::state::State;

/// Verifications retried when invalidations keep arriving meanwhile.
const MAX_VERIFY_ROUNDS: usize = 3;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub scopes: Vec<String>,
    pub plan: Plan,
    pub credit_limit: Option<i64>,
}

impl Principal {
    /// 403 `insufficient_scope` unless the key holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this key lacks the scope {scope}"),
            ))
        }
    }
}

/// A key the key service knows, and when it said so.
#[derive(Clone)]
struct CacheEntry {
    key: VerifiedKey,
    verified_at: Instant,
}

/// Verifies keys against the key service, with a short-lived cache.
pub struct KeyVerifier {
    client: Arc<KeyServiceClient>,
    ttl: Duration,
    stale_window: Duration,
    /// Known keys; past `capacity` the cache starts over (a bound, not an LRU).
    cache: RwLock<HashMap<[u8; 32], CacheEntry>>,
    capacity: usize,
    /// Unknown hashes and when the key service said so.
    unknown: RwLock<HashMap<[u8; 32], Instant>>,
    unknown_ttl: Duration,
    unknown_capacity: usize,
    /// Bumped by every invalidation; see the module invariants.
    epoch: AtomicU64,
    /// Whether invalidations are being received (readiness).
    listening: AtomicBool,
    /// Cache hits and misses.
    metrics: Metrics,
}

impl KeyVerifier {
    pub fn new(client: Arc<KeyServiceClient>, ttl: Duration, stale_window: Duration) -> Self {
        Self {
            client,
            ttl,
            stale_window,
            cache: RwLock::new(HashMap::new()),
            capacity: 100_000,
            unknown: RwLock::new(HashMap::new()),
            unknown_ttl: Duration::from_secs(2),
            unknown_capacity: 10_000,
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            metrics: Metrics::default(),
        }
    }

    /// Known keys kept at most; unknown hashes remembered for `unknown_ttl`,
    /// at most `unknown_capacity` of them.
    pub fn with_capacities(
        mut self,
        capacity: usize,
        unknown_ttl: Duration,
        unknown_capacity: usize,
    ) -> Self {
        self.capacity = capacity.max(1);
        self.unknown_ttl = unknown_ttl;
        self.unknown_capacity = unknown_capacity.max(1);
        self
    }

    /// Counts cache hits and misses in the service's `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The invalidation listener is (not) connected.
    pub fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::SeqCst);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<CacheEntry> {
        self.cache.read().ok()?.get(hash).cloned()
    }

    fn known_unknown(&self, hash: &[u8; 32]) -> bool {
        self.unknown
            .read()
            .ok()
            .and_then(|u| u.get(hash).copied())
            .is_some_and(|at| at.elapsed() < self.unknown_ttl)
    }

    fn remember(&self, hash: [u8; 32], key: Option<VerifiedKey>, epoch: u64) {
        let Some(key) = key else {
            return self.remember_unknown(hash, epoch);
        };
        if let Ok(mut cache) = self.cache.write() {
            // An invalidation arrived while we asked: the answer may predate it.
            if self.epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            if cache.len() >= self.capacity {
                cache.clear();
            }
            cache.insert(
                hash,
                CacheEntry {
                    key,
                    verified_at: Instant::now(),
                },
            );
        }
    }

    fn remember_unknown(&self, hash: [u8; 32], epoch: u64) {
        if let Ok(mut unknown) = self.unknown.write() {
            // Same rule as for known keys: an invalidation (a rotation's new
            // secret, say) may have made this answer wrong.
            if self.epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            if unknown.len() >= self.unknown_capacity {
                let ttl = self.unknown_ttl;
                unknown.retain(|_, at| at.elapsed() < ttl);
                if unknown.len() >= self.unknown_capacity {
                    unknown.clear();
                }
            }
            unknown.insert(hash, Instant::now());
        }
    }

    /// Forgets every unknown hash; called with the epoch bumped, under the
    /// cache's lock, by every invalidation.
    fn forget_unknown(&self) {
        if let Ok(mut unknown) = self.unknown.write() {
            unknown.clear();
        }
    }

    /// Drops these key hashes (hex SHA-256) from the cache.
    pub fn invalidate_hashes(&self, hashes: &[String]) {
        if let Ok(mut cache) = self.cache.write() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.forget_unknown();
            for h in hashes {
                if let Ok(bytes) = hex::decode(h)
                    && let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice())
                {
                    cache.remove(&hash);
                }
            }
        }
    }

    /// Drops every cached entry of this key (this gateway revoked or rotated it).
    pub fn invalidate_key(&self, key_id: KeyId) {
        if let Ok(mut cache) = self.cache.write() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.forget_unknown();
            cache.retain(|_, e| e.key.key_id != key_id);
        }
    }

    /// Forgets everything (invalidations may have been missed).
    pub fn clear(&self) {
        if let Ok(mut cache) = self.cache.write() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.forget_unknown();
            cache.clear();
        }
    }

    async fn ask(&self, hash: [u8; 32]) -> Result<Option<VerifiedKey>, anyhow::Error> {
        let response = self
            .client
            .request(reqwest::Method::POST, VERIFY_PATH)
            .json(&VerifyRequest {
                key_hash: hex::encode(hash),
            })
            .send()
            .await?;
        match response.status() {
            s if s.is_success() => Ok(Some(response.json::<VerifiedKey>().await?)),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(anyhow::anyhow!("key service answered {s}")),
        }
    }

    /// Whether this hash has a verification within the cache's TTL.
    pub fn fresh(&self, hash: &[u8; 32]) -> bool {
        self.cached(hash)
            .is_some_and(|entry| entry.verified_at.elapsed() < self.ttl)
    }

    /// The key with this hash, `None` if the key service does not know it.
    pub async fn verify(&self, hash: [u8; 32]) -> Result<Option<VerifiedKey>, ApiError> {
        let cached = self.cached(&hash);
        if let Some(entry) = &cached
            && entry.verified_at.elapsed() < self.ttl
        {
            self.metrics.key_cache(true);
            return Ok(Some(entry.key.clone()));
        }
        if self.known_unknown(&hash) {
            self.metrics.key_cache(true);
            return Ok(None);
        }
        self.metrics.key_cache(false);
        for _ in 0..MAX_VERIFY_ROUNDS {
            let epoch = self.epoch.load(Ordering::SeqCst);
            match self.ask(hash).await {
                Ok(key) => {
                    if self.epoch.load(Ordering::SeqCst) == epoch {
                        self.remember(hash, key.clone(), epoch);
                        return Ok(key);
                    }
                    // Invalidated while we asked: ask again for the newer truth.
                }
                Err(e) => {
                    // Only what is still cached (never invalidated) may be used stale.
                    if let Some(entry) = self.cached(&hash)
                        && entry.verified_at.elapsed() < self.stale_window
                    {
                        tracing::warn!(error = %e, "key service unreachable; using a recent verification");
                        return Ok(Some(entry.key));
                    }
                    return Err(ApiError::unavailable(
                        "key_service_unavailable",
                        "keys cannot be verified right now; try again",
                        e,
                    ));
                }
            }
        }
        Err(ApiError::unavailable(
            "key_service_unavailable",
            "keys cannot be verified right now; try again",
            anyhow::anyhow!("key invalidated repeatedly during verification"),
        ))
    }
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let header = req.headers().get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_api_key",
            "send your API key as Authorization: Bearer <key>",
        )
    })?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_authorization",
                "the Authorization header must be Bearer <key>",
            )
        })
}

/// Marks a request whose refused key was counted against its address.
#[derive(Clone, Copy)]
struct FailureCounted;

/// The key of `secret` if it may be used now; a 401 otherwise (each one
/// counts against the client address).
async fn check_key(state: &State, secret: &str) -> Result<VerifiedKey, ApiError> {
    if !api_key::is_well_formed(secret) {
        return Err(ApiError::unauthorized(
            "invalid_api_key",
            "the API key is not valid",
        ));
    }
    let key = state
        .keys
        .verify(api_key::hash(secret))
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_api_key", "the API key is not valid"))?;
    shared::keys_api::ensure_active(key.revoked_at, key.expires_at)?;
    Ok(key)
}

async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    // Authenticated (and counted against the rate limit) once per request,
    // also when a middleware extracted it first.
    if let Some(principal) = req.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    let secret = bearer(&req)?;
    let state = req
        .app_data::<web::Data<State>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("gateway state missing")))?;
    let limiter = &state.auth_failures;
    let client = limiter.client(&req);
    if let Err(limited) = limiter.check(client) {
        // A key this gateway verified moments ago still works from a
        // limited address (other users behind the same NAT keep working);
        // anything that would need a lookup waits. A guessed key is never
        // in that cache, so this tells a guesser nothing.
        let recently_verified =
            api_key::is_well_formed(secret) && state.keys.fresh(&api_key::hash(secret));
        if !recently_verified {
            return Err(limited);
        }
    }
    let checked = check_key(state, secret).await;
    // Counted once per request, also when a middleware asked first.
    if checked
        .as_ref()
        .is_err_and(|e| e.status == actix_web::http::StatusCode::UNAUTHORIZED)
        && req.extensions_mut().insert(FailureCounted).is_none()
    {
        limiter.record_failure(client);
    }
    let key = checked?;
    let plan = state
        .settings
        .plan(&key.plan)
        .filter(|p| p.api_access)
        .cloned()
        .ok_or_else(|| {
            ApiError::forbidden(
                "plan_required",
                "API access is not part of this workspace's plan; upgrade to scale",
            )
        })?;
    state.last_used.record(key.key_id);
    if let Some(per_second) = plan.requests_per_second {
        let info = state.rate_limiter.check(key.key_id.0, per_second);
        req.extensions_mut().insert(info);
        if info.retry_after_secs.is_some() {
            return Err(info.error(format!(
                "this key may make {per_second} requests per second; slow down"
            )));
        }
    }
    let principal = Principal {
        key_id: key.key_id,
        workspace_id: key.workspace_id,
        scopes: key.scopes,
        plan,
        credit_limit: key.credit_limit,
    };
    req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}
