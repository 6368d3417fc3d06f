//! [`Application`]: the worker process (zero2prod shape). `build` starts
//! the engine pool and binds the health listener (`worker.host`,
//! `worker.port`; port 0 in tests); `run_until_stopped` consumes jobs with
//! prefetch = engines × `worker.prefetch_per_engine` and serves
//! `GET /healthz` and `GET /readyz` until the cancel token fires.
//!
//! Shutdown order (each step waits for the one before): stop consuming and
//! finish the jobs in flight → stop the engine children → stop the HTTP
//! server → close the broker connection.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use shared::http;
use shared::settings::Settings;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerCtx;

pub struct Application {
    port: u16,
    server: Server,
    ctx: Arc<WorkerCtx>,
    prefetch: u16,
    /// The event relay's interval and grace.
    relay: (Duration, Duration),
    cancel: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let ctx = Arc::new(WorkerCtx::build(&settings).await?);
        let (host, port) = (settings.worker.host.as_str(), settings.worker.port);
        let listener = TcpListener::bind((host, port)).with_context(|| {
            format!("Failed to bind the synth-worker health listener to {host}:{port}")
        })?;
        let port = listener.local_addr()?.port();
        let data = web::Data::from(ctx.clone());
        let metrics = ctx.broker.metrics().clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::request_id_middleware))
                .app_data(data.clone())
                .configure(|c| shared::metrics::configure(c, &metrics, true))
                .route("/healthz", web::get().to(http::healthz))
                .route("/readyz", web::get().to(readyz))
                .default_service(web::to(http::default_service))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let engines = u16::try_from(ctx.engines.size() + ctx.neural.size() + ctx.kokoro.size())
            .unwrap_or(u16::MAX);
        let prefetch = engines
            .saturating_mul(settings.worker.prefetch_per_engine)
            .max(1);
        Ok(Self {
            port,
            server,
            ctx,
            prefetch,
            relay: (
                Duration::from_millis(settings.worker.event_relay_interval_ms),
                Duration::from_millis(settings.worker.event_relay_grace_ms),
            ),
            cancel: CancellationToken::new(),
        })
    }

    /// The health listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to shut down gracefully (main wires SIGTERM to it).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The context jobs run with (tests inspect the engine pool through it).
    pub fn ctx(&self) -> Arc<WorkerCtx> {
        self.ctx.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            ctx,
            prefetch,
            relay,
            cancel,
            ..
        } = self;
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        let consumer = tokio::spawn(crate::consumer::run(ctx.clone(), prefetch, cancel.clone()));
        let (relay_interval, relay_grace) = relay;
        let relay = tokio::spawn(crate::relay::run(
            ctx.clone(),
            relay_interval,
            relay_grace,
            cancel.clone(),
        ));
        let served = tokio::select! {
            _ = cancel.cancelled() => None,
            result = &mut server => {
                // The server stopped by itself: take everything down with it.
                cancel.cancel();
                Some(result)
            }
        };
        tracing::info!("synth-worker stopping: finishing jobs in flight");
        consumer.await.context("The consumer task failed")?;
        relay.await.context("The event relay task failed")?;
        ctx.engines.shutdown().await;
        ctx.neural.shutdown().await;
        ctx.kokoro.shutdown().await;
        let served = match served {
            Some(result) => result,
            None => {
                handle.stop(true).await;
                server.await
            }
        };
        ctx.broker.close().await;
        tracing::info!("synth-worker stopped");
        served
            .context("The health server task failed")?
            .context("The health server failed")
    }
}

/// Ready when every engine process is alive (dead idle ones are replaced first), and the database and broker answer.
async fn readyz(ctx: web::Data<WorkerCtx>) -> HttpResponse {
    ctx.engines.revive().await;
    ctx.neural.revive().await;
    ctx.kokoro.revive().await;
    let alive = ctx.engines.alive() + ctx.neural.alive() + ctx.kokoro.alive();
    let size = ctx.engines.size() + ctx.neural.size() + ctx.kokoro.size();
    if alive < size {
        tracing::warn!(alive, size, "readiness: engine processes down");
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(serde_json::json!({ "status": "unavailable", "failing": ["engines"] }));
    }
    http::readiness(Some(&ctx.db), Some(&ctx.broker)).await
}
