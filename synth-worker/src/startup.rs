//! [`Application`]: the worker process (zero2prod shape). `build` starts
//! the engine pool and binds the health listener (`worker.host`,
//! `worker.port`; port 0 in tests); `run_until_stopped` consumes jobs with
//! prefetch = engines × `worker.prefetch_per_engine` and serves
//! `GET /healthz` and `GET /readyz` until the shutdown token fires.
//!
//! Shutdown order (each step waits for the one before): stop consuming at
//! once and give the jobs in flight `worker.drain_ms` to finish (the rest
//! go back to the queue unsettled, their leases released) → stop the
//! engine children → stop the HTTP server → close the broker connection.

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

use crate::state::State;

pub struct Application {
    port: u16,
    server: Server,
    state: Arc<State>,
    prefetch: u16,
    /// The event relay's interval and grace.
    relay: (Duration, Duration),
    /// How long jobs in flight may run on after SIGTERM.
    drain: Duration,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = Arc::new(State::build(&settings).await?);
        let (host, port) = (settings.worker.host.as_str(), settings.worker.port);
        let listener = TcpListener::bind((host, port)).with_context(|| {
            format!("Failed to bind the synth-worker health listener to {host}:{port}")
        })?;
        let port = listener.local_addr()?.port();
        let data = web::Data::from(state.clone());
        let metrics = state.broker.metrics().clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::request_id_middleware))
                .app_data(data.clone())
                .configure(|c| shared::metrics::configure(c, &metrics, true))
                .configure(|c| http::probes(c, readyz))
                .default_service(web::to(http::default_service))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let engines =
            u16::try_from(state.engines.size() + state.neural.size() + state.kokoro.size())
                .unwrap_or(u16::MAX);
        let prefetch = engines
            .saturating_mul(settings.worker.prefetch_per_engine)
            .max(1);
        Ok(Self {
            port,
            server,
            state,
            prefetch,
            relay: (
                Duration::from_millis(settings.worker.event_relay_interval_ms),
                Duration::from_millis(settings.worker.event_relay_grace_ms),
            ),
            drain: Duration::from_millis(settings.worker.drain_ms),
            shutdown: CancellationToken::new(),
        })
    }

    /// The health listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to shut down gracefully (main wires SIGTERM to it).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What jobs run with (tests inspect the engine pool through it).
    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            state,
            prefetch,
            relay,
            drain,
            shutdown,
            ..
        } = self;
        let server = shared::server::spawn(server, shutdown.clone());
        let consumer = tokio::spawn(crate::consumer::run(
            state.clone(),
            prefetch,
            drain,
            shutdown.clone(),
        ));
        let (relay_interval, relay_grace) = relay;
        let relay = tokio::spawn(crate::relay::run(
            state.clone(),
            relay_interval,
            relay_grace,
            shutdown.clone(),
        ));
        let clones = tokio::spawn(crate::cloning::scan(state.clone(), shutdown.clone()));
        shutdown.cancelled().await;
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "synth-worker stopping: no new jobs; finishing the jobs in flight"
        );
        consumer.await.context("The consumer task failed")?;
        relay.await.context("The event relay task failed")?;
        clones.await.context("The clone scan task failed")?;
        state.engines.shutdown().await;
        state.neural.shutdown().await;
        state.kokoro.shutdown().await;
        let served = server.stop().await;
        state.broker.close().await;
        tracing::info!("synth-worker stopped");
        served
    }
}

/// Ready when every engine process is alive (dead idle ones are replaced
/// first), and the database and broker answer.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    state.engines.revive().await;
    state.neural.revive().await;
    state.kokoro.revive().await;
    let alive = state.engines.alive() + state.neural.alive() + state.kokoro.alive();
    let size = state.engines.size() + state.neural.size() + state.kokoro.size();
    let mut failing = Vec::new();
    if alive < size {
        tracing::warn!(alive, size, "readiness: engine processes down");
        failing.push("engines");
    }
    http::readiness_with(Some(&state.db), Some(&state.broker), failing).await
}
