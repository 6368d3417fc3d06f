//! `GET /v1/audio/{id}`: the signed, expiring `audioUrl`
//! (`/v1/audio/{id}?expires=…&signature=…`) that needs no key (the URL is
//! made by `crate::audio::audio_url_of`).
//! A tampered or expired URL is 403; the signature is checked in constant
//! time before the database is touched.

use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;

use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::GenerationId;
use shared::models::Generation;
use shared::signing::{self, AudioUrlCheck};

use crate::audio::audio_response;
use crate::state::State;

pub fn routes(r: &mut crate::routes::Routes) {
    r.get("/v1/audio/{id}", signed);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Signature {
    /// Unix seconds after which the URL is refused.
    expires: Option<String>,
    /// The URL's signature.
    signature: Option<String>,
}

/// The audio behind a signed `audioUrl`; needs no key.
#[utoipa::path(
    get,
    path = "/v1/audio/{id}",
    tag = "generations",
    operation_id = "getSignedAudio",
    params(("id" = GenerationId, Path, description = "The generation"), Signature),
    responses(
        (status = 200, description = "The audio, in the generation's format", content(
            (crate::openapi::Binary = "audio/wav"),
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/ogg"),
            (crate::openapi::Binary = "audio/flac"),
            (crate::openapi::Binary = "audio/L16"),
        )),
        (status = 400, description = "A query string that cannot be read", body = ErrorEnvelope),
        (status = 403, description = "A tampered (`invalid_signature`) or expired (`url_expired`) URL", body = ErrorEnvelope),
        (status = 404, description = "No such generation", body = ErrorEnvelope),
        (status = 409, description = "Still processing, or failed", body = ErrorEnvelope),
        (status = 410, description = "Deleted with its audio", body = ErrorEnvelope),
        (status = 503, description = "The audio store is unavailable", body = ErrorEnvelope),
    ),
    security(())
)]
async fn signed(
    state: web::Data<State>,
    path: web::Path<String>,
    query: web::Query<Signature>,
) -> Result<HttpResponse, ApiError> {
    let refused = || {
        ApiError::forbidden(
            "invalid_signature",
            "this audio URL is not valid; get a fresh one from GET /v1/generations/{id}",
        )
    };
    let id = GenerationId::parse(&path).ok_or_else(refused)?;
    let expires: i64 = query
        .expires
        .as_deref()
        .and_then(|e| e.parse().ok())
        .ok_or_else(refused)?;
    let signature = query.signature.as_deref().ok_or_else(refused)?;
    let key = state
        .settings
        .audio_urls
        .signing_key
        .expose_secret()
        .as_bytes();
    let now = chrono::Utc::now().timestamp();
    match signing::verify_audio_url(key, &id.to_string(), expires, signature, now) {
        AudioUrlCheck::Valid => {}
        AudioUrlCheck::Invalid => return Err(refused()),
        AudioUrlCheck::Expired => {
            return Err(ApiError::forbidden(
                "url_expired",
                "this audio URL has expired; get a fresh one from GET /v1/generations/{id}",
            ));
        }
    }
    let g = state
        .db
        .run(move |conn| Generation::find(conn, id.0).map_err(DbError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    audio_response(&state, g).await
}
