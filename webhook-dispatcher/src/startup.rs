//! `Application`: the consumer, the delivery loop and the health server of
//! one dispatcher, built from explicit `Settings` (zero2prod `startup.rs`).
//!
//! Shutdown, when the shutdown token fires: stop consuming (deliveries being
//! fanned out finish and are acked), stop claiming and finish the sends in
//! flight, then stop the health server and close the broker connection.
//! Whatever is still pending stays in the database for the next dispatcher.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use shared::amqp::run_consumer;
use shared::http;
use shared::settings::Settings;
use tokio_util::sync::CancellationToken;

use crate::state::State;
use crate::{consumer, delivery};

/// Unacknowledged events per dispatcher; each costs one short transaction.
const EVENTS_PREFETCH: u16 = 16;
/// Handling an event is a few database writes: at shutdown those in
/// flight get this long before they go back to the queue.
const EVENTS_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Application {
    port: u16,
    server: Server,
    state: State,
    shutdown: CancellationToken,
}

impl Application {
    /// Binds the health server and prepares everything; connects to nothing
    /// yet, so it starts while a dependency is down (and says so on `/readyz`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = State::new(&settings)?;
        let metrics = state.metrics.clone();
        let address = (settings.dispatcher.host.as_str(), settings.dispatcher.port);
        let listener = TcpListener::bind(address)
            .with_context(|| format!("Failed to bind {}:{}", address.0, address.1))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::request_id_middleware))
                .app_data(data.clone())
                .configure(|c| shared::metrics::configure(c, &metrics, true))
                .configure(|c| http::probes(c, readyz))
                .default_service(web::to(http::default_service))
        })
        // Two probes are all it serves.
        .workers(1)
        // Shutdown comes from the shutdown token, not from actix's own signal handling.
        .disable_signals()
        .listen(listener)
        .context("Failed to start the health server")?
        .run();
        Ok(Self {
            port,
            server,
            state,
            shutdown: CancellationToken::new(),
        })
    }

    /// The port of the health server (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to shut down gracefully; `main` links it to SIGTERM/Ctrl-C.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What the consumer and the delivery loop share.
    pub fn state(&self) -> State {
        self.state.clone()
    }

    /// Runs until the shutdown token fires (or the health server dies), then
    /// shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            state,
            shutdown,
            ..
        } = self;
        let broker = state.broker.clone();
        let server = shared::server::spawn(server, shutdown.clone());
        let queue = broker.topology().webhooks_queue();
        let handler_state = state.clone();
        let consumer = tokio::spawn(run_consumer(
            broker.clone(),
            queue,
            EVENTS_PREFETCH,
            shutdown.clone(),
            EVENTS_DRAIN,
            move |incoming| {
                let state = handler_state.clone();
                async move { consumer::handle(&state, incoming).await }
            },
        ));
        let delivery = tokio::spawn(delivery::run(state, shutdown.clone()));
        shutdown.cancelled().await;
        tracing::info!("shutting down");
        consumer.await.context("The event consumer panicked")?;
        delivery.await.context("The delivery loop panicked")?;
        let served = server.stop().await;
        broker.close().await;
        served
    }
}

/// Ready when the database and the broker answer (docs/architecture.md
/// "Operations").
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    http::readiness_with(Some(&state.db), Some(&state.broker), Vec::new()).await
}
