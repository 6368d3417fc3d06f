//! `POST /internal/v1/keys/verify`: the gateway sends the SHA-256 of a
//! presented secret and gets the key's workspace, scopes, plan and state.
//! Callers authenticate with the internal token; comparison is constant-time.

use actix_web::{HttpRequest, HttpResponse, web};

use shared::http::ApiError;
use shared::ids::{KeyId, WorkspaceId};
use shared::keys_api::{VerifiedKey, VerifyRequest};

use crate::keys::ApiKey;
use crate::state::State;

pub async fn verify(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    super::require_internal(&req, &state)?;
    let hash = hex::decode(&body.key_hash)
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or_else(|| {
            ApiError::bad_request("invalid_parameter", "keyHash must be 64 hex digits")
                .with_param("keyHash")
        })?;
    let found = state
        .db
        .run(move |conn| ApiKey::find_by_hash(conn, &hash).map_err(shared::db::DbError::from))
        .await?;
    let (key, plan) = found.ok_or_else(|| ApiError::not_found("key"))?;
    Ok(HttpResponse::Ok().json(VerifiedKey {
        key_id: KeyId(key.id),
        workspace_id: WorkspaceId(key.workspace_id),
        scopes: key.scopes,
        plan,
        expires_at: key.expires_at,
        revoked_at: key.revoked_at,
        credit_limit: key.credit_limit,
    }))
}
