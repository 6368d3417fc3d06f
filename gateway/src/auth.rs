//! Bearer-key authentication. A secret is checked for shape and checksum
//! first (no lookup for noise), then hashed; only the hash goes to the key
//! service, and its answer is cached for `gateway.key_cache_ttl_ms`.
//! The `Principal` extractor gives handlers the key, workspace and scopes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use shared::api_key;
use shared::http::ApiError;
use shared::ids::{KeyId, WorkspaceId};
use shared::keys_api::{VERIFY_PATH, VerifiedKey, VerifyRequest};
use shared::settings::Plan;

use crate::startup::State;

/// Entries kept at most; past it the cache starts over (a bound, not an LRU).
const CACHE_CAPACITY: usize = 100_000;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub scopes: Vec<String>,
    pub plan: Plan,
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

/// What the key service said of a hash (`None`: unknown), and when.
type CacheEntry = (Option<VerifiedKey>, Instant);

/// Verifies keys against the key service, with a short-lived cache.
pub struct KeyVerifier {
    client: reqwest::Client,
    verify_url: String,
    token: SecretString,
    ttl: Duration,
    cache: RwLock<HashMap<[u8; 32], CacheEntry>>,
}

impl KeyVerifier {
    pub fn new(key_service_url: &str, token: SecretString, ttl: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Self {
            client,
            verify_url: format!("{}{VERIFY_PATH}", key_service_url.trim_end_matches('/')),
            token,
            ttl,
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Option<VerifiedKey>> {
        let cache = self.cache.read().ok()?;
        let (value, at) = cache.get(hash)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    fn remember(&self, hash: [u8; 32], value: Option<VerifiedKey>) {
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(hash, (value, Instant::now()));
        }
    }

    /// The key with this hash, `None` if the key service does not know it.
    pub async fn verify(&self, hash: [u8; 32]) -> Result<Option<VerifiedKey>, ApiError> {
        if let Some(hit) = self.cached(&hash) {
            return Ok(hit);
        }
        let unavailable = |e: anyhow::Error| {
            ApiError::unavailable(
                "key_service_unavailable",
                "keys cannot be verified right now; try again",
                e,
            )
        };
        let response = self
            .client
            .post(&self.verify_url)
            .bearer_auth(self.token.expose_secret())
            .json(&VerifyRequest {
                key_hash: hex::encode(hash),
            })
            .send()
            .await
            .map_err(|e| unavailable(e.into()))?;
        let value = match response.status() {
            s if s.is_success() => Some(
                response
                    .json::<VerifiedKey>()
                    .await
                    .map_err(|e| unavailable(e.into()))?,
            ),
            reqwest::StatusCode::NOT_FOUND => None,
            s => return Err(unavailable(anyhow::anyhow!("key service answered {s}"))),
        };
        self.remember(hash, value.clone());
        Ok(value)
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

async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let secret = bearer(&req)?;
    if !api_key::is_well_formed(secret) {
        return Err(ApiError::unauthorized(
            "invalid_api_key",
            "the API key is not valid",
        ));
    }
    let hash = api_key::hash(secret);
    let state = req
        .app_data::<web::Data<State>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("gateway state missing")))?;
    let key = state
        .keys
        .verify(hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_api_key", "the API key is not valid"))?;
    let now = Utc::now();
    if key.revoked_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized(
            "key_revoked",
            "this API key has been revoked",
        ));
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized(
            "key_expired",
            "this API key has expired",
        ));
    }
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
    Ok(Principal {
        key_id: key.key_id,
        workspace_id: key.workspace_id,
        scopes: key.scopes,
        plan,
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}
