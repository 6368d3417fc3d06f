//! The delivery log of an endpoint (newest first, each delivery with its
//! attempts) and the manual retry.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{DeliveryId, WebhookId};
use shared::models::{Requeue, WebhookAttempt, WebhookDelivery};

use super::endpoint_id;
use super::endpoints::{endpoint_disabled, find};
use super::views::DeliveryView;
use crate::auth::Principal;
use crate::domain::webhook_request::DeliveryPageQuery;
use crate::pagination::PageView;
use crate::state::State;

/// The deliveries of this endpoint, newest first, each with its attempts.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    params(("id" = WebhookId, Path, description = "The endpoint"), DeliveryPageQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = PageView<DeliveryView>),
        (status = 400, description = "limit out of range, unknown status, a cursor this list did not return", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint in this workspace", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn list(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<DeliveryPageQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require("webhooks:manage")?;
    let endpoint = find(&state, &principal, endpoint_id(&path)?).await?;
    let (page, status) = query.into_inner().validate()?;
    let workspace = principal.workspace_id.0;
    let (rows, attempts) = state
        .db
        .run(move |conn| {
            let rows = WebhookDelivery::page(
                conn,
                workspace,
                endpoint.id,
                status,
                page.after.map(|a| a.0),
                page.limit + 1,
            )?;
            let ids: Vec<_> = rows.iter().map(|d| d.id).collect();
            let attempts = WebhookAttempt::of_deliveries(conn, &ids)?;
            Ok::<_, DbError>((rows, attempts))
        })
        .await?;
    Ok(HttpResponse::Ok().json(PageView::new(
        rows,
        page.limit,
        |d| DeliveryId(d.id).to_string(),
        |d| DeliveryView::new(d, &attempts),
    )))
}

/// Sends a delivery now (same `webhook-id`): a settled one again, a pending
/// one without waiting for its next retry; 409 while a dispatcher is
/// sending it at this moment.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{deliveryId}/retry",
    tag = "webhooks",
    operation_id = "retryWebhookDelivery",
    params(
        ("id" = WebhookId, Path, description = "The endpoint"),
        ("deliveryId" = DeliveryId, Path, description = "The delivery"),
    ),
    responses(
        (status = 202, description = "The delivery is queued to be sent now", body = DeliveryView),
        (status = 404, description = "No such endpoint or delivery in this workspace", body = ErrorEnvelope),
        (status = 409, description = "The endpoint is disabled, or the delivery is being sent right now", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["webhooks:manage"]))
)]
pub async fn retry(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    principal.require("webhooks:manage")?;
    let (endpoint, delivery) = path.into_inner();
    let endpoint: WebhookId = endpoint_id(&endpoint)?;
    let delivery = DeliveryId::parse(&delivery).ok_or_else(delivery_not_found)?;
    let endpoint = find(&state, &principal, endpoint).await?;
    if !endpoint.enabled {
        return Err(endpoint_disabled());
    }
    let workspace = principal.workspace_id.0;
    let (outcome, row, attempts) = state
        .db
        .run(move |conn| {
            let outcome = WebhookDelivery::requeue(conn, workspace, endpoint.id, delivery.0)?;
            let row = WebhookDelivery::find(conn, workspace, endpoint.id, delivery.0)?;
            let attempts = WebhookAttempt::of_deliveries(conn, &[delivery.0])?;
            Ok::<_, DbError>((outcome, row, attempts))
        })
        .await?;
    match (outcome, row) {
        (Requeue::Requeued, Some(row)) => {
            Ok(HttpResponse::Accepted().json(DeliveryView::new(row, &attempts)))
        }
        (Requeue::InFlight, _) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_in_flight",
            "the delivery is being sent right now; its result is in the log within seconds",
        )),
        _ => Err(delivery_not_found()),
    }
}

fn delivery_not_found() -> ApiError {
    ApiError::not_found("delivery")
}
