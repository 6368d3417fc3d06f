//! `Application`: the consumer, the delivery loop and the health server of
//! one dispatcher, built from explicit `Settings` (zero2prod `startup.rs`).
//!
//! Shutdown, when the stop token fires: stop consuming (deliveries being
//! fanned out finish and are acked), stop claiming and finish the sends in
//! flight, then stop the health server and close the broker connection.
//! Whatever is still pending stays in the database for the next dispatcher.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use shared::amqp::{Broker, run_consumer};
use shared::settings::Settings;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::routes::{self, Dependencies};
use crate::{consumer, delivery};

/// Unacknowledged events per dispatcher; each costs one short transaction.
const EVENTS_PREFETCH: u16 = 16;

pub struct Application {
    port: u16,
    server: Server,
    ctx: Context,
    broker: Arc<Broker>,
    stop: CancellationToken,
}

impl Application {
    /// Binds the health server and prepares everything; connects to nothing
    /// yet, so it starts while a dependency is down (and says so on `/readyz`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let ctx = Context::new(&settings)?;
        let broker =
            Broker::with_metrics(&settings.amqp, "webhook-dispatcher", ctx.metrics.clone());
        let metrics = ctx.metrics.clone();
        let address = (settings.dispatcher.host.as_str(), settings.dispatcher.port);
        let listener = TcpListener::bind(address)
            .with_context(|| format!("Failed to bind {}:{}", address.0, address.1))?;
        let port = listener.local_addr()?.port();
        let deps = web::Data::new(Dependencies {
            db: ctx.db.clone(),
            broker: broker.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(shared::http::request_id_middleware))
                .app_data(deps.clone())
                .configure(|c| shared::metrics::configure(c, &metrics, true))
                .configure(routes::configure)
        })
        // Two probes are all it serves.
        .workers(1)
        // Shutdown comes from the stop token, not from actix's own signal handling.
        .disable_signals()
        .listen(listener)
        .context("Failed to start the health server")?
        .run();
        Ok(Self {
            port,
            server,
            ctx,
            broker,
            stop: CancellationToken::new(),
        })
    }

    /// The port of the health server (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to shut down gracefully; `main` links it to SIGTERM/Ctrl-C.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs until the stop token fires (or the health server dies), then
    /// shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            ctx,
            broker,
            stop,
            ..
        } = self;
        let server_handle = server.handle();
        let mut server = tokio::spawn(server);

        let queue = broker.topology().webhooks_queue();
        let handler_ctx = ctx.clone();
        let consumer = tokio::spawn(run_consumer(
            broker.clone(),
            queue,
            EVENTS_PREFETCH,
            stop.clone(),
            move |incoming| {
                let ctx = handler_ctx.clone();
                async move { consumer::handle(&ctx, incoming).await }
            },
        ));
        let delivery = tokio::spawn(delivery::run(ctx, stop.clone()));

        let server_result = tokio::select! {
            _ = stop.cancelled() => None,
            r = &mut server => {
                // The health server died: take everything down with it.
                stop.cancel();
                Some(r)
            }
        };
        tracing::info!("shutting down");
        consumer.await.context("The event consumer panicked")?;
        delivery.await.context("The delivery loop panicked")?;
        server_handle.stop(true).await;
        let server_result = match server_result {
            Some(r) => r,
            None => server.await,
        };
        broker.close().await;
        server_result
            .context("The health server panicked")?
            .context("The health server failed")
    }
}
