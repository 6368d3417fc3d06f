//! Builds the key service's HTTP server (zero2prod shape): `build` binds
//! (port 0 in tests), `port` says where, `run_until_stopped` serves until
//! the shutdown token fires.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use tokio_util::sync::CancellationToken;

use shared::amqp::{Broker, Publisher};
use shared::db::Db;
use shared::http;
use shared::metrics::Metrics;
use shared::settings::Settings;

use crate::state::State;

pub struct Application {
    port: u16,
    server: Server,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((
            settings.key_service.host.as_str(),
            settings.key_service.port,
        ))
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to bind key-service to {}:{}: {e}",
                settings.key_service.host,
                settings.key_service.port
            )
        })?;
        let port = listener.local_addr()?.port();
        let db = Db::new(&settings.database);
        let metrics = Metrics::new(settings.telemetry.metrics_token.clone());
        let publisher = Publisher::new(Broker::with_metrics(
            &settings.amqp,
            "key-service",
            metrics.clone(),
        ));
        let state = web::Data::new(State {
            db,
            publisher,
            settings,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::request_id_middleware))
                .app_data(http::json_config(64 * 1024))
                .app_data(state.clone())
                .configure(|c| http::probes(c, readyz))
                .configure(|c| shared::metrics::configure(c, &metrics, true))
                .configure(crate::routes::configure)
                .default_service(web::to(http::default_service))
        })
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let server = shared::server::spawn(self.server, self.shutdown.clone());
        self.shutdown.cancelled().await;
        server.stop().await
    }
}

/// Ready when the database answers. The broker is not checked: verifying
/// keys needs only the database, and an invalidation that cannot be
/// published is logged (the gateways' cache TTL bounds it).
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    http::readiness_with(Some(&state.db), None, Vec::new()).await
}
