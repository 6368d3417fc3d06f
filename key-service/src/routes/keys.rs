//! A workspace's keys: create, list, rotate with a grace period, revoke at
//! once, and the gateway's batched last-used updates. Create, rotate and
//! revoke are judged by the calling key's own row (`crate::delegation`):
//! nothing is changed when it may not. Rotation and
//! revocation are committed first, then announced on `voiceprod.keys` so
//! every gateway drops the old key from its cache; the gateway's cache TTL
//! bounds staleness even if that announcement is lost.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use diesel::Connection;
use uuid::Uuid;

use shared::api_key;
use shared::db::DbError;
use shared::http::ApiError;
use shared::ids::{KeyId, WorkspaceId};
use shared::keys_api::{
    CreateKeyRequest, CreatedKey, KeyView, RevokeKeyQuery, RotateKeyRequest, TouchRequest,
};
use shared::messages::KeyMessage;
use shared::models::Workspace;

use crate::delegation::{self, Grant};
use crate::keys::{ApiKey, NewApiKey};
use crate::state::State;

/// Longest rotation grace period: 7 days.
pub const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;
const MAX_NAME_CHARS: usize = 100;

fn workspace(id: &str) -> Result<WorkspaceId, ApiError> {
    WorkspaceId::parse(id).ok_or_else(|| ApiError::not_found("workspace"))
}

fn key_id(id: &str) -> Result<KeyId, ApiError> {
    KeyId::parse(id).ok_or_else(|| ApiError::not_found("key"))
}

fn validate_create(body: &CreateKeyRequest) -> Result<Vec<String>, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        )
        .with_param("name"));
    }
    if body.scopes.is_empty() {
        return Err(
            ApiError::bad_request("invalid_scopes", "scopes must name at least one scope")
                .with_param("scopes"),
        );
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in &body.scopes {
        if !api_key::is_scope(s) {
            return Err(ApiError::bad_request(
                "invalid_scopes",
                format!(
                    "unknown scope {s:?}; scopes are {}",
                    api_key::SCOPES.join(", ")
                ),
            )
            .with_param("scopes"));
        }
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(
            ApiError::bad_request("invalid_expires_at", "expiresAt must be in the future")
                .with_param("expiresAt"),
        );
    }
    if body.credit_limit.is_some_and(|c| c < 0) {
        return Err(ApiError::bad_request(
            "invalid_credit_limit",
            "creditLimit must not be negative",
        )
        .with_param("creditLimit"));
    }
    Ok(scopes)
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<String>,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_internal(&req, &state)?;
    let ws = workspace(&path)?;
    let body = body.into_inner();
    let scopes = validate_create(&body)?;
    let created = state
        .db
        .run(move |conn| {
            Workspace::find(conn, ws.0).map_err(|e| match e {
                diesel::result::Error::NotFound => ApiError::not_found("workspace"),
                e => DbError::from(e).into(),
            })?;
            let caller = delegation::caller(conn, ws.0, body.caller_key_id)?;
            delegation::may_issue(
                &caller,
                &Grant {
                    scopes: &scopes,
                    expires_at: body.expires_at,
                    credit_limit: body.credit_limit,
                },
            )?;
            let secret = api_key::generate();
            let key = ApiKey::insert(
                conn,
                &NewApiKey {
                    id: Uuid::now_v7(),
                    workspace_id: ws.0,
                    name: body.name.trim(),
                    secret_sha256: &secret.sha256,
                    prefix: &secret.display_prefix,
                    scopes,
                    expires_at: body.expires_at,
                    credit_limit: body.credit_limit,
                    rotated_from: None,
                },
            )
            .map_err(DbError::from)?;
            Ok::<_, ApiError>(CreatedKey {
                key: key.view(),
                secret: secret.secret,
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(created))
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    super::require_internal(&req, &state)?;
    let ws = workspace(&path)?;
    let keys = state
        .db
        .run(move |conn| ApiKey::list(conn, ws.0).map_err(DbError::from))
        .await?;
    let views: Vec<KeyView> = keys.iter().map(ApiKey::view).collect();
    Ok(HttpResponse::Ok().json(views))
}

pub async fn rotate(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    body: web::Json<RotateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_internal(&req, &state)?;
    let (ws, id) = path.into_inner();
    let (ws, id) = (workspace(&ws)?, key_id(&id)?);
    let grace = body.grace_period_seconds;
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(ApiError::bad_request(
            "invalid_grace_period",
            format!("gracePeriodSeconds must be 0 to {MAX_GRACE_SECONDS} (7 days)"),
        )
        .with_param("gracePeriodSeconds"));
    }
    let caller_id = body.caller_key_id;
    let (old, created) = state
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                let old = ApiKey::find_in_workspace(conn, ws.0, id.0)
                    .map_err(DbError::from)?
                    .ok_or_else(|| ApiError::not_found("key"))?;
                let caller = delegation::caller(conn, ws.0, caller_id)?;
                let now = Utc::now();
                if old.revoked_at.is_some_and(|t| t <= now)
                    || old.expires_at.is_some_and(|t| t <= now)
                {
                    return Err(ApiError::new(
                        actix_web::http::StatusCode::CONFLICT,
                        "key_inactive",
                        "this key is revoked or expired; create a new key instead",
                    ));
                }
                // The new key keeps the old one's scopes, expiry and limit.
                delegation::holds(&caller, &old.scopes, "rotate a key holding")?;
                delegation::may_issue(
                    &caller,
                    &Grant {
                        scopes: &old.scopes,
                        expires_at: old.expires_at,
                        credit_limit: old.credit_limit,
                    },
                )?;
                let secret = api_key::generate();
                let new = ApiKey::insert(
                    conn,
                    &NewApiKey {
                        id: Uuid::now_v7(),
                        workspace_id: ws.0,
                        name: &old.name,
                        secret_sha256: &secret.sha256,
                        prefix: &secret.display_prefix,
                        scopes: old.scopes.clone(),
                        expires_at: old.expires_at,
                        credit_limit: old.credit_limit,
                        rotated_from: Some(old.id),
                    },
                )
                .map_err(DbError::from)?;
                let old = if grace == 0 {
                    ApiKey::revoke(conn, old.id, now)
                } else {
                    ApiKey::expire_by(conn, old.id, now + Duration::seconds(grace))
                }
                .map_err(DbError::from)?;
                Ok((
                    old,
                    CreatedKey {
                        key: new.view(),
                        secret: secret.secret,
                    },
                ))
            })
        })
        .await?;
    announce(&state, &old).await;
    Ok(HttpResponse::Created().json(created))
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    query: web::Query<RevokeKeyQuery>,
) -> Result<HttpResponse, ApiError> {
    super::require_internal(&req, &state)?;
    let (ws, id) = path.into_inner();
    let (ws, id) = (workspace(&ws)?, key_id(&id)?);
    let caller_id = query.into_inner().caller_key_id;
    let key = state
        .db
        .run(move |conn| {
            let target = ApiKey::find_in_workspace(conn, ws.0, id.0)
                .map_err(DbError::from)?
                .ok_or_else(|| ApiError::not_found("key"))?;
            let caller = delegation::caller(conn, ws.0, caller_id)?;
            delegation::holds(&caller, &target.scopes, "revoke a key holding")?;
            ApiKey::revoke(conn, id.0, Utc::now()).map_err(|e| ApiError::from(DbError::from(e)))
        })
        .await?;
    announce(&state, &key).await;
    Ok(HttpResponse::Ok().json(key.view()))
}

/// Tells every gateway to forget this key's cached verification. The
/// change is committed already; if the broker is down, gateways notice at
/// the end of their cache TTL instead.
async fn announce(state: &State, key: &ApiKey) {
    let message = KeyMessage::InvalidatedV1 {
        key_hashes: vec![key.hash_hex()],
    };
    let exchange = state.publisher.broker().topology().keys_exchange();
    let message_id = format!("keyinv_{}", Uuid::now_v7().simple());
    for attempt in 0..3u64 {
        match state
            .publisher
            .publish(&exchange, "", &message_id, &message)
            .await
        {
            Ok(()) => return,
            Err(e) if attempt == 2 => {
                tracing::error!(error = %e, key_id = %KeyId(key.id), "could not announce key invalidation; gateways rely on their cache TTL");
            }
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await
            }
        }
    }
}

pub async fn touch(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Json<TouchRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_internal(&req, &state)?;
    let entries = body.into_inner().entries;
    if entries.len() > 10_000 {
        return Err(ApiError::bad_request(
            "too_many_entries",
            "at most 10,000 entries per call",
        ));
    }
    state
        .db
        .run(move |conn| {
            for e in &entries {
                ApiKey::touch(conn, e.key_id.0, e.last_used_at)?;
            }
            Ok::<_, DbError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
