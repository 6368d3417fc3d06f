//! `/v1/webhooks`: register an endpoint (its `whsec_` secret shown once, in
//! the 201) and list the workspace's endpoints (never with secrets).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use shared::db::DbError;
use shared::http::ApiError;
use shared::ids::WebhookId;
use shared::models::{NewWebhookEndpoint, WebhookEndpoint};
use shared::signing::generate_webhook_secret;

use crate::auth::Principal;
use crate::domain::webhook_request::CreateWebhook;
use crate::startup::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/webhooks", web::post().to(create))
        .route("/v1/webhooks", web::get().to(list));
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointView {
    id: WebhookId,
    url: String,
    events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    enabled: bool,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
    /// Only in the answer to the request that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointView {
    fn new(e: WebhookEndpoint, with_secret: bool) -> Self {
        Self {
            id: WebhookId(e.id),
            url: e.url,
            events: e.events,
            description: e.description,
            enabled: e.enabled,
            created_at: e.created_at,
            secret: with_secret.then_some(e.secret),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListView {
    data: Vec<EndpointView>,
    has_more: bool,
}

async fn create(
    state: web::Data<State>,
    principal: Principal,
    body: web::Json<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    principal.require("webhooks:manage")?;
    let valid = body.into_inner().validate()?;
    let new = NewWebhookEndpoint {
        id: Uuid::now_v7(),
        workspace_id: principal.workspace_id.0,
        url: valid.url.to_string(),
        description: valid.description,
        events: valid.events,
        secret: generate_webhook_secret(),
    };
    let endpoint = state
        .db
        .run(move |conn| WebhookEndpoint::insert(conn, &new).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Created().json(EndpointView::new(endpoint, true)))
}

async fn list(state: web::Data<State>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require("webhooks:manage")?;
    let workspace = principal.workspace_id.0;
    let endpoints = state
        .db
        .run(move |conn| WebhookEndpoint::list(conn, workspace).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok().json(ListView {
        data: endpoints
            .into_iter()
            .map(|e| EndpointView::new(e, false))
            .collect(),
        has_more: false,
    }))
}
