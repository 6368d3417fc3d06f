//! Long texts rendered in parallel by several workers
//! (docs/architecture.md, "Parts").
//!
//! A plain text of at least `worker.split_min_chars` characters is split
//! into parts: runs of whole chunks of about `worker.part_chars`
//! characters ([`split`], a pure function of the plan, so every worker
//! splits a generation alike). The worker holding the generation's lease
//! (the coordinator) creates the parts' rows, publishes one
//! `synthesize-parts.v1` message per part it will not start itself, and
//! renders parts too; any worker that takes such a message helps
//! ([`help`]). Each part is claimed under a lease of its own, rendered,
//! stored raw (samples and word marks, [`encode_part`]) and marked done.
//! Once every part is done the coordinator joins the pieces exactly as an
//! unsplit render would (the same chunks, the same fades, word marks
//! relative to their chunk), encodes and stores the file.
//!
//! Crashes: a helper that dies leaves its part's lease to expire, and the
//! coordinator (or another helper) renders that part again — no other.
//! A coordinator that dies leaves the generation's job unacked; its next
//! delivery keeps every part done so far. Messages the broker loses cost
//! nothing but speed: the coordinator renders every part nobody took.

use std::ops::Range;
use std::time::Duration;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use shared::ids::{GenerationId, WorkspaceId};
use shared::messages::JobMessage;
use shared::models::{Generation, GenerationPart, GenerationStatus};
use uuid::Uuid;

use crate::alignment::Piece;
use crate::engine::{EnginePool, WordMark};
use crate::render::{self, JobError, Plan};
use crate::state::State;

/// How often the coordinator looks at parts other workers render.
const POLL: Duration = Duration::from_millis(200);

/// When and how to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSettings {
    /// A text of fewer characters is rendered whole; 0: never split.
    pub min_chars: u64,
    /// Characters per part, about.
    pub part_chars: u64,
}

/// The parts of `plan` as ranges of its chunks, when it is split: a plain
/// text (SSML is one chunk) of at least `min_chars` characters, in runs of
/// whole chunks of at most `part_chars` characters (a chunk longer than
/// that is a part alone), at least two.
pub fn split(plan: &Plan, settings: SplitSettings) -> Option<Vec<Range<usize>>> {
    let chunk_chars: Vec<u64> = plan
        .chunks
        .iter()
        .map(|(request, _)| request.text.chars().count() as u64)
        .collect();
    split_chunks(&chunk_chars, plan.characters, settings)
}

/// [`split`] of chunks of these lengths, in a text of `characters`.
fn split_chunks(
    chunk_chars: &[u64],
    characters: u64,
    settings: SplitSettings,
) -> Option<Vec<Range<usize>>> {
    if settings.min_chars == 0 || characters < settings.min_chars || chunk_chars.len() < 2 {
        return None;
    }
    let mut parts: Vec<Range<usize>> = Vec::new();
    let (mut start, mut chars) = (0, 0u64);
    for (i, &n) in chunk_chars.iter().enumerate() {
        if i > start && chars + n > settings.part_chars {
            parts.push(start..i);
            (start, chars) = (i, 0);
        }
        chars += n;
    }
    parts.push(start..chunk_chars.len());
    (parts.len() >= 2).then_some(parts)
}

/// Where a part's raw audio is kept until the parts are joined.
pub fn part_key(workspace: WorkspaceId, generation: GenerationId, part: i32) -> Path {
    Path::from(format!("{workspace}/{generation}.part-{part}.pcm"))
}

const MAGIC: &[u8; 8] = b"vpPART1\n";

/// A part's pieces as stored: the magic, the rate, then per piece its
/// character start, word marks and samples (little-endian).
pub fn encode_part(rate: u32, pieces: &[Piece]) -> Vec<u8> {
    let samples: usize = pieces.iter().map(|p| p.samples.len()).sum();
    let mut out = Vec::with_capacity(16 + samples * 2 + pieces.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(pieces.len() as u32).to_le_bytes());
    for p in pieces {
        out.extend_from_slice(&(p.char_start as u64).to_le_bytes());
        out.extend_from_slice(&(p.words.len() as u32).to_le_bytes());
        for w in &p.words {
            out.extend_from_slice(&w.char_start.to_le_bytes());
            out.extend_from_slice(&w.char_len.to_le_bytes());
            out.extend_from_slice(&w.sample.to_le_bytes());
            out.extend_from_slice(&w.end.unwrap_or(u64::MAX).to_le_bytes());
        }
        out.extend_from_slice(&(p.samples.len() as u64).to_le_bytes());
        for s in &p.samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// The reader of [`encode_part`]; `None` for anything else (a truncated
/// or foreign object: the coordinator renders that part again).
pub fn decode_part(bytes: &[u8]) -> Option<(u32, Vec<Piece>)> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, rest) = self.0.split_first_chunk::<N>()?;
            self.0 = rest;
            Some(*head)
        }
        fn u32(&mut self) -> Option<u32> {
            self.take().map(u32::from_le_bytes)
        }
        fn u64(&mut self) -> Option<u64> {
            self.take().map(u64::from_le_bytes)
        }
    }
    let mut r = Reader(bytes);
    if &r.take::<8>()? != MAGIC {
        return None;
    }
    let rate = r.u32()?;
    let count = r.u32()? as usize;
    // Every piece takes at least 20 bytes: a count cannot promise more.
    let mut pieces = Vec::with_capacity(count.min(r.0.len() / 20));
    for _ in 0..count {
        let char_start = usize::try_from(r.u64()?).ok()?;
        let words = r.u32()? as usize;
        let mut marks = Vec::with_capacity(words.min(r.0.len() / 24));
        for _ in 0..words {
            let (char_start, char_len, sample, end) = (r.u32()?, r.u32()?, r.u64()?, r.u64()?);
            marks.push(WordMark {
                char_start,
                char_len,
                sample,
                end: (end != u64::MAX).then_some(end),
            });
        }
        let n = usize::try_from(r.u64()?).ok()?;
        let bytes = r.0.get(..n.checked_mul(2)?)?;
        r.0 = &r.0[n * 2..];
        let samples = crate::engine::protocol::le_bytes_to_samples(bytes);
        pieces.push(Piece {
            samples,
            words: marks,
            char_start,
        });
    }
    r.0.is_empty().then_some((rate, pieces))
}

/// Renders `generation` split into `parts` with the other workers'
/// help, as the holder of its lease: the engine's rate and every chunk's
/// piece, in order, as [`render::render_pieces`] gives them for the whole.
pub async fn coordinate(
    ctx: &State,
    generation: &Generation,
    plan: &Plan,
    pool: &EnginePool,
    parts: &[Range<usize>],
) -> Result<(u32, Vec<Piece>), JobError> {
    let id = generation.id;
    let count = i32::try_from(parts.len()).unwrap_or(i32::MAX);
    let states = db(ctx, move |c| {
        GenerationPart::ensure(c, id, count)?;
        GenerationPart::states(c, id)
    })
    .await?;
    let free = states.iter().filter(|s| !s.done && !s.held).count();
    ask_for_help(ctx, id, count, free.saturating_sub(1)).await;
    let helpers = claimers(pool, plan, parts);
    loop {
        render_until_done(ctx, generation, plan, pool, parts, helpers).await?;
        // A part done but whose audio is gone or unreadable is rendered
        // again, and only that part.
        match read_parts(ctx, generation, count).await? {
            Ok(read) => return Ok(read),
            Err(missing) => {
                tracing::warn!(
                    ?missing,
                    "parts done but their audio is gone; rendering them again"
                );
                db(ctx, move |c| {
                    missing
                        .iter()
                        .try_for_each(|&part| GenerationPart::reopen(c, id, part))
                })
                .await?;
            }
        }
    }
}

/// Claims and renders free parts, and waits for those other workers hold
/// (taking over any whose claim expires), until every part is done.
async fn render_until_done(
    ctx: &State,
    generation: &Generation,
    plan: &Plan,
    pool: &EnginePool,
    parts: &[Range<usize>],
    helpers: usize,
) -> Result<(), JobError> {
    let id = generation.id;
    loop {
        let results = futures_util::future::join_all(
            (0..helpers).map(|_| claim_and_render(ctx, generation, plan, pool, parts)),
        )
        .await;
        for result in results {
            result?;
        }
        let states = db(ctx, move |c| GenerationPart::states(c, id)).await?;
        if let Some(error) = states.iter().find_map(|s| s.error.as_ref()) {
            return Err(stored_error(error));
        }
        if states.len() == parts.len() && states.iter().all(|s| s.done) {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every part's pieces in order and the rate, or the parts whose stored
/// audio is missing or unreadable.
async fn read_parts(
    ctx: &State,
    generation: &Generation,
    count: i32,
) -> Result<Result<(u32, Vec<Piece>), Vec<i32>>, JobError> {
    let (ws, gid): (WorkspaceId, GenerationId) =
        (generation.workspace_id.into(), generation.id.into());
    let mut rate = None;
    let mut pieces = Vec::new();
    let mut missing = Vec::new();
    for part in 0..count {
        let Some((r, mut p)) = get(ctx, &part_key(ws, gid, part))
            .await?
            .and_then(|bytes| decode_part(&bytes))
        else {
            missing.push(part);
            continue;
        };
        if *rate.get_or_insert(r) != r {
            return Err(JobError::Transient(anyhow::anyhow!(
                "part {part} was rendered at {r} Hz, the others at {} Hz",
                rate.unwrap_or(r)
            )));
        }
        pieces.append(&mut p);
    }
    if !missing.is_empty() {
        return Ok(Err(missing));
    }
    Ok(Ok((rate.unwrap_or(render::ENGINE_RATE), pieces)))
}

/// How many parts one worker renders at once: enough to keep the engines
/// bulk work may use busy (a part's chunks render in parallel), no more,
/// so the rest stays free for other workers.
fn claimers(pool: &EnginePool, plan: &Plan, parts: &[Range<usize>]) -> usize {
    let per_part = plan.chunks.len().div_ceil(parts.len().max(1)).max(1);
    pool.bulk_size()
        .div_ceil(per_part)
        .clamp(1, parts.len().max(1))
}

/// Deletes the parts' audio once the joined file is stored (failures are
/// logged). The rows stay, a record of who rendered what and how often;
/// they go with the generation.
pub async fn clean_up(ctx: &State, generation: &Generation, parts: usize) {
    let (ws, gid): (WorkspaceId, GenerationId) =
        (generation.workspace_id.into(), generation.id.into());
    for part in 0..i32::try_from(parts).unwrap_or(i32::MAX) {
        if let Err(e) = ctx.store.delete(&part_key(ws, gid, part)).await {
            tracing::warn!(part, error = %e, "could not delete a part's audio");
        }
    }
}

/// Handles `synthesize-parts.v1`: renders free parts of the generation
/// until there are none. Every outcome is settled on the parts' rows (a
/// part that can never render fails there, one that failed for now is
/// given back), so the message is always acked.
pub async fn help(ctx: &State, generation_id: Uuid, parts: i32) {
    let generation = match db(ctx, move |c| Generation::find(c, generation_id)).await {
        Ok(Some(g)) if g.status() == GenerationStatus::Processing => g,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not load the generation; the coordinator renders its parts");
            return;
        }
    };
    let planned = render::resolve_voice(ctx, &generation)
        .await
        .and_then(|voice| render::plan(&generation, &voice, &ctx.voices_dir));
    let Ok(plan) = planned else {
        // The coordinator plans the same and fails the generation.
        return;
    };
    let Some(ranges) = split(&plan, ctx.split) else {
        tracing::warn!("this worker would not split the generation; leaving it to the coordinator");
        return;
    };
    if i32::try_from(ranges.len()).ok() != Some(parts) {
        tracing::warn!(
            parts,
            ours = ranges.len(),
            "this worker splits the generation differently; leaving it to the coordinator"
        );
        return;
    }
    let pool = render::pool_of(ctx, &plan);
    match claim_and_render(ctx, &generation, &plan, pool, &ranges).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(parts = n, "rendered parts of a long generation"),
        Err(e) => tracing::warn!(error = %e, "a part failed; it is left to the coordinator"),
    }
}

/// Claims and renders free parts one after another until none is free;
/// how many it rendered. A part that cannot render is failed on its row
/// (`Permanent`), one that failed for now is given back (`Transient`).
async fn claim_and_render(
    ctx: &State,
    generation: &Generation,
    plan: &Plan,
    pool: &EnginePool,
    parts: &[Range<usize>],
) -> Result<usize, JobError> {
    let id = generation.id;
    let (ws, gid): (WorkspaceId, GenerationId) = (generation.workspace_id.into(), GenerationId(id));
    let lease_ms = ctx.leases.lease_millis();
    let mut rendered = 0;
    loop {
        let claim = ctx.leases.claim_name();
        let c2 = claim.clone();
        let Some(part) = db(ctx, move |c| {
            GenerationPart::claim_next(c, id, &c2, lease_ms)
        })
        .await?
        else {
            return Ok(rendered);
        };
        let Some(range) = usize::try_from(part).ok().and_then(|p| parts.get(p)) else {
            return Err(JobError::Transient(anyhow::anyhow!(
                "part {part} is not one of the {} parts",
                parts.len()
            )));
        };
        let work = async {
            let (rate, pieces) = render::render_pieces(pool, plan, range.clone()).await?;
            let bytes = encode_part(rate, &pieces);
            ctx.store
                .put(&part_key(ws, gid, part), bytes.into())
                .await
                .map_err(|e| {
                    JobError::Transient(
                        anyhow::Error::new(e).context("Failed to store a part's audio"),
                    )
                })
        };
        let renew = || {
            let claim = claim.clone();
            ctx.db.run(move |c| {
                GenerationPart::renew(c, id, part, &claim, lease_ms).map_err(anyhow::Error::from)
            })
        };
        let outcome = ctx.leases.hold_while(renew, work).await;
        let claim = claim.clone();
        match outcome {
            // Taken over after our lease expired: that worker renders it.
            None => continue,
            Some(Ok(_)) => {
                db(ctx, move |c| GenerationPart::finish(c, id, part, &claim)).await?;
                rendered += 1;
            }
            Some(Err(JobError::Permanent { code, message })) => {
                let error = JobError::to_json(code, &message);
                db(ctx, move |c| {
                    GenerationPart::fail(c, id, part, &claim, &error)
                })
                .await?;
                return Err(JobError::Permanent { code, message });
            }
            Some(Err(e @ JobError::Transient(_))) => {
                let _ = db(ctx, move |c| GenerationPart::release(c, id, part, &claim)).await;
                return Err(e);
            }
        }
    }
}

/// Publishes `count` help messages for `generation` in `parts` parts
/// (failures are logged: the coordinator renders what nobody takes).
async fn ask_for_help(ctx: &State, generation: Uuid, parts: i32, count: usize) {
    let exchange = ctx.broker.topology().jobs_exchange();
    let message = JobMessage::SynthesizePartsV1 {
        generation_id: GenerationId(generation),
        parts,
    };
    for n in 0..count {
        let message_id = format!("parts-{generation}-{n}-{}", Uuid::new_v4().simple());
        if let Err(e) = ctx
            .publisher
            .publish(
                &exchange,
                shared::amqp::Lane::Bulk.routing_key(),
                &message_id,
                &message,
            )
            .await
        {
            tracing::warn!(error = %e, "could not ask other workers for help; rendering the parts here");
            return;
        }
    }
}

/// A part's failure as stored, back as the job's error.
fn stored_error(error: &serde_json::Value) -> JobError {
    let message = error
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("a part of the text could not be rendered")
        .to_owned();
    let code = match error.get("code").and_then(|c| c.as_str()) {
        Some("audio_too_long") => "audio_too_long",
        Some("invalid_text") => "invalid_text",
        Some("voice_unavailable") => "voice_unavailable",
        Some("no_audio") => "no_audio",
        Some("encoding_failed") => "encoding_failed",
        _ => "synthesis_failed",
    };
    JobError::Permanent { code, message }
}

/// A part's stored audio; `None` if there is none.
async fn get(ctx: &State, key: &Path) -> Result<Option<Vec<u8>>, JobError> {
    let read = async {
        match ctx.store.get(key).await {
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    };
    read.await.map_err(|e| {
        JobError::Transient(anyhow::Error::new(e).context("Failed to read a part's audio"))
    })
}

async fn db<T: Send + 'static>(
    ctx: &State,
    f: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, JobError> {
    ctx.db
        .run(move |c| f(c).map_err(anyhow::Error::from))
        .await
        .map_err(JobError::Transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_reads_back_as_it_was_written() {
        let pieces = vec![
            Piece {
                samples: vec![1, -2, i16::MAX, i16::MIN],
                words: vec![
                    WordMark {
                        char_start: 0,
                        char_len: 5,
                        sample: 0,
                        end: Some(3),
                    },
                    WordMark {
                        char_start: 6,
                        char_len: 2,
                        sample: 3,
                        end: None,
                    },
                ],
                char_start: 800,
            },
            Piece {
                samples: vec![],
                words: vec![],
                char_start: 1600,
            },
        ];
        let bytes = encode_part(24_000, &pieces);
        let (rate, back) = decode_part(&bytes).unwrap();
        assert_eq!(rate, 24_000);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].samples, pieces[0].samples);
        assert_eq!(back[0].words, pieces[0].words);
        assert_eq!(back[0].char_start, 800);
        assert_eq!(back[1].char_start, 1600);
        // Truncated, extended or foreign: refused, never a panic.
        for n in 0..bytes.len() {
            assert!(decode_part(&bytes[..n]).is_none(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_part(&longer).is_none());
        let mut huge = bytes[..16].to_vec();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_part(&huge).is_none());
    }

    #[test]
    fn parts_are_runs_of_whole_chunks() {
        let settings = SplitSettings {
            min_chars: 4_000,
            part_chars: 1_600,
        };
        let chunks = [800, 790, 800, 100, 1_700, 800, 5];
        let total = chunks.iter().sum();
        let parts = split_chunks(&chunks, total, settings).unwrap();
        assert_eq!(parts, [0..2, 2..4, 4..5, 5..7]);
        let never = SplitSettings {
            min_chars: 0,
            ..settings
        };
        assert!(split_chunks(&chunks, total, never).is_none());
        assert!(split_chunks(&chunks, 3_999, settings).is_none());
        assert!(split_chunks(&[5_000], 5_000, settings).is_none());
        let wide = SplitSettings {
            part_chars: 100_000,
            ..settings
        };
        assert!(
            split_chunks(&chunks, total, wide).is_none(),
            "one part is no split"
        );
    }
}
