//! Builds the gateway (zero2prod shape): `build` binds (port 0 in tests)
//! and wires state, `port` says where, `run_until_stopped` serves until the
//! shutdown token fires, then stops accepting, drains, and stops the sweeper.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use tokio_util::sync::CancellationToken;

use shared::amqp::{Broker, Publisher};
use shared::db::Db;
use shared::http;
use shared::metrics::Metrics;
use shared::settings::Settings;

use crate::auth::KeyVerifier;
use crate::key_service::KeyServiceClient;
use crate::last_used::LastUsed;
use crate::rate_limit::RateLimiter;
use crate::state::State;

pub struct Application {
    port: u16,
    server: Server,
    state: Arc<State>,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The Piper and Kokoro voices on disk join the preset catalog.
        shared::voices::load_model_dirs(&settings.piper.voices_dir, Some(&settings.kokoro.dir));
        let g = &settings.gateway;
        let listener = TcpListener::bind((g.host.as_str(), g.port))
            .map_err(|e| anyhow::anyhow!("Failed to bind gateway to {}:{}: {e}", g.host, g.port))?;
        let port = listener.local_addr()?.port();
        let metrics = Metrics::new(settings.telemetry.metrics_token.clone());
        let broker = Broker::with_metrics(&settings.amqp, "gateway", metrics.clone());
        let key_service = Arc::new(KeyServiceClient::new(
            &settings.gateway.key_service_url,
            settings.key_service.internal_token.clone(),
        )?);
        let storage = shared::storage::open_storage(&settings.storage)?;
        let state = Arc::new(State {
            db: Db::new(&settings.database),
            publisher: Publisher::new(broker),
            store: storage.store.clone(),
            storage,
            completions: Arc::new(crate::completions::Completions::new()),
            streams: Arc::new(crate::streams::Streams::new()),
            keys: Arc::new(
                KeyVerifier::new(
                    key_service.clone(),
                    Duration::from_millis(settings.gateway.key_cache_ttl_ms),
                    Duration::from_millis(settings.gateway.key_stale_window_ms),
                )
                .with_capacities(
                    settings.gateway.key_cache_capacity,
                    Duration::from_millis(settings.gateway.key_negative_cache_ttl_ms),
                    settings.gateway.key_negative_cache_capacity,
                )
                .with_metrics(metrics.clone()),
            ),
            last_used: LastUsed::new(key_service.clone()),
            published: Default::default(),
            creates: Default::default(),
            busy: Default::default(),
            rate_limiter: RateLimiter::new(settings.gateway.replicas),
            auth_failures: crate::auth_limit::AuthFailureLimiter::from_settings(&settings.gateway)?,
            uploads: tokio::sync::Semaphore::new(settings.gateway.max_concurrent_uploads),
            key_service,
            settings,
        });
        // Connect early so the first request does not pay for it; a broker
        // that is down now is retried on demand.
        if let Err(e) = state.publisher.broker().channel().await {
            tracing::warn!(error = %e, "broker not reachable at start-up; will retry");
        }
        let data = web::Data::from(state.clone());
        let max_body = state.settings.gateway.max_body_bytes;
        let serve_metrics = state.settings.gateway.metrics_enabled;
        let server = HttpServer::new(move || {
            // Middlewares run outside-in from the last `wrap`: request id,
            // then rate-limit headers, then idempotency around the routes.
            App::new()
                .wrap(from_fn(crate::idempotency::middleware))
                .wrap(from_fn(crate::rate_limit::headers_middleware))
                .wrap(from_fn(http::request_id_middleware))
                .app_data(http::json_config(max_body))
                .app_data(http::query_config())
                .app_data(http::path_config())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(data.clone())
                .configure(|c| shared::metrics::configure(c, &metrics, serve_metrics))
                .configure(crate::routes::configure)
                .default_service(web::to(http::default_service))
        })
        .disable_signals()
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            state,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to stop the gateway gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What the handlers share (benchmarks look at the key cache through it).
    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let sweeper = tokio::spawn(crate::sweeper::run(
            self.state.clone(),
            self.shutdown.clone(),
        ));
        let listener = tokio::spawn(crate::keys_listener::run(
            self.state.publisher.broker().clone(),
            self.state.keys.clone(),
            self.shutdown.clone(),
        ));
        let completions = tokio::spawn(crate::completions::run(
            self.state.publisher.broker().clone(),
            self.state.completions.clone(),
            self.shutdown.clone(),
        ));
        let streams = tokio::spawn(crate::streams::run(
            self.state.publisher.broker().clone(),
            self.state.streams.clone(),
            self.shutdown.clone(),
        ));
        let state = self.state.clone();
        let background = self.shutdown.clone();
        let last_used = tokio::spawn(async move {
            let interval = Duration::from_millis(state.settings.gateway.last_used_flush_ms);
            state.last_used.run(interval, background).await;
        });
        let state = self.state.clone();
        let background = self.shutdown.clone();
        let published = tokio::spawn(async move {
            state.published.run(state.db.clone(), background).await;
        });
        // The committers stop after the server: a request in flight waits
        // for one.
        let committers_stop = CancellationToken::new();
        let creates = tokio::spawn(crate::creates::run(
            self.state.clone(),
            committers_stop.clone(),
        ));
        let server = shared::server::spawn(self.server, self.shutdown.clone());
        self.shutdown.cancelled().await;
        let served = server.stop().await;
        committers_stop.cancel();
        let _ = creates.await;
        let _ = sweeper.await;
        let _ = listener.await;
        let _ = completions.await;
        let _ = streams.await;
        let _ = last_used.await;
        let _ = published.await;
        self.state.publisher.broker().close().await;
        served
    }
}

/// Readiness: the database and the broker answer, and key invalidations
/// are being received.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = shared::http::Health),
        (status = 503, description = "A dependency is unreachable; `failing` names it",
            body = shared::http::Health,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    let mut failing = Vec::new();
    if !state.keys.is_listening() {
        // Without invalidations a revoked key could be served from the cache.
        failing.push("key_invalidations");
    }
    http::readiness_with(Some(&state.db), Some(state.publisher.broker()), failing).await
}
