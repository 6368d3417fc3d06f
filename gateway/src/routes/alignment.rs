//! `GET /v1/generations/{id}/alignment` (`generations:read`): the word
//! timestamps the worker stored next to the audio, as JSON (default) or as
//! subtitles with `?format=srt` / `?format=vtt`. 404 for a generation that
//! is not this workspace's, 409 while it is processing or if it failed —
//! the same checks as its audio (`stored_audio`).

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use shared::alignment::{Alignment, Word, alignment_key, to_srt, to_vtt};
use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{GenerationId, WorkspaceId};
use shared::models::Generation;

use crate::audio::stored_audio;
use crate::auth::Principal;
use crate::state::State;

pub fn routes(r: &mut crate::routes::Routes) {
    r.get("/v1/generations/{id}/alignment", get);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Query {
    /// `json` (default), `srt` or `vtt`.
    format: Option<String>,
}

/// Word timestamps as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlignmentView {
    generation_id: GenerationId,
    duration_ms: u64,
    words: Vec<Word>,
}

/// Word timestamps of a completed generation, as JSON or subtitles.
#[utoipa::path(
    get,
    path = "/v1/generations/{id}/alignment",
    tag = "generations",
    operation_id = "getGenerationAlignment",
    params(("id" = GenerationId, Path, description = "The generation"), Query),
    responses(
        (status = 200, description = "The words with their times", content(
            (AlignmentView = "application/json"),
            (String = "application/x-subrip"),
            (String = "text/vtt"),
        )),
        (status = 400, description = "A format other than json, srt or vtt", body = ErrorEnvelope),
        (status = 404, description = "No such generation in this workspace, or audio rendered without word timestamps", body = ErrorEnvelope),
        (status = 409, description = "Still processing, or failed", body = ErrorEnvelope),
        (status = 410, description = "Deleted with its audio", body = ErrorEnvelope),
        (status = 503, description = "The audio store is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["generations:read"]))
)]
async fn get(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:read")?;
    let format = query
        .into_inner()
        .format
        .unwrap_or_else(|| "json".to_owned());
    if !matches!(format.as_str(), "json" | "srt" | "vtt") {
        return Err(ApiError::bad_request(
            "invalid_format",
            format!("format {format:?} is not json, srt or vtt"),
        )
        .with_param("format"));
    }
    let id = GenerationId::parse(&path).ok_or_else(|| ApiError::not_found("generation"))?;
    let ws: WorkspaceId = principal.workspace_id;
    let g = state
        .db
        .run(move |c| Generation::find_in_workspace(c, ws.0, id.0).map_err(DbError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    stored_audio(&g)?;
    let stored = match state.store.get(&alignment_key(ws, id)).await {
        Ok(r) => r.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = stored.map_err(|e| match e {
        // Audio rendered before word timestamps existed has none.
        object_store::Error::NotFound { .. } => ApiError::not_found("alignment"),
        other => ApiError::unavailable(
            "storage_unavailable",
            "the audio store is unavailable; try again",
            other,
        ),
    })?;
    let alignment: Alignment = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
    Ok(match format.as_str() {
        "srt" => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "application/x-subrip; charset=utf-8"))
            .body(to_srt(&alignment)),
        "vtt" => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/vtt; charset=utf-8"))
            .body(to_vtt(&alignment)),
        _ => HttpResponse::Ok().json(AlignmentView {
            generation_id: id,
            duration_ms: alignment.duration_ms,
            words: alignment.words,
        }),
    })
}
