//! From a generation row to stored audio: resolve the voice (a preset, or
//! a cloned voice of the generation's workspace), validate what the engine
//! cannot (format and rate, text type, SSML), render the text's chunks on
//! the pool in parallel, join them, encode at the asked rate, and put the
//! audio at its `audio_key` and the word timestamps next to it.
//!
//! Every failure is classified once, here: [`JobError::Permanent`] (this
//! input can never succeed: fail the generation, refund) or
//! [`JobError::Transient`] (infrastructure: retry the job).

use std::path::Path;

use futures_util::StreamExt;
use futures_util::future::try_join_all;
use futures_util::stream::FuturesOrdered;
use object_store::ObjectStoreExt;
use shared::alignment::{Alignment, alignment_key};
use shared::credits;
use shared::formats::AudioFormat;
use shared::ids::GenerationId;
use shared::models::Generation;
use shared::storage::audio_key;
use shared::voices::{self, EngineVoice, cloned::ClonedVoice};

use crate::alignment::{Piece, fade_edges, join};
use crate::engine::piper::Piper;
use crate::engine::{
    EngineError, EnginePool, EngineRequest, KokoroRequest, PiperRequest, Priority, RATE_MAX,
    RATE_MIN, kokoro,
};
use crate::state::State;
use crate::stream::Streamer;
use crate::{encode, parts, text};

/// The rate libespeak-ng renders at (a Piper model says its own, Kokoro
/// renders at [`kokoro::SAMPLE_RATE`]).
pub const ENGINE_RATE: u32 = 22_050;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The generation can never succeed as asked; `code` is API-stable.
    #[error("{code}: {message}")]
    Permanent { code: &'static str, message: String },
    /// Something we depend on failed; the same job may succeed later.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl JobError {
    fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code,
            message: message.into(),
        }
    }

    /// The `error` object stored on the row and sent in `generation.failed`.
    pub fn to_json(code: &str, message: &str) -> serde_json::Value {
        serde_json::json!({ "code": code, "message": message })
    }
}

/// Audio that is safely in the object store.
#[derive(Debug, Clone)]
pub struct StoredAudio {
    pub storage_key: String,
    pub duration_ms: i64,
}

/// What to render and how to deliver it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One request per chunk of the text, with where the chunk starts.
    pub chunks: Vec<(EngineRequest, usize)>,
    pub text: String,
    pub format: AudioFormat,
    pub sample_rate: u32,
    /// Rendered by the neural (Piper) engine processes.
    pub neural: bool,
    /// Rendered by the Kokoro engine processes.
    pub kokoro: bool,
    /// The most audio this generation may produce
    /// ([`credits::max_audio_ms`] of its characters).
    pub max_audio_ms: u64,
    /// Characters charged for.
    pub characters: u64,
    /// The rate the engine renders at.
    pub engine_rate: u32,
    /// Whose chunks get a free engine first (the job's lane).
    pub priority: Priority,
}

impl Plan {
    /// The plan of a streamed render: its first chunk cut to the text's
    /// first sentence (one of at most [`text::FIRST_STREAM_CHARS`], else cut
    /// at a space within that many), so the first audio is ready after a
    /// sentence, not a whole chunk.
    pub fn streamed(mut self) -> Self {
        let Some((first, start)) = self.chunks.first().cloned() else {
            return self;
        };
        if first.ssml {
            return self;
        }
        let head_chars = text::first_stream_chars(&first.text);
        let total = first.text.chars().count();
        if head_chars == 0 || head_chars >= total {
            return self;
        }
        let head: String = first.text.chars().take(head_chars).collect();
        let rest: String = first.text.chars().skip(head_chars).collect();
        let rate = u64::from(self.engine_rate);
        let request = |text: String| {
            let max_ms = credits::max_audio_ms(credits::characters(&text));
            EngineRequest {
                text,
                max_samples: Some(max_ms * rate / 1000),
                ..first.clone()
            }
        };
        self.chunks.splice(
            0..1,
            [(request(head), start), (request(rest), start + head_chars)],
        );
        self
    }
}

/// Encoded audio and its word timestamps.
#[derive(Debug, Clone)]
pub struct Produced {
    pub bytes: Vec<u8>,
    pub alignment: Alignment,
    pub duration_ms: i64,
}

/// The voice of `generation`: a preset (or the Kokoro blend the gateway
/// stored, resolved again by the same `voices::resolve`), or a cloned
/// voice of its workspace.
pub async fn resolve_voice(ctx: &State, generation: &Generation) -> Result<EngineVoice, JobError> {
    match voices::resolve(&generation.voice_id) {
        Ok(Some(resolved)) => return Ok(resolved.voice),
        Ok(None) => {}
        // A blend whose voices this worker lacks, or a row not written by
        // the gateway's checks: it can never render.
        Err(e) => return Err(JobError::permanent(e.code(), e.to_string())),
    }
    let (ws, id) = (generation.workspace_id, generation.voice_id.clone());
    let cloned = ctx
        .db
        .run(move |c| ClonedVoice::find_in_workspace(c, ws, &id).map_err(anyhow::Error::from))
        .await
        .map_err(|e| JobError::Transient(e.context("Failed to load the cloned voice")))?;
    cloned
        .filter(|v| v.status == "ready")
        .and_then(|v| v.engine_voice())
        .ok_or_else(|| {
            JobError::permanent(
                "unknown_voice",
                format!("no voice with id {}", generation.voice_id),
            )
        })
}

/// What the engine should render for `generation` in `voice` (a Piper
/// voice's model is looked up in `voices_dir`).
pub fn plan(
    generation: &Generation,
    voice: &EngineVoice,
    voices_dir: &Path,
) -> Result<Plan, JobError> {
    let piper = match voice.piper.as_ref().filter(|_| voice.kokoro.is_none()) {
        None => None,
        Some(p) => {
            let model = voices_dir.join(format!("{}.onnx", p.model));
            let rate = Piper::sample_rate_of(&model).ok_or_else(|| {
                JobError::permanent(
                    "voice_unavailable",
                    format!(
                        "the model of voice {} is not installed on this worker",
                        generation.voice_id
                    ),
                )
            })?;
            Some((
                PiperRequest {
                    model,
                    speaker: p.speaker,
                    speed: usable_speed(generation.speed),
                },
                rate,
            ))
        }
    };
    // A Kokoro voice: its packs and the pace; the engine reads the packs
    // from its own `kokoro.dir`.
    let kokoro = voice.kokoro.as_ref().map(|k| KokoroRequest {
        packs: k.packs.clone(),
        speed: usable_speed(generation.speed),
    });
    let engine_rate = match (&kokoro, &piper) {
        (Some(_), _) => kokoro::SAMPLE_RATE,
        (None, Some((_, r))) => *r,
        (None, None) => ENGINE_RATE,
    };
    let format = AudioFormat::parse(&generation.format).ok_or_else(|| {
        JobError::permanent(
            "unsupported_format",
            format!("format {} is not available", generation.format),
        )
    })?;
    let sample_rate = match generation.sample_rate {
        None => format.default_sample_rate(engine_rate),
        Some(r) => u32::try_from(r)
            .ok()
            .filter(|&r| format.supports_sample_rate(r))
            .ok_or_else(|| {
                JobError::permanent(
                    "unsupported_sample_rate",
                    format!("{format} cannot be encoded at {r} Hz"),
                )
            })?,
    };
    let characters = credits::characters(&generation.text);
    let max_audio_ms = credits::max_audio_ms(characters);
    // The job is data from a queue: SSML is parsed and checked again, and
    // the engine gets its canonical form, never the text as sent.
    let (ssml, text) = match generation.text_type.as_str() {
        "text" => (false, generation.text.clone()),
        "ssml" => {
            let doc = shared::ssml::parse_within_ceiling(&generation.text, characters)
                .map_err(|r| JobError::permanent(r.code, r.message))?;
            (true, doc.to_canonical())
        }
        other => {
            return Err(JobError::permanent(
                "invalid_text_type",
                format!("unknown textType {other}"),
            ));
        }
    };
    let request = |text: String, max_ms: u64| EngineRequest {
        text,
        ssml,
        voice: voice.espeak_name(),
        rate: scaled_rate(voice.rate, generation.speed),
        pitch: voice.pitch,
        range: voice.range,
        piper: piper.as_ref().map(|(p, _)| p.clone()),
        kokoro: kokoro.clone(),
        max_samples: Some(max_ms * u64::from(engine_rate) / 1000),
    };
    // SSML cannot be cut between its tags: it is rendered whole. A chunk
    // of plain text may produce what its own characters allow.
    let chunks = if ssml {
        vec![(request(text.clone(), max_audio_ms), 0)]
    } else {
        text::chunks(&text, text::CHUNK_CHARS)
            .into_iter()
            .map(|c| {
                let max_ms = credits::max_audio_ms(credits::characters(&c.text));
                (request(c.text, max_ms), c.char_start)
            })
            .collect()
    };
    Ok(Plan {
        chunks,
        text,
        format,
        sample_rate,
        neural: piper.is_some(),
        kokoro: kokoro.is_some(),
        max_audio_ms,
        characters,
        engine_rate,
        priority: Priority::Bulk,
    })
}

/// A generation whose audio would exceed its ceiling: permanent, refunded.
fn too_long(audio_ms: u64, max_audio_ms: u64, characters: u64) -> JobError {
    JobError::permanent(
        "audio_too_long",
        format!(
            "the audio lasts over {:.1} s; a text of {characters} characters may produce at most {:.1} s",
            audio_ms as f64 / 1000.0,
            max_audio_ms as f64 / 1000.0
        ),
    )
}

/// `speed` as the gateway allows it (0.5–2.0); anything unusable is 1.0.
fn usable_speed(speed: f32) -> f32 {
    if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    }
}

/// The voice's words per minute times `speed`, within espeak-ng's range.
pub fn scaled_rate(base: u16, speed: f32) -> u16 {
    let speed = usable_speed(speed);
    (f32::from(base) * speed)
        .round()
        .clamp(f32::from(RATE_MIN), f32::from(RATE_MAX)) as u16
}

/// Renders every chunk (in parallel, as far as the pool has engines),
/// joins them and encodes the result.
pub async fn produce(engines: &EnginePool, plan: &Plan) -> Result<Produced, JobError> {
    let (rate, pieces) = render_pieces(engines, plan, 0..plan.chunks.len()).await?;
    assemble(plan, rate, pieces).await
}

/// Renders `plan`'s chunks in `range` (in parallel, as far as the pool has
/// engines, at the plan's priority): the engine's rate and one piece per
/// chunk, in order.
pub async fn render_pieces(
    engines: &EnginePool,
    plan: &Plan,
    range: std::ops::Range<usize>,
) -> Result<(u32, Vec<Piece>), JobError> {
    let chunks = plan.chunks.get(range).unwrap_or_default();
    let rendered = try_join_all(chunks.iter().map(|(request, char_start)| async move {
        engines
            .render_as(request, plan.priority)
            .await
            .map(|r| (r, *char_start))
    }))
    .await
    .map_err(engine_failed)?;
    let rate = rendered.first().map_or(ENGINE_RATE, |(r, _)| r.sample_rate);
    let pieces = rendered
        .into_iter()
        .map(|(r, char_start)| Piece {
            samples: r.samples,
            words: r.words,
            char_start,
        })
        .collect();
    Ok((rate, pieces))
}

/// Joins every chunk's piece (rendered at `rate`) and encodes the track.
pub async fn assemble(plan: &Plan, rate: u32, pieces: Vec<Piece>) -> Result<Produced, JobError> {
    // Each chunk kept to its own ceiling; the whole must keep to the
    // generation's (the floor of short chunks adds up).
    let total: usize = pieces.iter().map(|p| p.samples.len()).sum();
    let total_ms = encode::duration_ms(total, rate).max(0) as u64;
    if total_ms > plan.max_audio_ms {
        return Err(too_long(total_ms, plan.max_audio_ms, plan.characters));
    }
    let (track, alignment) = join(pieces, rate, &plan.text);
    if track.is_empty() {
        return Err(JobError::permanent(
            "no_audio",
            "the text contains nothing to speak",
        ));
    }
    let (format, to_rate) = (plan.format, plan.sample_rate);
    let duration_ms = encode::duration_ms(track.len(), rate);
    // Encoding is CPU work of up to seconds: keep it off the async threads.
    let bytes = tokio::task::spawn_blocking(move || encode::encode(format, &track, rate, to_rate))
        .await
        .map_err(|e| JobError::Transient(anyhow::Error::new(e).context("Encoder task failed")))?
        .map_err(|e| JobError::permanent("encoding_failed", e.to_string()))?;
    Ok(Produced {
        bytes,
        alignment,
        duration_ms,
    })
}

fn engine_failed(e: EngineError) -> JobError {
    match e {
        EngineError::Refused { code, message } => JobError::Permanent {
            code: refusal_code(&code),
            message,
        },
        other => JobError::Transient(anyhow::Error::new(other).context("Failed to render")),
    }
}

/// As [`produce`], and the audio goes to `streamer` as it is rendered:
/// the chunks render in parallel as there, and each is faded, encoded and
/// sent as soon as it and every chunk before it are done. The file is
/// every byte sent (WAV's sizes and MP3's tag filled in at the end); on an
/// error the stream says so and ends.
pub async fn produce_streamed(
    engines: &EnginePool,
    plan: &Plan,
    mut streamer: Streamer<'_>,
) -> Result<Produced, JobError> {
    match stream_chunks(engines, plan, &mut streamer).await {
        Ok((produced, tail)) => {
            streamer.finish(&tail).await;
            Ok(produced)
        }
        Err(e) => {
            let (code, message, retrying) = match &e {
                JobError::Permanent { code, message } => (*code, message.clone(), false),
                JobError::Transient(e) => ("synthesis_failed", format!("{e:#}"), true),
            };
            streamer.fail(code, &message, retrying).await;
            Err(e)
        }
    }
}

async fn stream_chunks(
    engines: &EnginePool,
    plan: &Plan,
    streamer: &mut Streamer<'_>,
) -> Result<(Produced, Vec<u8>), JobError> {
    let mut rendering: FuturesOrdered<_> = plan
        .chunks
        .iter()
        .map(|(request, char_start)| async move {
            engines
                .render_as(request, plan.priority)
                .await
                .map(|r| (r, *char_start))
        })
        .collect();
    let mut encoder: Option<encode::Stream> = None;
    let mut pieces = Vec::with_capacity(plan.chunks.len());
    let (mut rate, mut total) = (ENGINE_RATE, 0usize);
    while let Some(rendered) = rendering.next().await {
        let (r, char_start) = rendered.map_err(engine_failed)?;
        rate = r.sample_rate;
        total += r.samples.len();
        let total_ms = encode::duration_ms(total, rate).max(0) as u64;
        if total_ms > plan.max_audio_ms {
            return Err(too_long(total_ms, plan.max_audio_ms, plan.characters));
        }
        let mut faded = r.samples.clone();
        fade_edges(&mut faded, rate);
        let mut stream = match encoder.take() {
            Some(s) => s,
            None => encode::Stream::new(plan.format, rate, plan.sample_rate)
                .map_err(|e| JobError::permanent("encoding_failed", e.to_string()))?,
        };
        let (stream, bytes) = blocking(move || {
            let bytes = stream.push(&faded);
            (stream, bytes)
        })
        .await?;
        encoder = Some(stream);
        let bytes = bytes.map_err(|e| JobError::permanent("encoding_failed", e.to_string()))?;
        streamer.chunk(&bytes).await;
        pieces.push(Piece {
            samples: r.samples,
            words: r.words,
            char_start,
        });
    }
    let (track, alignment) = join(pieces, rate, &plan.text);
    let (Some(stream), false) = (encoder, track.is_empty()) else {
        return Err(JobError::permanent(
            "no_audio",
            "the text contains nothing to speak",
        ));
    };
    let (tail, bytes) = blocking(move || stream.finish())
        .await?
        .map_err(|e| JobError::permanent("encoding_failed", e.to_string()))?;
    let produced = Produced {
        bytes,
        alignment,
        duration_ms: encode::duration_ms(track.len(), rate),
    };
    Ok((produced, tail))
}

/// CPU work of up to seconds, off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Transient(anyhow::Error::new(e).context("Encoder task failed")))
}

/// Renders, encodes and stores the audio of a `processing` generation,
/// its chunks at `priority` on the engines; with `stream_to`, its audio
/// also goes there as it is rendered (`crate::stream`).
pub async fn render_and_store(
    ctx: &State,
    generation: &Generation,
    stream_to: Option<&str>,
    priority: Priority,
) -> Result<StoredAudio, JobError> {
    let streamer =
        |to: &str| Streamer::new(&ctx.publisher, GenerationId(generation.id), to.to_owned());
    let planned = resolve_voice(ctx, generation)
        .await
        .and_then(|voice| plan(generation, &voice, &ctx.voices_dir));
    let plan = match planned {
        Ok(plan) => Plan { priority, ..plan },
        Err(e) => {
            // A transient error before the render is said by the next attempt.
            if let (Some(to), JobError::Permanent { code, message }) = (stream_to, &e) {
                streamer(to).fail(code, message, false).await;
            }
            return Err(e);
        }
    };
    let pool = pool_of(ctx, &plan);
    // A streamed render stays whole: its order is its point.
    let parts = stream_to
        .is_none()
        .then(|| parts::split(&plan, ctx.split))
        .flatten();
    let produced = match (stream_to, &parts) {
        (Some(to), _) => produce_streamed(pool, &plan.clone().streamed(), streamer(to)).await?,
        (None, Some(parts)) => {
            let (rate, pieces) = parts::coordinate(ctx, generation, &plan, pool, parts).await?;
            assemble(&plan, rate, pieces).await?
        }
        (None, None) => produce(pool, &plan).await?,
    };
    let (ws, id) = (generation.workspace_id.into(), generation.id.into());
    let key = audio_key(ws, id, plan.format);
    let store_failed = |e: object_store::Error| {
        JobError::Transient(anyhow::Error::new(e).context("Failed to store the audio"))
    };
    // Both keys are pure functions of the generation, so a second render
    // of the same job overwrites them with equivalent files: harmless. The
    // alignment goes first, so completed audio always has it.
    let alignment = serde_json::to_vec(&produced.alignment)
        .map_err(|e| JobError::Transient(anyhow::Error::new(e)))?;
    ctx.store
        .put(&alignment_key(ws, id), alignment.into())
        .await
        .map_err(store_failed)?;
    ctx.store
        .put(&key, produced.bytes.into())
        .await
        .map_err(store_failed)?;
    if let Some(parts) = parts {
        parts::clean_up(ctx, generation, parts.len()).await;
    }
    Ok(StoredAudio {
        storage_key: key.to_string(),
        duration_ms: produced.duration_ms,
    })
}

/// The engines that render `plan`'s voice.
pub fn pool_of<'a>(ctx: &'a State, plan: &Plan) -> &'a EnginePool {
    if plan.kokoro {
        &ctx.kokoro
    } else if plan.neural {
        &ctx.neural
    } else {
        &ctx.engines
    }
}

/// Engine refusal codes as API-stable `&'static str`.
fn refusal_code(code: &str) -> &'static str {
    match code {
        "voice_unavailable" => "voice_unavailable",
        "invalid_text" => "invalid_text",
        "audio_too_long" => "audio_too_long",
        _ => "synthesis_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_scales_the_rate_within_espeak_range() {
        assert_eq!(scaled_rate(175, 1.0), 175);
        assert_eq!(scaled_rate(175, 2.0), 350);
        assert_eq!(scaled_rate(175, 0.25), RATE_MIN);
        assert_eq!(scaled_rate(300, 2.0), RATE_MAX);
        assert_eq!(scaled_rate(175, f32::NAN), 175);
    }
}
