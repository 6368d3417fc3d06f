//! Routes of the key service (internal network only). Every route checks
//! the internal token first.

pub mod keys;
pub mod verify;

use actix_web::HttpRequest;
use actix_web::web;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use shared::http::ApiError;
use shared::keys_api::{TOUCH_PATH, VERIFY_PATH};

use crate::state::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(VERIFY_PATH, web::post().to(verify::verify))
        .route(TOUCH_PATH, web::post().to(keys::touch))
        .route(
            "/internal/v1/workspaces/{ws}/keys",
            web::post().to(keys::create),
        )
        .route(
            "/internal/v1/workspaces/{ws}/keys",
            web::get().to(keys::list),
        )
        .route(
            "/internal/v1/workspaces/{ws}/keys/{id}/rotate",
            web::post().to(keys::rotate),
        )
        .route(
            "/internal/v1/workspaces/{ws}/keys/{id}",
            web::delete().to(keys::revoke),
        );
}

/// 401 unless the request carries the internal token (compared by hash, so
/// in constant time with respect to the token's content).
pub fn require_internal(req: &HttpRequest, state: &State) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.settings.key_service.internal_token.expose_secret();
    if Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "invalid_internal_token",
            "this endpoint is for voiceprod services",
        ))
    }
}
