//! Endpoint CRUD, secret rotation and the `webhook.test` event.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{MessageId, WebhookId};
use shared::messages::{Event, EventMessage, EventType, WebhookTestData};
use shared::models::{EndpointChanges, NewWebhookEndpoint, WebhookEndpoint};
use shared::signing::generate_webhook_secret;

use super::views::EndpointView;
use super::{check_target, endpoint_id, not_found};
use crate::auth::Principal;
use crate::domain::webhook_request::{CreateWebhook, EndpointPageQuery, UpdateWebhook};
use crate::pagination::PageView;
use crate::state::State;

/// After a rotation the previous secret keeps signing this long (docs/webhooks.md).
pub const SECRET_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

const SCOPE: &str = "webhooks:manage";

/// Register an endpoint; the answer carries its signing secret, once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    operation_id = "createWebhook",
    request_body = CreateWebhook,
    params(crate::openapi::IdempotencyKey),
    responses(
        (status = 201, description = "Created, with its `secret`, shown this once. An idempotent replay (`Idempotent-Replayed: true`) answers the endpoint without its `secret`, which is never stored; use rotate-secret for a new one", body = EndpointView,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request of this key with the same Idempotency-Key"))),
        (status = 400, description = "Invalid url, events or description, or a target the operator does not allow (`url_not_allowed`)", body = ErrorEnvelope),
        (status = 409, description = "The Idempotency-Key was used with another body or by another API key (`idempotency_key_reused`), or its first request is still running", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn create(
    state: web::Data<State>,
    principal: Principal,
    body: web::Json<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let valid = body.into_inner().validate()?;
    check_target(&state, &valid.url).await?;
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

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    operation_id = "listWebhooks",
    params(EndpointPageQuery),
    responses(
        (status = 200, description = "A page of endpoints, oldest first", body = PageView<EndpointView>),
        (status = 400, description = "limit out of range or a cursor this list did not return", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn list(
    state: web::Data<State>,
    principal: Principal,
    query: web::Query<EndpointPageQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let page = query.into_inner().validate()?;
    let workspace = principal.workspace_id.0;
    let rows = state
        .db
        .run(move |conn| {
            WebhookEndpoint::page(conn, workspace, page.after.map(|a| a.0), page.limit + 1)
                .map_err(DbError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(PageView::new(
        rows,
        page.limit,
        |e| WebhookId(e.id).to_string(),
        |e| EndpointView::new(e, false),
    )))
}

/// The caller's endpoint `id`, or 404.
pub async fn find(
    state: &State,
    principal: &Principal,
    id: WebhookId,
) -> Result<WebhookEndpoint, ApiError> {
    let workspace = principal.workspace_id.0;
    state
        .db
        .run(move |conn| WebhookEndpoint::find_in(conn, workspace, id.0).map_err(DbError::from))
        .await?
        .ok_or_else(not_found)
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "getWebhook",
    params(("id" = WebhookId, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn get(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let endpoint = find(&state, &principal, endpoint_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(EndpointView::new(endpoint, false)))
}

/// Change url, events, description (`null` clears it) or enabled.
#[utoipa::path(
    patch,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "updateWebhook",
    params(("id" = WebhookId, Path, description = "The endpoint")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The endpoint as changed", body = EndpointView),
        (status = 400, description = "Invalid url, events or description, or a target the operator does not allow", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn update(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
    body: web::Json<UpdateWebhook>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let valid = body.into_inner().validate()?;
    if let Some(url) = &valid.url {
        check_target(&state, url).await?;
    }
    let changes = EndpointChanges {
        url: valid.url.map(|u| u.to_string()),
        description: valid.description,
        events: valid.events,
        enabled: valid.enabled,
        // Enabling starts afresh: no reason, and the 5-day clock restarts.
        disabled_reason: valid
            .enabled
            .map(|enabled| (!enabled).then(|| "disabled through the API".to_owned())),
        failing_since: valid.enabled.filter(|e| *e).map(|_| None),
        updated_at: Some(Utc::now()),
    };
    let workspace = principal.workspace_id.0;
    let endpoint = state
        .db
        .run(move |conn| {
            WebhookEndpoint::update(conn, workspace, id.0, &changes).map_err(DbError::from)
        })
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(EndpointView::new(endpoint, false)))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "deleteWebhook",
    params(("id" = WebhookId, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn delete(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let workspace = principal.workspace_id.0;
    let deleted = state
        .db
        .run(move |conn| WebhookEndpoint::delete(conn, workspace, id.0).map_err(DbError::from))
        .await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A new secret, shown once; the old one keeps signing for 24 h, so
/// receivers can switch without losing a webhook.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    operation_id = "rotateWebhookSecret",
    params(("id" = WebhookId, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "The endpoint with its new `secret`", body = EndpointView),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn rotate_secret(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let workspace = principal.workspace_id.0;
    let secret = generate_webhook_secret();
    let until = Utc::now() + SECRET_OVERLAP;
    let endpoint = state
        .db
        .run(move |conn| {
            WebhookEndpoint::rotate_secret(conn, workspace, id.0, &secret, until)
                .map_err(DbError::from)
        })
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(EndpointView::new(endpoint, true)))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestSent {
    /// The `webhook-id` the receiver will see; also the delivery's `eventId`.
    event_id: MessageId,
    #[schema(value_type = EventType)]
    event: &'static str,
}

/// Sends a `webhook.test` event to this one endpoint, through the same
/// path as every event (the events exchange, the dispatcher's fan-out,
/// signing, retries), so it tests what real events will do.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/test",
    tag = "webhooks",
    operation_id = "testWebhook",
    params(("id" = WebhookId, Path, description = "The endpoint")),
    responses(
        (status = 202, description = "A `webhook.test` event is on its way", body = TestSent),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorEnvelope),
        (status = 409, description = "The endpoint is disabled (`endpoint_disabled`)", body = ErrorEnvelope),
        (status = 503, description = "The event queue is unavailable; nothing was sent", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn test(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(SCOPE)?;
    let endpoint = find(&state, &principal, endpoint_id(&path)?).await?;
    if !endpoint.enabled {
        return Err(endpoint_disabled());
    }
    state.ensure_broker().await?;
    let id = WebhookId(endpoint.id);
    let event = Event {
        id: MessageId::new(),
        event: EventType::WebhookTest,
        workspace_id: principal.workspace_id,
        occurred_at: Utc::now(),
        data: serde_json::json!(WebhookTestData {
            endpoint_id: id,
            message: "This is a test event from voiceprod.".to_owned(),
        }),
        audio_of: None,
        target_endpoint: Some(id),
    };
    let exchange = state.publisher.broker().topology().events_exchange();
    state
        .publisher
        .publish(
            &exchange,
            EventType::WebhookTest.as_str(),
            &event.id.to_string(),
            &EventMessage::V1(event.clone()),
        )
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "broker_unavailable",
                "the event queue is unavailable; nothing was sent, try again",
                e,
            )
        })?;
    Ok(HttpResponse::Accepted().json(TestSent {
        event_id: event.id,
        event: EventType::WebhookTest.as_str(),
    }))
}

pub fn endpoint_disabled() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "endpoint_disabled",
        "the endpoint is disabled; enable it with PATCH {\"enabled\": true} first",
    )
}
