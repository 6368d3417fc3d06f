//! `/v1/voices`: the preset catalog and this workspace's cloned and designed
//! voices.
//!
//! - `GET /v1/voices` (`voices:read`): natural (neural) presets first, then
//!   the other presets, each in catalog order, then cloned voices oldest
//!   first; filters `language` (a tag or its primary language: `en`
//!   matches `en-GB`), `gender`, `type`, `engine` (`espeak-ng` | `piper` |
//!   `kokoro`, the voice object's `engine`), `natural` (`true` | `false`);
//!   `limit` and
//!   `cursor` as on every list (`crate::pagination`).
//! - `GET /v1/voices/{id}` (`voices:read`); a Kokoro pack name (`af_nova`)
//!   is an alias of its preset's id.
//! - `POST /v1/voices` (`voices:write`): multipart `name`, one or more WAV
//!   `samples` (≤ 10 MB each, ≤ 5 minutes in all), optional `language`,
//!   `gender`, `description`, `engine`. The samples are analysed at once
//!   (pitch median and range, speaking rate). Onto Kokoro (`engine`
//!   `kokoro`, the default for en-US and en-GB): the samples are stored,
//!   the voice is `processing` with a clone job (`shared::models::
//!   voice_clone`) and the answer is 202; a worker searches the blend of
//!   Kokoro packs nearest the speaker (`synth_worker::cloning`), then the
//!   voice is `ready` with its `similarity` (`voice.ready`) or `failed`
//!   (`voice.failed`), and the samples are deleted. Onto espeak-ng (the
//!   default for other languages): the measurements become espeak-ng
//!   parameters; the voice is `ready` in the 201 answer and `voice.ready`
//!   is published.
//! - `POST /v1/voices` (`voices:write`) with a JSON design
//!   (`crate::domain::voice_design`): a blend of up to 4 natural voices
//!   saved as a `designed` voice with its recipe; `ready` in the 201
//!   answer, `voice.ready` published.
//! - `DELETE /v1/voices/{id}` (`voices:write`): 204.
//!
//! Uploads never sit in memory whole: each sample is streamed to a temp
//! file (`gateway.upload_dir`) that is unlinked the moment it is created,
//! so it is gone when the request ends, however it ends, crash included,
//! and it is decoded from there a chunk at a time (`analysis::decode_from`).
//! An espeak-ng clone keeps only the parameters; a Kokoro clone's samples
//! are put in the object store one at a time for the worker, and deleted
//! once the voice is made (or deleted). At
//! most `gateway.max_concurrent_uploads` uploads are read at once per
//! gateway; one more is 503 `uploads_busy` with `Retry-After`, before its
//! body is read (a capacity of this replica, not a limit of the client);
//! a body must arrive within `gateway.upload_timeout_secs` (408
//! `upload_timeout`), so a trickling client cannot hold a place for long.
//!
//! What "cloned" means on espeak-ng, a formant synthesiser: the voice
//! follows the speaker's pitch (median), intonation range and speaking
//! rate; it does not copy timbre, accent or voice quality. On Kokoro it is
//! the blend of voice packs whose speech the speaker encoder finds nearest
//! the samples: near the speaker as far as the packs' blends reach
//! (docs/voices-and-audio.md, "Cloning onto Kokoro").
//!
//! Another workspace's voice is answered exactly like a missing one.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use shared::amqp::Lane;
use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{MessageId, WorkspaceId};
use shared::messages::{Event, EventMessage, EventType, JobMessage, VoiceReadyData};
use shared::models::VoiceClone;
use shared::voices::analysis::{self, MAX_SAMPLE_BYTES};
use shared::voices::cloned::{self, ClonedVoice};
use shared::voices::{self, EngineKind, Gender, Preset};

use crate::auth::Principal;
use crate::domain::voice_design::{self, DesignPart, DesignVoiceRequest};
use crate::pagination::{self, PageView};
use crate::state::State;

/// Samples of one request together, at most (5 minutes of 48 kHz stereo
/// 16-bit is ~58 MB).
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;
/// Sample files of one request at most (each is an open temp file).
const MAX_SAMPLE_FILES: usize = 20;
const MAX_TEXT_FIELD_BYTES: usize = 4096;

pub fn routes(r: &mut crate::routes::Routes) {
    r.get("/v1/voices", list)
        .post("/v1/voices", create)
        .get("/v1/voices/{id}", get)
        .delete("/v1/voices/{id}", delete);
}

/// A voice as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoiceView {
    #[schema(example = "voice_8f2a1c")]
    id: String,
    name: String,
    /// `preset`, `cloned` (from samples) or `designed` (from natural
    /// voices, `recipe`).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "preset")]
    kind: &'static str,
    /// BCP 47 language tag.
    #[schema(example = "en-US")]
    language: String,
    /// `female`, `male` or `neutral`.
    gender: Option<String>,
    description: Option<String>,
    /// `espeak-ng`, `piper` or `kokoro` (the last two neural).
    #[schema(value_type = String, example = "piper")]
    engine: EngineKind,
    /// Whether a neural engine renders it (Piper, Kokoro): a voice that
    /// sounds like a person; espeak-ng voices and cloned voices are not.
    natural: bool,
    /// The accent of a natural voice: `American`, `British`, `Spanish`,
    /// `French`, `Indian`, `Italian` or `Brazilian`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "British")]
    accent: Option<&'static str>,
    /// Whether the voice is a blend of natural voices (`recipe`): a
    /// designed preset of the catalog, or a designed voice of the workspace.
    designed: bool,
    /// Cloned and designed voices: `ready`; a clone onto Kokoro is
    /// `processing` until a worker has made it, then `ready` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    /// A voice cloned onto Kokoro, once ready: the speaker encoder's cosine
    /// between its speech and the samples (on words the search never
    /// rendered; 1 is the same voice).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.83)]
    similarity: Option<f64>,
    /// A clone that `failed`: why (`{"code", "message"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    error: Option<serde_json::Value>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shared::time::serialize_opt"
    )]
    created_at: Option<DateTime<Utc>>,
    /// What was measured of the samples (cloned voices).
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis: Option<serde_json::Value>,
    /// The natural voices a designed voice is made of and their weights
    /// (normalised), stored with it: it never changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<DesignPart>>)]
    recipe: Option<serde_json::Value>,
}

impl From<&Preset> for VoiceView {
    fn from(p: &Preset) -> Self {
        let natural = p.voice.engine().is_natural();
        // A preset of several packs is a designed one: its recipe by the
        // packs' preset ids.
        let recipe =
            voices::designed::row(&p.id).map(|d| serde_json::json!(voice_design::recipe_of(d)));
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            kind: "preset",
            language: p.language.to_owned(),
            gender: Some(p.gender.as_str().to_owned()),
            description: Some(p.description.clone()),
            engine: p.voice.engine(),
            natural,
            accent: natural
                .then(|| voices::designed::accent_of(p.language))
                .flatten(),
            designed: recipe.is_some(),
            status: None,
            similarity: None,
            error: None,
            created_at: None,
            analysis: None,
            recipe,
        }
    }
}

impl From<ClonedVoice> for VoiceView {
    fn from(v: ClonedVoice) -> Self {
        // Designed voices are Kokoro blends; cloned ones are Kokoro blends
        // found by a search, or espeak-ng parameters that follow the
        // speaker's pitch and rate.
        let clone = v.params.get("clone");
        let onto_kokoro = clone
            .and_then(|c| c.get("engine"))
            .is_some_and(|e| e == "kokoro");
        let engine = v.engine_voice().map_or(
            if onto_kokoro {
                EngineKind::Kokoro
            } else {
                EngineKind::Espeak
            },
            |e| e.engine(),
        );
        let designed = v.params.get("design").is_some();
        let recipe = match v.params.get("design") {
            Some(d) => d.get("from").cloned(),
            None => v.engine_voice().and_then(|e| e.kokoro).map(|k| {
                serde_json::json!(
                    k.packs
                        .iter()
                        .map(|p| serde_json::json!({
                            "voiceId": voices::kokoro::voice_id(&p.name),
                            "weight": p.weight,
                        }))
                        .collect::<Vec<_>>()
                )
            }),
        };
        let accent = engine
            .is_natural()
            .then(|| voices::designed::accent_of(&v.language))
            .flatten();
        Self {
            analysis: v.params.get("analysis").cloned(),
            kind: if designed { "designed" } else { "cloned" },
            similarity: clone
                .and_then(|c| c.get("similarity"))
                .and_then(serde_json::Value::as_f64),
            error: clone.and_then(|c| c.get("error")).cloned(),
            recipe,
            id: v.id,
            name: v.name,
            language: v.language,
            gender: v.gender,
            description: v.description,
            engine,
            natural: engine.is_natural(),
            accent,
            designed,
            status: Some(v.status),
            created_at: Some(v.created_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A language tag or its primary language (`en` matches `en-GB`).
    language: Option<String>,
    /// `female`, `male` or `neutral`.
    gender: Option<String>,
    /// `preset`, `cloned` or `designed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// `espeak-ng`, `piper` or `kokoro`.
    engine: Option<String>,
    /// `true`: only natural (neural) voices; `false`: only the others.
    natural: Option<bool>,
    /// A natural voice's accent (`american`, `british`, …; any case).
    accent: Option<String>,
    /// `true`: only designed voices (presets and the workspace's);
    /// `false`: only the others.
    designed: Option<bool>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

fn language_matches(filter: &str, language: &str) -> bool {
    language.eq_ignore_ascii_case(filter)
        || (language.len() > filter.len()
            && language.as_bytes()[filter.len()] == b'-'
            && language[..filter.len()].eq_ignore_ascii_case(filter))
}

#[utoipa::path(
    get,
    path = "/v1/voices",
    tag = "voices",
    operation_id = "listVoices",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of voices", body = PageView<VoiceView>),
        (status = 400, description = "Unknown gender, type, engine or accent, natural or designed not true or false, limit out of range, a cursor not of this listing", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["voices:read"]))
)]
async fn list(
    state: web::Data<State>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require("voices:read")?;
    let q = query.into_inner();
    let limit = pagination::valid_limit(q.limit)?;
    if let Some(g) = &q.gender
        && Gender::parse(g).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_gender",
            format!("gender {g:?} is not female, male or neutral"),
        )
        .with_param("gender"));
    }
    let engine = match q.engine.as_deref() {
        None => None,
        Some(e) => Some(EngineKind::parse(e).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_engine",
                format!(
                    "engine {} is not espeak-ng, piper or kokoro",
                    voices::resolve::shown(e)
                ),
            )
            .with_param("engine")
        })?),
    };
    if let Some(a) = &q.accent
        && !voices::designed::ACCENTS
            .iter()
            .any(|(_, accent)| accent.eq_ignore_ascii_case(a))
    {
        return Err(ApiError::bad_request(
            "invalid_accent",
            format!(
                "accent {} is not one of american, british, spanish, french, indian, italian, brazilian",
                voices::resolve::shown(a)
            ),
        )
        .with_param("accent"));
    }
    let (presets, cloned) = match q.kind.as_deref() {
        None => (true, true),
        Some("preset") => (true, false),
        Some("cloned" | "designed") => (false, true),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_type",
                format!("type {other:?} is not preset, cloned or designed"),
            )
            .with_param("type"));
        }
    };
    let mut all: Vec<VoiceView> = Vec::new();
    if presets {
        // Natural voices first: what a customer should hear first.
        let (natural, other): (Vec<&Preset>, Vec<&Preset>) = voices::presets()
            .iter()
            .partition(|p| p.voice.engine().is_natural());
        all.extend(natural.into_iter().chain(other).map(VoiceView::from));
    }
    if cloned {
        let ws = principal.workspace_id.0;
        let rows = state
            .db
            .run(move |c| ClonedVoice::list_in_workspace(c, ws).map_err(DbError::from))
            .await?;
        all.extend(rows.into_iter().map(VoiceView::from));
    }
    let matching: Vec<VoiceView> = all
        .into_iter()
        .filter(|v| {
            q.language
                .as_deref()
                .is_none_or(|l| language_matches(l, &v.language))
        })
        .filter(|v| {
            q.gender
                .as_deref()
                .is_none_or(|g| v.gender.as_deref() == Some(g))
        })
        .filter(|v| q.kind.as_deref().is_none_or(|k| v.kind == k))
        .filter(|v| engine.is_none_or(|e| v.engine == e))
        .filter(|v| q.natural.is_none_or(|n| v.natural == n))
        .filter(|v| {
            q.accent
                .as_deref()
                .is_none_or(|a| v.accent.is_some_and(|va| va.eq_ignore_ascii_case(a)))
        })
        .filter(|v| q.designed.is_none_or(|d| v.designed == d))
        .collect();
    let start = match &q.cursor {
        None => 0,
        Some(c) => {
            matching
                .iter()
                .position(|v| &v.id == c)
                .ok_or_else(pagination::bad_cursor)?
                + 1
        }
    };
    let rows: Vec<VoiceView> = matching
        .into_iter()
        .skip(start)
        .take(limit as usize + 1)
        .collect();
    Ok(HttpResponse::Ok().json(PageView::new(rows, limit, |v| v.id.clone(), |v| v)))
}

async fn find(state: &State, workspace: WorkspaceId, id: &str) -> Result<VoiceView, ApiError> {
    if let Some(p) = voices::lookup(id) {
        return Ok(p.into());
    }
    let id = id.to_owned();
    state
        .db
        .run(move |c| ClonedVoice::find_in_workspace(c, workspace.0, &id).map_err(DbError::from))
        .await?
        .map(VoiceView::from)
        .ok_or_else(|| ApiError::not_found("voice"))
}

#[utoipa::path(
    get,
    path = "/v1/voices/{id}",
    tag = "voices",
    operation_id = "getVoice",
    params(("id" = String, Path, description = "The voice", example = "voice_8f2a1c")),
    responses(
        (status = 200, description = "The voice", body = VoiceView),
        (status = 404, description = "No such voice (presets, and this workspace's cloned voices)", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["voices:read"]))
)]
async fn get(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("voices:read")?;
    Ok(HttpResponse::Ok().json(find(&state, principal.workspace_id, &path).await?))
}

/// Delete a cloned voice of this workspace.
#[utoipa::path(
    delete,
    path = "/v1/voices/{id}",
    tag = "voices",
    operation_id = "deleteVoice",
    params(("id" = String, Path, description = "The voice", example = "voice_8f2a1c")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such cloned voice in this workspace", body = ErrorEnvelope),
        (status = 422, description = "A preset voice (`preset_voice`)", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["voices:write"]))
)]
async fn delete(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("voices:write")?;
    if voices::lookup(&path).is_some() {
        return Err(ApiError::unprocessable(
            "preset_voice",
            "preset voices belong to the catalog and cannot be deleted",
        ));
    }
    let (ws, id) = (principal.workspace_id.0, path.into_inner());
    // A clone still being made: its samples go too (the worker making it
    // finds the voice gone and changes nothing).
    let (deleted, job) = state
        .db
        .run(move |c| delete_with_clone(c, ws, &id).map_err(DbError::from))
        .await?;
    if let Some(job) = job {
        VoiceClone::delete_samples(state.store.as_ref(), &job.samples_key, job.samples).await;
    }
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("voice"))
    }
}

/// Deletes a workspace's voice; whether it existed, and its clone job if
/// it was still being cloned.
fn delete_with_clone(
    c: &mut diesel::PgConnection,
    ws: uuid::Uuid,
    id: &str,
) -> diesel::QueryResult<(bool, Option<VoiceClone>)> {
    let job = match ClonedVoice::find_in_workspace(c, ws, id)? {
        Some(_) => VoiceClone::find(c, id)?,
        None => None,
    };
    Ok((ClonedVoice::delete_in_workspace(c, ws, id)?, job))
}

/// The multipart form of `POST /v1/voices`, as documented: the parts
/// `read_form` accepts, by name (a part of another name is a 400).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CloneVoiceForm {
    /// 1 to 100 characters.
    name: String,
    /// One or more WAV recordings of one speaker (≤ 10 MB each, ≤ 5 minutes in all).
    #[schema(value_type = Vec<crate::openapi::Binary>)]
    samples: Vec<Vec<u8>>,
    /// BCP 47 tag of the catalog (default `en-US`).
    language: Option<String>,
    /// `female`, `male` or `neutral`.
    gender: Option<String>,
    description: Option<String>,
    /// `kokoro` (English: `en-US`, `en-GB`; the default for them) or
    /// `espeak-ng` (the default for every other language).
    engine: Option<String>,
}

/// The multipart form as read; each sample is an unlinked temp file.
#[derive(Default)]
struct Form {
    name: Option<String>,
    language: Option<String>,
    gender: Option<String>,
    description: Option<String>,
    engine: Option<String>,
    samples: Vec<Spooled>,
}

/// A sample spooled to disk: the file (already unlinked) and its length.
struct Spooled {
    file: File,
    len: u64,
}

/// A new temp file in `dir`, unlinked at once: the open handle is all that
/// is left of it, and the kernel frees it when the handle is dropped.
fn spool_file(dir: &Path) -> std::io::Result<File> {
    let path = dir.join(format!(
        "voiceprod-upload-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Reads one `samples` part into a spool file, at most `MAX_SAMPLE_BYTES`
/// and `MAX_UPLOAD_BYTES` with what came before (`total`).
async fn spool_sample(
    dir: &Path,
    field: &mut actix_multipart::Field,
    index: usize,
    total: &mut usize,
) -> Result<Spooled, ApiError> {
    let dir = dir.to_owned();
    let file = web::block(move || spool_file(&dir))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::internal(
                anyhow::Error::new(e).context("Failed to create an upload spool file"),
            )
        })?;
    let mut file = tokio::fs::File::from_std(file);
    let mut len = 0usize;
    while let Some(chunk) = field.try_next().await.map_err(malformed)? {
        len += chunk.len();
        *total += chunk.len();
        if len > MAX_SAMPLE_BYTES {
            return Err(too_large(format!(
                "sample {index} is over the limit of {MAX_SAMPLE_BYTES} bytes"
            )));
        }
        if *total > MAX_UPLOAD_BYTES {
            return Err(too_large(format!(
                "the samples are over {MAX_UPLOAD_BYTES} bytes together"
            )));
        }
        file.write_all(&chunk).await.map_err(|e| {
            ApiError::internal(anyhow::Error::new(e).context("Failed to spool a sample"))
        })?;
    }
    file.flush().await.map_err(|e| {
        ApiError::internal(anyhow::Error::new(e).context("Failed to spool a sample"))
    })?;
    Ok(Spooled {
        file: file.into_std().await,
        len: len as u64,
    })
}

fn malformed(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::bad_request(
        "malformed_body",
        format!("the multipart body could not be read: {e}"),
    )
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "sample_too_large", message).with_param("samples")
}

async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    spool_dir: &Path,
) -> Result<Form, ApiError> {
    let is_multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            "send a cloned voice as multipart/form-data with name and samples, or a designed one as application/json",
        ));
    }
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    let mut form = Form::default();
    let mut total = 0usize;
    while let Some(mut field) = multipart.try_next().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "samples" {
            if form.samples.len() == MAX_SAMPLE_FILES {
                return Err(ApiError::unprocessable(
                    "too_many_samples",
                    format!("send at most {MAX_SAMPLE_FILES} sample files"),
                )
                .with_param("samples"));
            }
            let index = form.samples.len();
            form.samples
                .push(spool_sample(spool_dir, &mut field, index, &mut total).await?);
            continue;
        }
        let mut data = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(malformed)? {
            total += chunk.len();
            if data.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
                return Err(ApiError::bad_request(
                    "field_too_large",
                    format!("{name} is too long"),
                )
                .with_param(name));
            }
            if total > MAX_UPLOAD_BYTES {
                return Err(too_large(format!(
                    "the samples are over {MAX_UPLOAD_BYTES} bytes together"
                )));
            }
            data.extend_from_slice(&chunk);
        }
        let text = || {
            String::from_utf8(data.clone())
                .ok()
                .map(|s| s.trim().to_owned())
        };
        match name.as_str() {
            "name" => form.name = text(),
            "language" => form.language = text(),
            "gender" => form.gender = text(),
            "description" => form.description = text(),
            "engine" => form.engine = text(),
            other => {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!("unknown form field {other:?}"),
                )
                .with_param(other));
            }
        }
    }
    Ok(form)
}

/// Clone a voice from WAV samples, or design one from natural voices
/// (JSON). A clone onto Kokoro (English, the default for en-US and en-GB)
/// is made by the workers: 202 `processing`, then `voice.ready` (with its
/// `similarity`) or `voice.failed`. A clone onto espeak-ng (pitch,
/// intonation range and speaking rate) and a designed voice are `ready` in
/// the 201 answer and `voice.ready` is sent.
#[utoipa::path(
    post,
    path = "/v1/voices",
    tag = "voices",
    operation_id = "createVoice",
    request_body(content(
        (CloneVoiceForm = "multipart/form-data"),
        (DesignVoiceRequest = "application/json"),
    )),
    responses(
        (status = 201, description = "The designed voice, or the voice cloned onto espeak-ng, ready", body = VoiceView),
        (status = 202, description = "The voice cloned onto Kokoro, `processing`: a worker searches it (GET /v1/voices/{id}, `voice.ready` / `voice.failed`)", body = VoiceView),
        (status = 400, description = "A multipart or JSON body that cannot be read, an unknown or too long field", body = ErrorEnvelope),
        (status = 413, description = "A sample over 10 MB, or samples over 64 MB together", body = ErrorEnvelope),
        (status = 408, description = "The body did not arrive within `gateway.upload_timeout_secs` (`upload_timeout`)", body = ErrorEnvelope),
        (status = 415, description = "Not multipart/form-data", body = ErrorEnvelope),
        (status = 422, description = "Missing or too long name, unsupported language, unknown gender, no samples, more than 20 sample files (`too_many_samples`), samples that are not usable WAV or over 5 minutes, under 3 s of speech for Kokoro (`samples_too_short`), an engine not kokoro or espeak-ng (`invalid_engine`), kokoro with a language not en-US or en-GB (`unsupported_language`); a design without voices (`design_required`), with more than 4 (`too_many_voices`), a weight below 0 or none above 0 (`invalid_voice_weight`), an unknown voice, a voice that is not Kokoro's (`voice_not_blendable`), voices of two languages (`mixed_voice_languages`), a voice twice (`duplicate_voice`)", body = ErrorEnvelope),
        (status = 503, description = "The event queue is unavailable, or this gateway is reading as many uploads as `gateway.max_concurrent_uploads` allows (`uploads_busy`); nothing was created",
            body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("apiKey" = ["voices:write"]))
)]
async fn create(
    state: web::Data<State>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require("voices:write")?;
    if is_json(&req) {
        return create_designed(&state, &principal, payload).await;
    }
    // Before the body is read: this gateway reads so many uploads at once.
    let _upload = state.uploads.try_acquire().map_err(|_| {
        ApiError::unavailable(
            "uploads_busy",
            "this gateway is reading as many voice uploads as it takes at once; try again shortly",
            anyhow::anyhow!("max_concurrent_uploads reached"),
        )
    })?;
    let spool_dir = state
        .settings
        .gateway
        .upload_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let deadline = Duration::from_secs(state.settings.gateway.upload_timeout_secs);
    // A body that trickles in would hold its place forever: it has a deadline.
    let form = tokio::time::timeout(deadline, read_form(&req, payload, &spool_dir))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_timeout",
                format!(
                    "the upload was not received within {} s; nothing was created",
                    deadline.as_secs()
                ),
            )
        })??;
    if form
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500 || d.chars().any(char::is_control))
    {
        return Err(ApiError::unprocessable(
            "invalid_description",
            "description is at most 500 characters, without control characters",
        )
        .with_param("description"));
    }
    let name = form
        .name
        .filter(|n| !n.is_empty() && n.chars().count() <= 100 && !n.chars().any(char::is_control))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_name",
                "name is required, 1 to 100 characters, without control characters",
            )
            .with_param("name")
        })?;
    let requested = form.language.as_deref().unwrap_or("en-US");
    let (espeak_voice, language) = voices::espeak_voice_for(requested).ok_or_else(|| {
        ApiError::unprocessable(
            "unsupported_language",
            format!(
                "language {requested:?} is not one of the catalog's; GET /v1/voices lists them"
            ),
        )
        .with_param("language")
    })?;
    if let Some(g) = &form.gender
        && Gender::parse(g).is_none()
    {
        return Err(ApiError::unprocessable(
            "invalid_gender",
            format!("gender {g:?} is not female, male or neutral"),
        )
        .with_param("gender"));
    }
    if form.samples.is_empty() {
        return Err(ApiError::unprocessable(
            "samples_required",
            "send one or more WAV recordings as samples",
        )
        .with_param("samples"));
    }
    let onto = clone_engine(form.engine.as_deref(), language)?;
    if onto == EngineKind::Espeak {
        // Refuse before any work when the event cannot be announced: 503.
        state.ensure_broker().await?;
    }
    let samples = form.samples;
    let (measured, samples) = web::block(move || analyse_spooled(samples))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()).with_param("samples"))?;
    let kokoro = onto == EngineKind::Kokoro;
    let (status, params) = if kokoro {
        let params = serde_json::json!({ "analysis": measured, "clone": { "engine": "kokoro" } });
        ("processing", params)
    } else {
        let engine = analysis::engine_voice(&measured, espeak_voice);
        (
            "ready",
            serde_json::json!({ "engine": engine, "analysis": measured }),
        )
    };
    let row = ClonedVoice {
        id: cloned::new_id(),
        workspace_id: principal.workspace_id.0,
        name,
        language: language.to_owned(),
        gender: form.gender,
        description: form.description,
        status: status.to_owned(),
        params,
        created_at: Utc::now(),
    };
    if kokoro {
        return clone_onto_kokoro(&state, row, samples, &measured).await;
    }
    insert_and_announce(&state, row).await
}

/// Seconds of voiced speech a clone onto Kokoro needs at least: the
/// speaker encoder's embedding of less is mostly noise.
const MIN_KOKORO_SPEECH_SECONDS: f64 = 3.0;

/// The engine a clone is made for: `kokoro` (English only) or
/// `espeak-ng`; by default Kokoro for `en-US` and `en-GB`, espeak-ng
/// for the languages Kokoro lacks.
fn clone_engine(asked: Option<&str>, language: &str) -> Result<EngineKind, ApiError> {
    let english = language == "en-US" || language == "en-GB";
    match asked {
        None | Some("") => Ok(if english {
            EngineKind::Kokoro
        } else {
            EngineKind::Espeak
        }),
        Some("kokoro") if english => Ok(EngineKind::Kokoro),
        Some("kokoro") => Err(ApiError::unprocessable(
            "unsupported_language",
            format!(
                "a clone onto Kokoro speaks en-US or en-GB, not {language}; clone other languages with engine espeak-ng"
            ),
        )
        .with_param("language")),
        Some("espeak-ng") => Ok(EngineKind::Espeak),
        Some(other) => Err(ApiError::unprocessable(
            "invalid_engine",
            format!("engine {other:?} is not kokoro or espeak-ng"),
        )
        .with_param("engine")),
    }
}

/// Stores the samples, inserts the `processing` voice with its clone job
/// and publishes the job (a fast path: the workers' scan finds the job
/// should the message be lost); 202 with the voice.
async fn clone_onto_kokoro(
    state: &State,
    row: ClonedVoice,
    samples: Vec<Spooled>,
    measured: &analysis::Analysis,
) -> Result<HttpResponse, ApiError> {
    if measured.speech_seconds < MIN_KOKORO_SPEECH_SECONDS {
        return Err(ApiError::unprocessable(
            "samples_too_short",
            format!(
                "the samples hold {:.1} s of speech; cloning onto Kokoro needs at least {MIN_KOKORO_SPEECH_SECONDS} s (30 s or more clones better)",
                measured.speech_seconds
            ),
        )
        .with_param("samples"));
    }
    let prefix = VoiceClone::samples_prefix(&row.id);
    let count = i32::try_from(samples.len()).map_err(ApiError::internal)?;
    for (i, mut sample) in (0..count).zip(samples) {
        // One sample in memory at a time, read off the async threads.
        let bytes = web::block(move || read_spooled(&mut sample))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let key = object_store::path::Path::from(VoiceClone::sample_key(&prefix, i));
        state.store.put(&key, bytes.into()).await.map_err(|e| {
            ApiError::internal(anyhow::Error::new(e).context("Failed to store a sample"))
        })?;
    }
    let inserted = state
        .db
        .run(move |c| VoiceClone::insert_with_voice(c, &row, count).map_err(DbError::from))
        .await;
    let created = match inserted {
        Ok(created) => created,
        Err(e) => {
            VoiceClone::delete_samples(state.store.as_ref(), &prefix, count).await;
            return Err(e.into());
        }
    };
    let job = JobMessage::CloneVoiceV1 {
        voice_id: created.id.clone(),
    };
    let exchange = state.publisher.broker().topology().jobs_exchange();
    if let Err(e) = state
        .publisher
        .publish(&exchange, Lane::Bulk.routing_key(), &created.id, &job)
        .await
    {
        tracing::warn!(error = %e, voice_id = %created.id, "clone job not published; a worker's scan takes it");
    }
    Ok(HttpResponse::Accepted().json(VoiceView::from(created)))
}

/// A spooled sample's bytes (at most `MAX_SAMPLE_BYTES`).
fn read_spooled(sample: &mut Spooled) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    sample.file.rewind()?;
    let mut bytes = Vec::with_capacity(usize::try_from(sample.len).unwrap_or(0));
    (&sample.file).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A designed voice's body is small: at most this many bytes.
const MAX_DESIGN_BYTES: usize = 16 * 1024;

/// `POST /v1/voices` with a JSON design (`crate::domain::voice_design`).
async fn create_designed(
    state: &State,
    principal: &Principal,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = Vec::new();
    let read = async {
        while let Some(chunk) = payload.try_next().await.map_err(|e| {
            ApiError::bad_request("malformed_body", format!("the body could not be read: {e}"))
        })? {
            if body.len() + chunk.len() > MAX_DESIGN_BYTES {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("a designed voice's body is at most {MAX_DESIGN_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    let deadline = Duration::from_secs(state.settings.gateway.upload_timeout_secs);
    tokio::time::timeout(deadline, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "upload_timeout",
            format!("the body was not received within {} s", deadline.as_secs()),
        )
    })??;
    let request: DesignVoiceRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_body",
            format!("the JSON body is not a voice design: {e}"),
        )
    })?;
    // A described design skips the recipes this workspace already has.
    let mine: Vec<voices::EngineVoice> = if request.design.is_described() {
        let ws = principal.workspace_id.0;
        state
            .db
            .run(move |c| ClonedVoice::list_in_workspace(c, ws).map_err(DbError::from))
            .await?
            .iter()
            .filter_map(ClonedVoice::engine_voice)
            .collect()
    } else {
        Vec::new()
    };
    let designed = voice_design::design(request, |v| mine.contains(v))?;
    state.ensure_broker().await?;
    let row = ClonedVoice {
        id: cloned::new_id(),
        workspace_id: principal.workspace_id.0,
        name: designed.name,
        language: designed.language,
        gender: designed.gender,
        description: designed.description,
        status: "ready".to_owned(),
        params: serde_json::json!({
            "engine": designed.engine,
            "design": match &designed.preset {
                Some(preset) => serde_json::json!({ "from": designed.recipe, "preset": preset }),
                None => serde_json::json!({ "from": designed.recipe }),
            },
        }),
        created_at: Utc::now(),
    };
    insert_and_announce(state, row).await
}

/// Inserts a ready voice and announces it; without its event the voice is
/// taken back (503) and the client retries.
async fn insert_and_announce(state: &State, row: ClonedVoice) -> Result<HttpResponse, ApiError> {
    let created = state
        .db
        .run(move |c| ClonedVoice::insert(c, &row).map_err(DbError::from))
        .await?;
    if let Err(e) = announce_ready(state, &created).await {
        // Nothing half-done: without its event the voice is taken back and
        // the client retries. (Should even that fail, the voice stays usable
        // and only its event is missing; the log says so.)
        let (ws, id) = (created.workspace_id, created.id.clone());
        let undone = state
            .db
            .run(move |c| ClonedVoice::delete_in_workspace(c, ws, &id).map_err(DbError::from))
            .await;
        if let Err(undo) = undone {
            tracing::error!(error = %undo, voice_id = %created.id, "voice.ready not published and the voice not taken back");
        }
        return Err(ApiError::unavailable(
            "broker_unavailable",
            "the voice could not be announced; nothing was created, try again",
            e,
        ));
    }
    Ok(HttpResponse::Created().json(VoiceView::from(created)))
}

/// Checks the samples' total length from their headers, then decodes each
/// from its spool file a buffer at a time and measures the speaker; gives
/// the samples back (a clone onto Kokoro stores them).
fn analyse_spooled(
    mut samples: Vec<Spooled>,
) -> Result<(analysis::Analysis, Vec<Spooled>), analysis::SampleError> {
    let unreadable = |index: usize, e: std::io::Error| analysis::SampleError::NotWav {
        index,
        reason: e.to_string(),
    };
    let mut total = 0.0;
    for (i, s) in samples.iter_mut().enumerate() {
        if s.len == 0 {
            return Err(analysis::SampleError::Empty(i));
        }
        s.file.rewind().map_err(|e| unreadable(i, e))?;
        total += analysis::wav_seconds_from(i, BufReader::new(&mut s.file))?;
    }
    if total > analysis::MAX_TOTAL_SECONDS {
        return Err(analysis::SampleError::TooLong(total));
    }
    let mut decoded = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter_mut().enumerate() {
        s.file.rewind().map_err(|e| unreadable(i, e))?;
        decoded.push(analysis::decode_from(i, BufReader::new(&mut s.file))?);
    }
    Ok((analysis::analyse(&decoded)?, samples))
}

/// Publishes `voice.ready` and waits for the broker's confirm.
async fn announce_ready(
    state: &State,
    voice: &ClonedVoice,
) -> Result<(), shared::amqp::BrokerError> {
    let event = Event {
        id: MessageId::new(),
        event: EventType::VoiceReady,
        workspace_id: WorkspaceId(voice.workspace_id),
        occurred_at: Utc::now(),
        data: serde_json::json!(VoiceReadyData {
            id: voice.id.clone(),
            name: voice.name.clone(),
            kind: if voice.params.get("design").is_some() {
                "designed"
            } else {
                "cloned"
            }
            .to_owned(),
            language: voice.language.clone(),
            status: "ready".to_owned(),
            engine: voice.engine_voice().map(|e| e.engine().as_str().to_owned()),
            similarity: None,
        }),
        audio_of: None,
        target_endpoint: None,
    };
    let exchange = state.publisher.broker().topology().events_exchange();
    let message_id = event.id.to_string();
    state
        .publisher
        .publish(
            &exchange,
            EventType::VoiceReady.as_str(),
            &message_id,
            &EventMessage::V1(event),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::language_matches;

    #[test]
    fn a_language_filter_matches_the_tag_or_its_subtags() {
        assert!(language_matches("en", "en-GB"));
        assert!(language_matches("en-gb", "en-GB"));
        assert!(!language_matches("en", "eu"));
        assert!(!language_matches("e", "en-GB"));
        assert!(!language_matches("en-GB", "en"));
    }
}
