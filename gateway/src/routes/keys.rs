//! `/v1/keys`: create, list (with this period's usage per key), rotate with
//! a grace period, revoke. The key service owns keys and validates; the
//! gateway checks `keys:manage` and names the calling key, whose own row the
//! key service judges by (a key never makes a key that outlives it, may
//! spend more or holds a scope it lacks, nor revokes or rotates a key
//! holding a scope it lacks); it adds usage from the ledger it owns, and
//! drops a revoked or rotated key from its own cache before answering.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::KeyId;
use shared::keys_api::{
    CreateKeyRequest, CreatedKey, KeyView, RotateKeyRequest, workspace_keys_path,
};
use shared::models::usage;

use crate::auth::Principal;
use crate::state::State;

pub fn routes(r: &mut crate::routes::Routes) {
    r.post("/v1/keys", create)
        .get("/v1/keys", list)
        .post("/v1/keys/{id}/rotate", rotate)
        .delete("/v1/keys/{id}", revoke);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "production", "scopes": ["generations:write", "generations:read"]}))]
pub struct CreateKey {
    name: String,
    /// Among `generations:read`, `generations:write`, `voices:read`,
    /// `voices:write`, `webhooks:manage`, `keys:manage`, `usage:read`; at
    /// most the scopes of the key making the request.
    scopes: Vec<String>,
    /// In the future; absent: never expires. No later than the expiry of
    /// the key making the request, if it has one.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    /// Credits this key may spend per period; absent: the workspace's
    /// allowance. At most the limit of the key making the request, if it
    /// has one.
    #[serde(default)]
    credit_limit: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old secret keeps working.
    #[schema(example = 3600)]
    grace_period_seconds: i64,
}

/// This period's usage of one key, from the ledger.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsage {
    /// Net credits: charges less refunds.
    credits: i64,
    /// Generations created with the key.
    requests: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyWithUsage {
    #[serde(flatten)]
    key: KeyView,
    usage: KeyUsage,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyList {
    data: Vec<KeyWithUsage>,
    has_more: bool,
}

fn unavailable(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::unavailable(
        "key_service_unavailable",
        "keys cannot be managed right now; try again",
        e,
    )
}

/// The key service's answer as ours: its 2xx body parsed as `T`, its 4xx
/// passed through in the envelope, anything else a 503.
async fn answer<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<(StatusCode, T), ApiError> {
    let response = response.map_err(unavailable)?;
    let status = StatusCode::from_u16(response.status().as_u16()).map_err(unavailable)?;
    if status.is_success() {
        let body = response.json::<T>().await.map_err(unavailable)?;
        return Ok((status, body));
    }
    if status.is_client_error() {
        let envelope: ErrorEnvelope = response.json().await.map_err(unavailable)?;
        let mut error = ApiError::new(status, envelope.error.code, envelope.error.message);
        error.param = envelope.error.param;
        return Err(error);
    }
    Err(unavailable(anyhow::anyhow!(
        "key service answered {status}"
    )))
}

/// Create a key; the answer carries its secret, once.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "keys",
    operation_id = "createKey",
    request_body = CreateKey,
    params(crate::openapi::IdempotencyKey),
    responses(
        (status = 201, description = "Created, with its `secret`, shown this once. An idempotent replay (`Idempotent-Replayed: true`) answers the key without its `secret`, which is never stored; rotate the key for a new one", body = CreatedKey,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request of this key with the same Idempotency-Key"))),
        (status = 400, description = "Invalid name, scopes, expiresAt or creditLimit", body = ErrorEnvelope),
        (status = 403, description = "The key lacks keys:manage, asks for a scope it does not hold itself (`insufficient_scope`), or for a key that would outlive it or may spend more (`key_exceeds_parent`: no or a later `expiresAt`, no or a higher `creditLimit` than its own)", body = ErrorEnvelope),
        (status = 409, description = "The Idempotency-Key was used with another body or by another API key (`idempotency_key_reused`), or its first request is still running", body = ErrorEnvelope),
        (status = 503, description = "The key service is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["keys:manage"]))
)]
async fn create(
    state: web::Data<State>,
    principal: Principal,
    body: web::Json<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    principal.require("keys:manage")?;
    let body = body.into_inner();
    let request = CreateKeyRequest {
        name: body.name,
        scopes: body.scopes,
        expires_at: body.expires_at,
        credit_limit: body.credit_limit,
        caller_key_id: principal.key_id,
    };
    let sent = state
        .key_service
        .request(
            reqwest::Method::POST,
            &workspace_keys_path(principal.workspace_id),
        )
        .json(&request)
        .send()
        .await;
    let (_, created): (_, CreatedKey) = answer(sent).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Every key of the workspace, with this period's usage.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "keys",
    operation_id = "listKeys",
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 503, description = "The key service is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["keys:manage"]))
)]
async fn list(state: web::Data<State>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require("keys:manage")?;
    let sent = state
        .key_service
        .request(
            reqwest::Method::GET,
            &workspace_keys_path(principal.workspace_id),
        )
        .send()
        .await;
    let (_, keys): (_, Vec<KeyView>) = answer(sent).await?;
    let workspace = principal.workspace_id.0;
    let usage = state
        .db
        .run(move |conn| usage_this_period(conn, workspace).map_err(DbError::from))
        .await?;
    let data = keys
        .into_iter()
        .map(|key| KeyWithUsage {
            usage: usage.get(&key.id.0).copied().unwrap_or_default(),
            key,
        })
        .collect();
    Ok(HttpResponse::Ok().json(KeyList {
        data,
        has_more: false,
    }))
}

/// A new secret for this key; the old one works until the grace period ends.
#[utoipa::path(
    post,
    path = "/v1/keys/{id}/rotate",
    tag = "keys",
    operation_id = "rotateKey",
    params(("id" = KeyId, Path, description = "The key")),
    request_body = RotateKey,
    responses(
        (status = 201, description = "The new key, with its `secret`; it keeps the old key's scopes, expiresAt and creditLimit", body = CreatedKey),
        (status = 400, description = "Invalid gracePeriodSeconds", body = ErrorEnvelope),
        (status = 403, description = "The key lacks keys:manage, the rotated key holds scopes it does not (`insufficient_scope`), or the rotated key outlives it or may spend more (`key_exceeds_parent`)", body = ErrorEnvelope),
        (status = 404, description = "No such key in this workspace", body = ErrorEnvelope),
        (status = 409, description = "The key was already rotated or revoked", body = ErrorEnvelope),
        (status = 503, description = "The key service is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["keys:manage"]))
)]
async fn rotate(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
    body: web::Json<RotateKey>,
) -> Result<HttpResponse, ApiError> {
    principal.require("keys:manage")?;
    let id = KeyId::parse(&path).ok_or_else(|| ApiError::not_found("key"))?;
    let request = RotateKeyRequest {
        grace_period_seconds: body.grace_period_seconds,
        caller_key_id: principal.key_id,
    };
    let sent = state
        .key_service
        .request(
            reqwest::Method::POST,
            &format!(
                "{}/{id}/rotate",
                workspace_keys_path(principal.workspace_id)
            ),
        )
        .json(&request)
        .send()
        .await;
    let (_, created): (_, CreatedKey) = answer(sent).await?;
    state.keys.invalidate_key(id);
    Ok(HttpResponse::Created().json(created))
}

/// Revoke a key at once.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "keys",
    operation_id = "revokeKey",
    params(("id" = KeyId, Path, description = "The key")),
    responses(
        (status = 200, description = "The key, revoked", body = KeyView),
        (status = 403, description = "The key lacks keys:manage, or the revoked key holds scopes it does not (`insufficient_scope`)", body = ErrorEnvelope),
        (status = 404, description = "No such key in this workspace", body = ErrorEnvelope),
        (status = 503, description = "The key service is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["keys:manage"]))
)]
async fn revoke(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("keys:manage")?;
    let id = KeyId::parse(&path).ok_or_else(|| ApiError::not_found("key"))?;
    let sent = state
        .key_service
        .request(
            reqwest::Method::DELETE,
            // `RevokeKeyQuery`; a key id needs no escaping.
            &format!(
                "{}/{id}?callerKeyId={}",
                workspace_keys_path(principal.workspace_id),
                principal.key_id
            ),
        )
        .send()
        .await;
    let (_, key): (_, KeyView) = answer(sent).await?;
    state.keys.invalidate_key(id);
    Ok(HttpResponse::Ok().json(key))
}

/// Net credits and generations per key since the workspace's period began.
fn usage_this_period(
    conn: &mut PgConnection,
    workspace: Uuid,
) -> QueryResult<HashMap<Uuid, KeyUsage>> {
    Ok(usage::per_key_this_period(conn, workspace)?
        .into_iter()
        .map(|r| {
            (
                r.api_key_id,
                KeyUsage {
                    credits: r.credits,
                    requests: r.requests,
                },
            )
        })
        .collect())
}
