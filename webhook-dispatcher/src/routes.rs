//! The dispatcher's own HTTP surface: `GET /healthz` (the process is alive)
//! and `GET /readyz` (database and broker reachable), docs/architecture.md
//! "Operations".

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use shared::amqp::Broker;
use shared::db::Db;

/// What readiness checks.
pub struct Dependencies {
    pub db: Db,
    pub broker: Arc<Broker>,
}

async fn readyz(deps: web::Data<Dependencies>) -> HttpResponse {
    shared::http::readiness(Some(&deps.db), Some(&deps.broker)).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(shared::http::healthz))
        .route("/readyz", web::get().to(readyz));
}
