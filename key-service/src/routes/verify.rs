//! `POST /internal/v1/keys/verify`: the gateway sends the SHA-256 of a
//! presented secret and gets the key's workspace, scopes, plan and state.
//! Callers authenticate with the internal token; comparison is constant-time.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use shared::db::Db;
use shared::http::ApiError;
use shared::ids::{KeyId, WorkspaceId};
use shared::keys_api::{VerifiedKey, VerifyRequest};

use crate::keys::ApiKey;
use crate::startup::State;

/// Whether the request carries the internal token (compared by hash, so in
/// constant time with respect to the token's content).
fn authorized(req: &HttpRequest, state: &State) -> bool {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.settings.key_service.internal_token.expose_secret();
    Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.as_bytes())
}

pub async fn verify(
    req: HttpRequest,
    state: web::Data<State>,
    db: web::Data<Db>,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    if !authorized(&req, &state) {
        return Err(ApiError::unauthorized(
            "invalid_internal_token",
            "this endpoint is for voiceprod services",
        ));
    }
    let hash = hex::decode(&body.key_hash)
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or_else(|| {
            ApiError::bad_request("invalid_parameter", "keyHash must be 64 hex digits")
                .with_param("keyHash")
        })?;
    let found = db
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
    }))
}
