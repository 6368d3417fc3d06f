//! Cloning a voice onto Kokoro, as a job of the workers
//! (docs/architecture.md, "Cloning"; the search is [`crate::speaker::clone`]).
//!
//! A clone is a `voice_clones` row beside its `processing` voice
//! (`shared::models::voice_clone`). It reaches a worker two ways: a
//! `clone-voice.v1` job (the fast path) or this worker's scan
//! ([`scan_once`]), which takes clones no job reached (a lost message, a
//! broker that was down) and clones whose worker died (an expired claim).
//! Either way the worker **claims** the row first, so one worker searches
//! a voice at a time; a clone is claimed at most `cloning.max_attempts`
//! times before it fails.
//!
//! The order of effects: claim → embed the samples → search → finish
//! (the voice `ready` with its recipe and `similarity`, or `failed`, and
//! the row finished, in one transaction) → delete the samples → publish
//! `voice.ready` / `voice.failed` → delete the row. A crash before the
//! finish leaves the claim to expire and the clone is searched again; a
//! crash after it leaves a finished row, whose event the scan publishes
//! (its id derives from the voice, so a repeat is deduplicated).
//!
//! One clone at a time per worker: the search keeps the worker's Kokoro
//! engines busy and holds the speaker encoder.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use object_store::ObjectStoreExt;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use shared::ids::{MessageId, WorkspaceId};
use shared::messages::{Event, EventMessage, EventType, VoiceFailedData, VoiceReadyData};
use shared::models::voice_clone::{VoiceClone, attempts_exhausted};
use shared::settings::CloningSettings;
use shared::voices::cloned::ClonedVoice;
use shared::voices::{EngineVoice, KokoroPack, kokoro};

use crate::speaker::clone::{Budget, CloneError, Searcher};
use crate::speaker::{Embedding, EncoderError, SpeakerEncoder};
use crate::state::State;

/// Clones a scan takes at most per pass (one after another).
const BATCH: i64 = 20;

/// The speaker encoder and, per phonemiser (`en-us`, `en-gb`), every
/// English pack's embedding on the probe words (the same for every
/// speaker: computed once per worker).
pub struct Cloner {
    inner: Mutex<Inner>,
    pub settings: CloningSettings,
    /// The English packs installed.
    packs: Vec<String>,
}

struct Inner {
    encoder: SpeakerEncoder,
    packs: HashMap<&'static str, Vec<(String, Embedding)>>,
}

impl Cloner {
    /// Loads the encoder (`cloning.encoder`) on `onnxruntime`; the
    /// candidate packs are the English ones in `kokoro_dir/voices`.
    pub fn load(
        onnxruntime: &std::path::Path,
        kokoro_dir: &std::path::Path,
        settings: &CloningSettings,
    ) -> Result<Self, EncoderError> {
        let encoder = SpeakerEncoder::load(onnxruntime, &settings.encoder, 1)?;
        let packs = kokoro::PACKS
            .iter()
            .map(|(name, _, _)| *name)
            .filter(|p| p.starts_with('a') || p.starts_with('b'))
            .filter(|p| kokoro_dir.join(format!("voices/{p}.bin")).is_file())
            .map(str::to_owned)
            .collect();
        Ok(Self {
            inner: Mutex::new(Inner {
                encoder,
                packs: HashMap::new(),
            }),
            settings: settings.clone(),
            packs,
        })
    }
}

/// A clone that cannot succeed: the voice fails with this.
#[derive(Debug)]
struct Permanent {
    code: &'static str,
    message: String,
}

enum Failure {
    Permanent(Permanent),
    Transient(anyhow::Error),
}

impl From<CloneError> for Failure {
    fn from(e: CloneError) -> Self {
        match e {
            CloneError::Encoder(EncoderError::TooShort { .. }) => Failure::Permanent(Permanent {
                code: "samples_too_short",
                message: e.to_string(),
            }),
            CloneError::NoPacks => Failure::Permanent(Permanent {
                code: "clone_failed",
                message: "no Kokoro voice packs are installed to clone onto".to_owned(),
            }),
            other => Failure::Transient(anyhow::Error::new(other)),
        }
    }
}

/// What a search found, stored in the voice's params.
struct Cloned {
    voice: EngineVoice,
    similarity: f32,
    nearest: (String, f32),
    renders: usize,
    seconds: f64,
}

/// Claims and clones `voice_id` if it is unfinished and unclaimed (else
/// does nothing), then announces it. `Err` only for what a later scan
/// should retry (the claim is given back).
pub async fn run(ctx: &State, voice_id: &str) -> anyhow::Result<()> {
    let lease = i64::try_from(ctx.cloner.settings.lease_ms).unwrap_or(i64::MAX);
    let id = voice_id.to_owned();
    let Some(claimed) = ctx
        .db
        .run(move |c| VoiceClone::claim(c, &id, lease).map_err(anyhow::Error::from))
        .await?
    else {
        tracing::info!(
            voice_id,
            "clone finished, gone or claimed by another worker"
        );
        return Ok(());
    };
    let (voice, job) = (claimed.voice, claimed.job);
    let outcome = if attempts_exhausted(job.attempts, ctx.cloner.settings.max_attempts) {
        Err(Failure::Permanent(Permanent {
            code: "clone_failed",
            message: format!(
                "the voice could not be cloned in {} attempts",
                ctx.cloner.settings.max_attempts
            ),
        }))
    } else {
        // The claim is renewed while the search runs: a clone slowed down
        // by a busy machine is not taken over by another worker.
        let renewing = renew_until_done(ctx, voice_id, lease);
        tokio::select! {
            outcome = clone(ctx, &voice, &job) => outcome,
            never = renewing => match never {},
        }
    };
    let mut params = voice.params.clone();
    let status = match outcome {
        Ok(found) => {
            params["engine"] = serde_json::json!(found.voice);
            params["clone"] = serde_json::json!({
                "engine": "kokoro",
                "similarity": found.similarity,
                "nearest": {
                    "voiceId": kokoro::voice_id(&found.nearest.0),
                    "similarity": found.nearest.1,
                },
                "renders": found.renders,
                "seconds": (found.seconds * 10.0).round() / 10.0,
            });
            tracing::info!(
                voice_id,
                similarity = found.similarity,
                nearest = found.nearest.1,
                renders = found.renders,
                "voice cloned onto Kokoro"
            );
            "ready"
        }
        Err(Failure::Permanent(p)) => {
            tracing::info!(voice_id, code = p.code, message = p.message, "clone failed");
            params["clone"] = serde_json::json!({
                "engine": "kokoro",
                "error": { "code": p.code, "message": p.message },
            });
            "failed"
        }
        Err(Failure::Transient(e)) => {
            let id = voice_id.to_owned();
            let released = ctx
                .db
                .run(move |c| VoiceClone::release(c, &id).map_err(anyhow::Error::from))
                .await;
            if let Err(r) = released {
                tracing::warn!(
                    error = format!("{r:#}"),
                    "clone claim not released; it expires"
                );
            }
            return Err(e.context("the clone will be retried"));
        }
    };
    let id = voice_id.to_owned();
    let finished = ctx
        .db
        .run(move |c| VoiceClone::finish(c, &id, status, &params).map_err(anyhow::Error::from))
        .await?;
    if !finished {
        tracing::info!(voice_id, "voice deleted or finished meanwhile");
    }
    settle(ctx, &job).await;
    Ok(())
}

/// Renews the claim on `voice_id` every third of `lease_ms`; never ends
/// (it is dropped when the search does).
async fn renew_until_done(ctx: &State, voice_id: &str, lease_ms: i64) -> Infallible {
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
    loop {
        tokio::time::sleep(every).await;
        let id = voice_id.to_owned();
        match ctx
            .db
            .run(move |c| VoiceClone::renew(c, &id, lease_ms).map_err(anyhow::Error::from))
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(voice_id, "clone finished or deleted meanwhile"),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    voice_id,
                    "clone claim not renewed"
                )
            }
        }
    }
}

/// Deletes a finished clone's samples, publishes its voice's event and
/// forgets the row; what fails is left for the next scan.
async fn settle(ctx: &State, job: &VoiceClone) {
    VoiceClone::delete_samples(ctx.store.as_ref(), &job.samples_key, job.samples).await;
    let id = job.voice_id.clone();
    let voice = ctx
        .db
        .run(move |c| ClonedVoice::find(c, &id).map_err(anyhow::Error::from))
        .await;
    match voice {
        Ok(Some(voice)) => {
            if let Err(e) = announce(ctx, &voice).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    voice_id = job.voice_id,
                    "voice event not published; the scan retries"
                );
                return;
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "voice not read; the scan retries");
            return;
        }
    }
    let id = job.voice_id.clone();
    if let Err(e) = ctx
        .db
        .run(move |c| VoiceClone::forget(c, &id).map_err(anyhow::Error::from))
        .await
    {
        tracing::warn!(
            error = format!("{e:#}"),
            "clone row not deleted; the scan retries"
        );
    }
}

/// The search itself: the samples' embedding, the English packs'
/// (once per worker), the search within the budget, and the chosen
/// blend's similarity on words neither rendered.
async fn clone(ctx: &State, voice: &ClonedVoice, job: &VoiceClone) -> Result<Cloned, Failure> {
    let samples = read_samples(ctx, job).await?;
    let espeak: &'static str = if voice.language.eq_ignore_ascii_case("en-GB") {
        "en-gb"
    } else {
        "en-us"
    };
    let mut guard = ctx.cloner.inner.lock().await;
    let inner = &mut *guard;
    let target = embed_samples(&mut inner.encoder, &samples)?;
    let names: Vec<&str> = ctx.cloner.packs.iter().map(String::as_str).collect();
    let mut searcher = Searcher::new(
        &ctx.kokoro,
        &mut inner.encoder,
        espeak,
        ctx.voices_dir.clone(),
    );
    if !inner.packs.contains_key(espeak) {
        let embedded = searcher.pack_embeddings(&names).await?;
        inner.packs.insert(espeak, embedded);
    }
    let packs = inner.packs.get(espeak).cloned().unwrap_or_default();
    let budget = Budget {
        renders: ctx.cloner.settings.max_renders,
        seconds: ctx.cloner.settings.max_seconds as f64,
    };
    let seed = voice
        .id
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    let found = searcher.search(&target, &packs, budget, seed).await?;
    let similarity = searcher.similarity(&found.packs, &target).await?;
    let nearest_packs = [KokoroPack {
        name: found.nearest.0.clone(),
        weight: 1.0,
    }];
    let nearest = searcher.similarity(&nearest_packs, &target).await?;
    Ok(Cloned {
        voice: EngineVoice::kokoro(espeak, found.packs),
        similarity,
        nearest: (found.nearest.0, nearest),
        renders: found.renders + 2,
        seconds: found.seconds,
    })
}

/// Each sample, mono 16-bit, and its rate.
async fn read_samples(ctx: &State, job: &VoiceClone) -> Result<Vec<(Vec<i16>, u32)>, Failure> {
    let mut out = Vec::with_capacity(job.samples.max(0) as usize);
    for i in 0..job.samples {
        let key = object_store::path::Path::from(VoiceClone::sample_key(&job.samples_key, i));
        let bytes = match ctx.store.get(&key).await {
            Ok(got) => got.bytes().await.map_err(|e| {
                Failure::Transient(anyhow::Error::new(e).context("Failed to read a sample"))
            })?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Failure::Permanent(Permanent {
                    code: "clone_failed",
                    message: "the voice's samples are gone; send them again".to_owned(),
                }));
            }
            Err(e) => {
                return Err(Failure::Transient(
                    anyhow::Error::new(e).context("Failed to read a sample"),
                ));
            }
        };
        out.push(mono(i, &bytes)?);
    }
    Ok(out)
}

/// A WAV sample mixed to mono 16-bit.
fn mono(index: i32, bytes: &[u8]) -> Result<(Vec<i16>, u32), Failure> {
    let invalid = |e: hound::Error| {
        Failure::Permanent(Permanent {
            code: "invalid_sample",
            message: format!("sample {index} is not a WAV file ({e})"),
        })
    };
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(invalid)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let values: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(invalid)?
        }
    };
    let samples = values
        .chunks(channels)
        .map(|frame| {
            let m = frame.iter().sum::<f32>() / frame.len() as f32;
            (m.clamp(-1.0, 1.0) * 32767.0) as i16
        })
        .collect();
    Ok((samples, spec.sample_rate))
}

/// The speaker's embedding: the mean of the samples' embeddings, each
/// weighted by its length, normalised.
fn embed_samples(
    encoder: &mut SpeakerEncoder,
    samples: &[(Vec<i16>, u32)],
) -> Result<Embedding, Failure> {
    let mut sum = [0f64; crate::speaker::EMBEDDING_DIM];
    let mut used = 0;
    for (audio, rate) in samples {
        let e = match encoder.embed(audio, *rate) {
            Ok(e) => e,
            // A short sample among others adds nothing; alone it fails below.
            Err(EncoderError::TooShort { .. }) => continue,
            Err(e) => return Err(CloneError::from(e).into()),
        };
        let seconds = audio.len() as f64 / f64::from((*rate).max(1));
        for (s, v) in sum.iter_mut().zip(e.0) {
            *s += seconds * f64::from(v);
        }
        used += 1;
    }
    let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
    if used == 0 || norm == 0.0 {
        return Err(Failure::Permanent(Permanent {
            code: "samples_too_short",
            message: "the samples hold too little speech for a speaker embedding".to_owned(),
        }));
    }
    let mut out = [0f32; crate::speaker::EMBEDDING_DIM];
    for (o, s) in out.iter_mut().zip(sum) {
        *o = (s / norm) as f32;
    }
    Ok(Embedding(out))
}

/// A speaker's embedding from their WAV samples, as a clone job computes
/// it (for the clone benchmark).
pub fn speaker_embedding(
    encoder: &mut SpeakerEncoder,
    wavs: &[Vec<u8>],
) -> anyhow::Result<Embedding> {
    let why = |f: Failure| match f {
        Failure::Permanent(p) => anyhow::anyhow!("{}: {}", p.code, p.message),
        Failure::Transient(e) => e,
    };
    let samples = wavs
        .iter()
        .zip(0..)
        .map(|(w, i)| mono(i, w))
        .collect::<Result<Vec<_>, _>>()
        .map_err(why)?;
    embed_samples(encoder, &samples).map_err(why)
}

/// Namespace of voice event ids (fixed forever: ids depend on it).
const VOICE_EVENT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b1c_2f0e_9a4d_4c8b_b2e1_5d7a_3c90_41f7);

/// The `voice.ready` / `voice.failed` event of a finished clone; its id
/// derives from the voice, so a repeat is deduplicated downstream.
pub fn voice_event(voice: &ClonedVoice) -> Option<Event> {
    let clone = voice.params.get("clone");
    let kind = match voice.status.as_str() {
        "ready" => EventType::VoiceReady,
        "failed" => EventType::VoiceFailed,
        _ => return None,
    };
    let data = match kind {
        EventType::VoiceReady => serde_json::json!(VoiceReadyData {
            id: voice.id.clone(),
            name: voice.name.clone(),
            kind: "cloned".to_owned(),
            language: voice.language.clone(),
            status: "ready".to_owned(),
            engine: Some("kokoro".to_owned()),
            similarity: clone
                .and_then(|c| c.get("similarity"))
                .and_then(serde_json::Value::as_f64)
                .map(|s| s as f32),
        }),
        _ => serde_json::json!(VoiceFailedData {
            id: voice.id.clone(),
            name: voice.name.clone(),
            kind: "cloned".to_owned(),
            language: voice.language.clone(),
            status: "failed".to_owned(),
            error: clone
                .and_then(|c| c.get("error"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"code": "clone_failed", "message": "the voice could not be cloned"})),
        }),
    };
    Some(Event {
        id: MessageId(uuid::Uuid::new_v5(
            &VOICE_EVENT_NAMESPACE,
            format!("{}:{}", voice.id, kind.as_str()).as_bytes(),
        )),
        event: kind,
        workspace_id: WorkspaceId(voice.workspace_id),
        occurred_at: Utc::now(),
        data,
        audio_of: None,
        target_endpoint: None,
    })
}

async fn announce(ctx: &State, voice: &ClonedVoice) -> anyhow::Result<()> {
    let Some(event) = voice_event(voice) else {
        return Ok(());
    };
    let exchange = ctx.broker.topology().events_exchange();
    let message_id = event.id.to_string();
    ctx.publisher
        .publish(
            &exchange,
            event.event.as_str(),
            &message_id,
            &EventMessage::V1(event.clone()),
        )
        .await
        .map_err(|e| anyhow::Error::new(e).context("Failed to publish the voice event"))?;
    tracing::info!(
        event = event.event.as_str(),
        voice_id = voice.id,
        "voice announced"
    );
    Ok(())
}

/// One pass: settles finished clones whose event is unpublished, then
/// clones what no job reached (or whose worker died), oldest first.
/// Returns how many clones it took.
pub async fn scan_once(ctx: &State) -> anyhow::Result<usize> {
    let grace = chrono::Duration::milliseconds(
        i64::try_from(ctx.cloner.settings.scan_grace_ms).unwrap_or(i64::MAX),
    );
    let before = Utc::now() - grace;
    let finished = ctx
        .db
        .run(move |c| VoiceClone::unannounced(c, before, BATCH).map_err(anyhow::Error::from))
        .await?;
    for job in &finished {
        settle(ctx, job).await;
    }
    let due = ctx
        .db
        .run(move |c| VoiceClone::due(c, before, BATCH).map_err(anyhow::Error::from))
        .await?;
    for voice_id in &due {
        tracing::info!(
            voice_id,
            "clone found by the scan (no job reached it, or its worker died)"
        );
        run(ctx, voice_id).await?;
    }
    Ok(due.len())
}

/// Scans every `cloning.scan_interval_ms` until cancelled.
pub async fn scan(ctx: Arc<State>, cancel: CancellationToken) {
    let interval = Duration::from_millis(ctx.cloner.settings.scan_interval_ms);
    shared::tasks::every(interval, cancel, "clone scan", || scan_once(&ctx)).await;
}
