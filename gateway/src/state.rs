//! [`State`]: what every handler and background task of the gateway
//! shares, built once by `crate::startup::Application::build` from
//! `Settings`.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

use shared::amqp::Publisher;
use shared::db::Db;
use shared::http::ApiError;
use shared::settings::Settings;

use crate::auth::KeyVerifier;
use crate::key_service::KeyServiceClient;
use crate::last_used::LastUsed;
use crate::rate_limit::RateLimiter;

/// What every handler shares.
pub struct State {
    pub settings: Settings,
    pub db: Db,
    pub publisher: Publisher,
    pub store: Arc<dyn ObjectStore>,
    /// The same store, with the presigner of S3 audio URLs.
    pub storage: shared::storage::Storage,
    /// Wakes requests waiting for a generation (`POST /v1/audio/speech`).
    pub completions: Arc<crate::completions::Completions>,
    /// Audio streamed to this replica's speech requests.
    pub streams: Arc<crate::streams::Streams>,
    pub keys: Arc<KeyVerifier>,
    pub key_service: Arc<KeyServiceClient>,
    pub last_used: LastUsed,
    /// Generations whose job the broker confirmed, to be marked published.
    pub published: crate::published::PublishedMarks,
    /// Creates waiting for their batch's transaction (`crate::creates`).
    pub creates: crate::creates::Creates,
    /// The last count of the system-busy guard.
    pub busy: crate::busy::BusyGuard,
    /// Requests per second per key, on this replica.
    pub rate_limiter: RateLimiter,
    /// Refused keys per client address, checked before any lookup.
    pub auth_failures: crate::auth_limit::AuthFailureLimiter,
    /// Places for `POST /v1/voices` bodies being read (`max_concurrent_uploads`).
    pub uploads: tokio::sync::Semaphore,
}

impl State {
    /// 503 unless the broker is reachable (connecting if need be). A
    /// request waits at most `BROKER_CONNECT_WAIT` for a connection: a
    /// broker that is still booting can take seconds to refuse one. The
    /// listeners go on reconnecting in the background without that bound.
    pub async fn ensure_broker(&self) -> Result<(), ApiError> {
        self.publisher
            .broker()
            .connected_within(BROKER_CONNECT_WAIT)
            .await
            .map_err(|e| {
                ApiError::unavailable(
                    "broker_unavailable",
                    "the job queue is unavailable; nothing was charged, try again",
                    e,
                )
            })
    }
}

/// How long a request waits for a broker connection before its 503.
const BROKER_CONNECT_WAIT: Duration = Duration::from_secs(1);
