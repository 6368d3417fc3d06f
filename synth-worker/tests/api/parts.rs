//! Long texts in parts (`synth_worker::parts`): a split render equals the
//! unsplit one in duration and words, two workers share one generation's parts, a part whose
//! worker died is rendered again and no other is, and a coordinator that
//! died keeps what was done.

use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;
use shared::alignment::{Alignment, alignment_key};
use shared::amqp::Outcome;
use shared::ids::{GenerationId, WorkspaceId};
use shared::models::{GenerationPart, PartState};
use shared::schema::generation_parts;
use shared::settings::Settings;
use synth_worker::parts::part_key;
use synth_worker::{State, handle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::*;

/// An espeak-ng preset: deterministic, so split and unsplit renders can
/// be compared sample for sample.
const ESPEAK_VOICE: &str = "voice_734bbd";

/// About 4,300 characters of varied sentences: six chunks.
fn long_text() -> String {
    testkit::long_prose(4_300)
}

/// A worker that splits texts of 1,000 characters or more into parts of
/// 800 (one chunk each), or never; with `deployment`, another worker of
/// that one (its database, broker topology and store).
async fn worker(
    split: bool,
    engines: usize,
    lease_ms: u64,
    deployment: Option<&Settings>,
) -> (Settings, State) {
    let deployment = deployment.cloned();
    let mut s = tokio::task::spawn_blocking(move || settings(engines))
        .await
        .unwrap();
    if let Some(other) = deployment {
        s.database = other.database;
        s.amqp = other.amqp;
        s.storage = other.storage;
    }
    s.worker.split_min_chars = if split { 1_000 } else { 0 };
    s.worker.part_chars = 800;
    s.worker.lease_ms = lease_ms;
    let ctx = State::build(&s).await.expect("worker context");
    (s, ctx)
}

async fn generation(ctx: &State, voice: &str, text: &str) -> (Uuid, Uuid) {
    let ws = insert_workspace(&ctx.db, 1000).await;
    let mut new = new_generation(ws, text);
    new.voice_id = voice.to_owned();
    (ws, insert_generation(&ctx.db, new).await.id)
}

/// The stored file and alignment of a completed generation.
fn stored(root: &std::path::Path, ws: Uuid, id: Uuid) -> (Vec<u8>, Alignment) {
    let (ws, id) = (WorkspaceId(ws), GenerationId(id));
    let audio = std::fs::read(root.join(format!("{ws}/{id}.wav"))).unwrap();
    let json = std::fs::read(root.join(alignment_key(ws, id).as_ref())).unwrap();
    (audio, serde_json::from_slice(&json).unwrap())
}

async fn parts(ctx: &State, id: Uuid) -> Vec<PartState> {
    ctx.db
        .run(move |c| GenerationPart::states(c, id).map_err(anyhow::Error::from))
        .await
        .unwrap()
}

async fn claimed_by(ctx: &State, id: Uuid) -> Vec<Option<String>> {
    ctx.db
        .run(move |c| {
            generation_parts::table
                .filter(generation_parts::generation_id.eq(id))
                .order(generation_parts::part)
                .select(generation_parts::claimed_by)
                .load(c)
                .map_err(anyhow::Error::from)
        })
        .await
        .unwrap()
}

fn no_part_files_left(root: &std::path::Path, ws: Uuid, id: Uuid, count: usize) {
    for part in 0..count as i32 {
        let key = part_key(WorkspaceId(ws), GenerationId(id), part);
        let path: PathBuf = root.join(key.as_ref());
        assert!(!path.exists(), "{} was left behind", path.display());
    }
}

/// Two renders of one text differ a little even unsplit: an espeak-ng
/// process's audio for a chunk depends slightly on what it rendered
/// before (measured: up to 0.03 % of the duration over 340 s of audio).
fn close(a: u64, b: u64, total: u64) -> bool {
    a.abs_diff(b) * 1_000 <= total
}

#[tokio::test]
async fn a_split_generation_equals_the_unsplit_one_in_duration_and_words() {
    let (whole_settings, whole) = worker(false, 2, 15_000, None).await;
    let (split_settings, split) = worker(true, 2, 15_000, None).await;
    let (whole_root, split_root) = (whole_settings.storage.root, split_settings.storage.root);
    let text = long_text();

    let (ws_a, a) = generation(&whole, ESPEAK_VOICE, &text).await;
    let (ws_b, b) = generation(&split, ESPEAK_VOICE, &text).await;
    assert_eq!(handle(&whole, job(a, false)).await, Outcome::Ack);
    assert_eq!(handle(&split, job(b, false)).await, Outcome::Ack);

    let (row_a, row_b) = (find(&whole.db, a).await, find(&split.db, b).await);
    assert_eq!(row_b.status, "completed", "{:?}", row_b.error);
    assert!(
        parts(&whole, a).await.is_empty(),
        "the unsplit render has parts"
    );
    let states = parts(&split, b).await;
    assert!(states.len() >= 5, "{} parts", states.len());
    assert!(states.iter().all(|s| s.done && s.attempts == 1));
    let (ms_a, ms_b) = (
        row_a.duration_ms.unwrap() as u64,
        row_b.duration_ms.unwrap() as u64,
    );
    assert!(close(ms_a, ms_b, ms_a), "{ms_a} ms whole, {ms_b} ms split");
    let (_, words_a) = stored(&whole_root, ws_a, a);
    let (_, words_b) = stored(&split_root, ws_b, b);
    assert_eq!(words_a.duration_ms, ms_a);
    assert_eq!(words_b.duration_ms, ms_b);
    assert_eq!(words_a.words.len(), words_b.words.len());
    for (x, y) in words_a.words.iter().zip(&words_b.words) {
        assert_eq!(
            (&x.word, x.char_start, x.char_end),
            (&y.word, y.char_start, y.char_end)
        );
        assert!(
            close(x.start_ms, y.start_ms, ms_a),
            "{x:?} whole, {y:?} split"
        );
        assert!(close(x.end_ms, y.end_ms, ms_a), "{x:?} whole, {y:?} split");
    }
    no_part_files_left(&split_root, ws_b, b, states.len());
}

#[tokio::test]
async fn two_workers_render_the_parts_of_one_generation() {
    let (deployment, a) = worker(true, 1, 15_000, None).await;
    let b = std::sync::Arc::new(worker(true, 1, 15_000, Some(&deployment)).await.1);
    let cancel = CancellationToken::new();
    let helping = tokio::spawn(synth_worker::consumer::run(
        b.clone(),
        2,
        Duration::from_secs(1),
        cancel.clone(),
    ));
    // The default voice is Piper: seconds per part, so both get some.
    let (_, id) = generation(&a, shared::voices::DEFAULT_VOICE_ID, &long_text()).await;

    assert_eq!(handle(&a, job(id, false)).await, Outcome::Ack);
    cancel.cancel();
    helping.await.unwrap();

    let row = find(&a.db, id).await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    let by = claimed_by(&a, id).await;
    let of = |worker: &str| {
        by.iter()
            .filter(|c| {
                c.as_deref()
                    .is_some_and(|c| c.starts_with(&format!("{worker}/")))
            })
            .count()
    };
    let (mine, helped) = (of(a.leases.worker()), of(b.leases.worker()));
    assert!(
        mine >= 1 && helped >= 1,
        "{mine} parts here, {helped} helped: {by:?}"
    );
    assert_eq!(mine + helped, by.len());
}

#[tokio::test]
async fn a_part_whose_worker_died_is_rendered_again_and_no_other_part() {
    let (settings, ctx) = worker(true, 2, 15_000, None).await;
    let root = settings.storage.root;
    let text = long_text();
    let (ws, id) = generation(&ctx, ESPEAK_VOICE, &text).await;
    // A worker claimed part 0 and died: its 2 s lease runs out unrenewed.
    let generation = find(&ctx.db, id).await;
    let voice = synth_worker::render::resolve_voice(&ctx, &generation)
        .await
        .unwrap();
    let plan = synth_worker::render::plan(&generation, &voice, &ctx.voices_dir).unwrap();
    let count = synth_worker::parts::split(&plan, ctx.split).unwrap().len() as i32;
    let claimed = ctx
        .db
        .run(move |c| {
            GenerationPart::ensure(c, id, count)?;
            GenerationPart::claim_next(c, id, "dead-worker/1", 2_000).map_err(anyhow::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(claimed, Some(0));

    assert_eq!(handle(&ctx, job(id, false)).await, Outcome::Ack);

    let row = find(&ctx.db, id).await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    let attempts: Vec<i32> = parts(&ctx, id).await.iter().map(|s| s.attempts).collect();
    let mut expected = vec![1; count as usize];
    expected[0] = 2;
    assert_eq!(attempts, expected);
    let by = claimed_by(&ctx, id).await;
    assert!(by[0].as_deref().unwrap().starts_with(ctx.leases.worker()));
    let (_, alignment) = stored(&root, ws, id);
    assert_eq!(alignment.words[0].word, "The");
    assert_eq!(alignment.duration_ms, row.duration_ms.unwrap() as u64);
    no_part_files_left(&root, ws, id, count as usize);
}

#[tokio::test]
async fn a_coordinator_that_died_leaves_its_finished_parts_to_the_next_delivery() {
    // Leases of 1.5 s: the dead coordinator's claims expire quickly.
    let (_, ctx) = worker(true, 1, 1_500, None).await;
    // Piper: seconds per part, so the first delivery dies half way.
    let (_, id) = generation(&ctx, shared::voices::DEFAULT_VOICE_ID, &long_text()).await;

    // The first delivery dies (its future is dropped) once two parts are done.
    let first = handle(&ctx, job(id, false));
    let two_done = async {
        eventually("two parts to be done", || async {
            (parts(&ctx, id).await.iter().filter(|s| s.done).count() >= 2).then_some(())
        })
        .await
    };
    tokio::select! {
        outcome = first => panic!("the first delivery finished: {outcome:?}"),
        () = two_done => {}
    }
    let done_before: Vec<i32> = parts(&ctx, id)
        .await
        .iter()
        .filter(|s| s.done)
        .map(|s| s.part)
        .collect();
    assert_eq!(find(&ctx.db, id).await.status, "processing");

    // Its job is delivered again once its lease on the generation expired.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(handle(&ctx, job(id, true)).await, Outcome::Ack);

    let row = find(&ctx.db, id).await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    let states = parts(&ctx, id).await;
    for part in done_before {
        assert_eq!(
            states[part as usize].attempts, 1,
            "part {part} was done before and rendered again"
        );
    }
    assert!(states.iter().all(|s| s.done));
}

#[tokio::test]
async fn parts_whose_audio_is_gone_are_rendered_again() {
    let (settings, ctx) = worker(true, 2, 15_000, None).await;
    let (ws, id) = generation(&ctx, ESPEAK_VOICE, &long_text()).await;
    assert_eq!(handle(&ctx, job(id, false)).await, Outcome::Ack);
    let count = parts(&ctx, id).await.len();
    // As if the coordinator died after deleting the parts' audio and before
    // completing the generation: every part done, none of its audio left.
    ctx.db
        .run(move |c| {
            diesel::sql_query(
                "UPDATE generations SET status = 'processing', completed_at = NULL, \
                 duration_ms = NULL, storage_key = NULL, lease_until = NULL WHERE id = $1",
            )
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(c)
            .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();

    assert_eq!(handle(&ctx, job(id, true)).await, Outcome::Ack);

    let row = find(&ctx.db, id).await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    let attempts: Vec<i32> = parts(&ctx, id).await.iter().map(|s| s.attempts).collect();
    assert_eq!(attempts, vec![2; count]);
    no_part_files_left(&settings.storage.root, ws, id, count);
}
