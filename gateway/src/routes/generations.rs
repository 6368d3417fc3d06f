//! `/v1/generations`: create (202, credits reserved with the insert, job
//! published after the commit), get, and the audio with the key.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use shared::amqp::SYNTH_ROUTING_KEY;
use shared::db::DbError;
use shared::formats::AudioFormat;
use shared::http::ApiError;
use shared::ids::{GenerationId, WorkspaceId};
use shared::messages::JobMessage;
use shared::models::generation::CreateError;
use shared::models::{Generation, GenerationStatus, NewGeneration};

use crate::auth::Principal;
use crate::domain::generation_request::CreateGeneration;
use crate::routes::audio::{audio_response, signed_audio_url};
use crate::startup::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/generations", web::post().to(create))
        .route("/v1/generations/{id}", web::get().to(get))
        .route("/v1/generations/{id}/audio", web::get().to(audio));
}

/// The 202 body: exactly the shape of API.md.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    id: GenerationId,
    status: &'static str,
    voice_id: String,
    credits: i64,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
}

/// A generation as `GET` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationView {
    id: GenerationId,
    status: String,
    voice_id: String,
    format: String,
    credits: i64,
    characters: i64,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio_url: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shared::time::serialize_opt"
    )]
    completed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<serde_json::Value>,
}

impl GenerationView {
    pub fn new(g: Generation, state: &State) -> Self {
        let id = GenerationId(g.id);
        let completed = g.status() == GenerationStatus::Completed;
        Self {
            audio_url: completed.then(|| signed_audio_url(state, id)),
            id,
            status: g.status,
            voice_id: g.voice_id,
            format: g.format,
            credits: g.credits,
            characters: g.characters,
            created_at: g.created_at,
            duration_ms: g.duration_ms,
            completed_at: g.completed_at,
            error: g.error,
            metadata: g.metadata,
        }
    }
}

async fn create(
    state: web::Data<State>,
    principal: Principal,
    body: web::Json<CreateGeneration>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:write")?;
    let body = body.into_inner();
    let cloned = crate::routes::voices::is_usable_cloned_voice(
        &state,
        principal.workspace_id,
        &body.voice_id,
    )
    .await?;
    let valid = body.validate_with(&principal.plan, cloned)?;
    // Refuse before charging anything when the broker is down: 503, nothing changed.
    state.ensure_broker().await?;

    let id = GenerationId::new();
    let new = NewGeneration {
        id: id.0,
        workspace_id: principal.workspace_id.0,
        api_key_id: Some(principal.key_id.0),
        text: valid.text,
        text_type: valid.text_type.to_owned(),
        voice_id: valid.voice_id,
        format: valid.format.as_str().to_owned(),
        sample_rate: valid.sample_rate.map(|r| r as i32),
        speed: valid.speed,
        status: GenerationStatus::Processing.as_str().to_owned(),
        credits: valid.credits as i64,
        characters: valid.characters as i64,
        metadata: valid.metadata,
        idempotency_key: None,
        request_hash: None,
    };
    let key_limit = principal.credit_limit;
    let created = state
        .db
        .run(move |conn| match Generation::create_within_key_limit(conn, &new, key_limit) {
            Ok(g) => Ok(g),
            Err(CreateError::KeyCreditLimit) => Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "key_credit_limit",
                format!("this generation costs {} credits, more than this key may still spend this period", new.credits),
            )),
            Err(CreateError::InsufficientCredits) => Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                format!(
                    "this generation costs {} credits, more than are left in this period",
                    new.credits
                ),
            )),
            Err(CreateError::Db(e)) => Err(DbError::from(e).into()),
        })
        .await?;

    // Committed: from here the generation is never lost. If the publish
    // fails, the sweeper publishes it later; the client still gets its 202.
    publish_job(&state, id).await;

    Ok(HttpResponse::Accepted()
        .insert_header((LOCATION, format!("/v1/generations/{id}")))
        .json(Accepted {
            id,
            status: "processing",
            voice_id: created.voice_id,
            credits: created.credits,
            created_at: created.created_at,
        }))
}

/// Publishes the job (waiting for the broker's confirm) and records that it
/// was published; a failure is left to the sweeper.
pub async fn publish_job(state: &State, id: GenerationId) {
    let job = JobMessage::SynthesizeV1 { generation_id: id };
    let exchange = state.publisher.broker().topology().jobs_exchange();
    match state
        .publisher
        .publish(&exchange, SYNTH_ROUTING_KEY, &id.to_string(), &job)
        .await
    {
        Ok(()) => {
            let marked = state
                .db
                .run(move |conn| Generation::mark_published(conn, id.0).map_err(DbError::from))
                .await;
            if let Err(e) = marked {
                // Harmless: the sweeper will publish it once more and the
                // worker skips a job whose generation is already done.
                tracing::warn!(error = %e, generation_id = %id, "could not mark generation published");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, generation_id = %id, "job not published; the sweeper will retry")
        }
    }
}

async fn find(state: &State, workspace: WorkspaceId, id: &str) -> Result<Generation, ApiError> {
    let id = GenerationId::parse(id).ok_or_else(|| ApiError::not_found("generation"))?;
    state
        .db
        .run(move |conn| {
            Generation::find_in_workspace(conn, workspace.0, id.0).map_err(DbError::from)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))
}

async fn get(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:read")?;
    let g = find(&state, principal.workspace_id, &path).await?;
    Ok(HttpResponse::Ok().json(GenerationView::new(g, &state)))
}

async fn audio(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:read")?;
    let g = find(&state, principal.workspace_id, &path).await?;
    audio_response(&state, g).await
}

/// The storage key and format of a completed generation.
pub fn stored_audio(g: &Generation) -> Result<(object_store::path::Path, AudioFormat), ApiError> {
    match g.status() {
        GenerationStatus::Completed => {}
        GenerationStatus::Processing => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "audio_not_ready",
                "the generation is still processing; wait for generation.completed",
            ));
        }
        GenerationStatus::Failed => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "generation_failed",
                "the generation failed and has no audio",
            ));
        }
    }
    let format = AudioFormat::parse(&g.format).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "generation {} has format {}",
            g.id,
            g.format
        ))
    })?;
    let key = g.storage_key.as_deref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "completed generation {} has no storage key",
            g.id
        ))
    })?;
    Ok((object_store::path::Path::from(key), format))
}
