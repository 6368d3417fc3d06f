//! The clone job (`synth_worker::cloning`) on a real worker context: real
//! PostgreSQL, RabbitMQ, object store, Kokoro engines and speaker encoder.
//!
//! - A real person (LibriVox, 24.7 s) is cloned by a `clone-voice.v1`
//!   job: the voice becomes `ready` with a recipe of Kokoro packs and a
//!   similarity above the nearest pack's, `voice.ready` carries it, the
//!   samples and the job row are gone, and a second copy of the job
//!   changes nothing; the claim, renewed, holds for the whole search.
//! - The scan finds a clone no job reached; a clone without its samples,
//!   and one past its attempts, fail with `voice.failed`.

use chrono::Utc;
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use shared::amqp::{Incoming, Outcome};
use shared::messages::JobMessage;
use shared::models::{NewWorkspace, VoiceClone, Workspace};
use shared::voices::cloned::{self, ClonedVoice};
use synth_worker::State;
use uuid::Uuid;

use crate::engine_program;

async fn worker() -> State {
    let s = tokio::task::spawn_blocking(|| {
        let mut s = testkit::test_settings().unwrap();
        s.worker.engines = 1;
        s.worker.engine_program = Some(engine_program());
        s.cloning.max_renders = 8;
        // Far shorter than a clone: only the renewal keeps the claim.
        s.cloning.lease_ms = 3_000;
        s
    })
    .await
    .unwrap();
    State::build(&s).await.unwrap()
}

/// A workspace and a `processing` voice with its clone job; `samples` are
/// put in the store first.
async fn processing_voice(ctx: &State, samples: &[Vec<u8>]) -> String {
    let id = cloned::new_id();
    let prefix = VoiceClone::samples_prefix(&id);
    for (i, s) in samples.iter().enumerate() {
        let key = object_store::path::Path::from(VoiceClone::sample_key(&prefix, i as i32));
        ctx.store.put(&key, s.clone().into()).await.unwrap();
    }
    let count = samples.len().max(1) as i32;
    let voice_id = id.clone();
    ctx.db
        .run(move |c| {
            let ws = Uuid::now_v7();
            Workspace::insert(
                c,
                &NewWorkspace {
                    id: ws,
                    name: &format!("ws-{}", ws.simple()),
                    plan: "scale",
                    credits_included: 1000,
                    period_start: Utc::now(),
                },
            )?;
            let row = ClonedVoice {
                id: voice_id,
                workspace_id: ws,
                name: "Reader".to_owned(),
                language: "en-US".to_owned(),
                gender: Some("male".to_owned()),
                description: None,
                status: "processing".to_owned(),
                params: json!({"clone": {"engine": "kokoro"}}),
                created_at: Utc::now(),
            };
            VoiceClone::insert_with_voice(c, &row, count).map_err(anyhow::Error::from)
        })
        .await
        .unwrap();
    id
}

async fn voice(ctx: &State, id: &str) -> ClonedVoice {
    let id = id.to_owned();
    ctx.db
        .run(move |c| ClonedVoice::find(c, &id).map_err(anyhow::Error::from))
        .await
        .unwrap()
        .expect("the voice")
}

async fn job_row(ctx: &State, id: &str) -> Option<VoiceClone> {
    let id = id.to_owned();
    ctx.db
        .run(move |c| VoiceClone::find(c, &id).map_err(anyhow::Error::from))
        .await
        .unwrap()
}

/// An exclusive queue on the events exchange bound to `voice.*`.
async fn voice_events(ctx: &State) -> (lapin::Channel, lapin::Consumer) {
    testkit::event_tap(&ctx.broker, "voice.*").await
}

async fn next_event(tap: &mut lapin::Consumer) -> (String, Value) {
    let d = tokio::time::timeout(testkit::DEADLINE, tap.next())
        .await
        .expect("no voice event before the deadline")
        .unwrap()
        .unwrap();
    let body: Value = serde_json::from_slice(&d.data).unwrap();
    (d.routing_key.to_string(), body)
}

fn clone_job(voice_id: &str) -> Incoming {
    Incoming {
        data: serde_json::to_vec(&JobMessage::CloneVoiceV1 {
            voice_id: voice_id.to_owned(),
        })
        .unwrap(),
        redelivered: false,
        message_id: Some(format!("clone-{voice_id}")),
        published_at: Some(Utc::now()),
    }
}

#[tokio::test]
async fn a_real_person_is_cloned_by_a_job_nearer_than_the_nearest_pack_and_announced_once() {
    let ctx = worker().await;
    let (_ch, mut tap) = voice_events(&ctx).await;
    let samples = testkit::librivox_samples();
    let id = processing_voice(&ctx, &samples).await;

    let started = std::time::Instant::now();
    // Twice the lease into the search, another worker cannot claim it.
    let takeover = async {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        let id = id.clone();
        ctx.db
            .run(move |c| VoiceClone::claim(c, &id, 3_000).map_err(anyhow::Error::from))
            .await
            .unwrap()
            .is_some()
    };
    let (outcome, taken_over) = tokio::join!(
        synth_worker::consumer::handle(&ctx, clone_job(&id)),
        takeover
    );
    assert!(matches!(outcome, Outcome::Ack));
    assert!(!taken_over, "the claim lapsed while the search ran");
    let seconds = started.elapsed().as_secs_f64();

    let made = voice(&ctx, &id).await;
    assert_eq!(made.status, "ready", "{}", made.params);
    let engine = made.engine_voice().unwrap();
    let packs = engine.kokoro.as_ref().unwrap().packs.clone();
    assert!((1..=8).contains(&packs.len()), "{packs:?}");
    let clone = &made.params["clone"];
    let similarity = clone["similarity"].as_f64().unwrap();
    let nearest = clone["nearest"]["similarity"].as_f64().unwrap();
    eprintln!(
        "LibriVox reader (24.7 s): clone {similarity:.3}, nearest pack {} {nearest:.3} \
         (margin {:+.3}); {} renders, {seconds:.0} s with the packs' own; {packs:?}",
        clone["nearest"]["voiceId"],
        similarity - nearest,
        clone["renders"]
    );
    assert!(
        similarity > nearest,
        "the clone ({similarity:.3}) is not nearer the speaker than the nearest pack ({nearest:.3})"
    );

    let (key, event) = next_event(&mut tap).await;
    assert_eq!(key, "voice.ready");
    let data = &event["data"];
    assert_eq!(
        (&data["id"], &data["status"], &data["engine"]),
        (&json!(id), &json!("ready"), &json!("kokoro")),
        "{event}"
    );
    assert!((data["similarity"].as_f64().unwrap() - similarity).abs() < 1e-6);
    assert!(job_row(&ctx, &id).await.is_none(), "the job row is gone");
    let first =
        object_store::path::Path::from(VoiceClone::sample_key(&VoiceClone::samples_prefix(&id), 0));
    assert!(
        matches!(
            ctx.store.get(&first).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "the samples are deleted once the voice is made"
    );

    // A second copy of the job changes nothing and announces nothing.
    let again = synth_worker::consumer::handle(&ctx, clone_job(&id)).await;
    assert!(matches!(again, Outcome::Ack));
    assert_eq!(voice(&ctx, &id).await.params, made.params);
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(2), tap.next())
            .await
            .is_err(),
        "a second voice event"
    );
    ctx.kokoro.shutdown().await;
}

#[tokio::test]
async fn the_scan_takes_clones_no_job_reached_and_fails_those_without_samples_or_attempts() {
    let ctx = worker().await;
    let (_ch, mut tap) = voice_events(&ctx).await;
    // No samples in the store: the clone cannot be made.
    let lost = processing_voice(&ctx, &[]).await;
    // Claimed as often as allowed already.
    let tired = processing_voice(&ctx, &[]).await;
    let max = ctx.cloner.settings.max_attempts;
    let (l, t) = (lost.clone(), tired.clone());
    ctx.db
        .run(move |c| {
            use diesel::prelude::*;
            use shared::schema::voice_clones::dsl::*;
            // Older than the scan's grace.
            diesel::update(voice_clones.filter(voice_id.eq_any([&l, &t])))
                .set(created_at.eq(Utc::now() - chrono::Duration::minutes(5)))
                .execute(c)?;
            diesel::update(voice_clones.find(&t))
                .set(attempts.eq(max))
                .execute(c)
                .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();

    let taken = synth_worker::cloning::scan_once(&ctx).await.unwrap();
    assert_eq!(taken, 2);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (key, event) = next_event(&mut tap).await;
        seen.push((
            key,
            event["data"]["id"].as_str().unwrap().to_owned(),
            event["data"]["error"]["code"].as_str().unwrap().to_owned(),
        ));
    }
    seen.sort();
    let mut want = vec![
        (
            "voice.failed".to_owned(),
            lost.clone(),
            "clone_failed".to_owned(),
        ),
        (
            "voice.failed".to_owned(),
            tired.clone(),
            "clone_failed".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(seen, want);
    for id in [&lost, &tired] {
        let v = voice(&ctx, id).await;
        assert_eq!(v.status, "failed");
        assert_eq!(v.params["clone"]["error"]["code"], "clone_failed");
        assert!(job_row(&ctx, id).await.is_none());
    }
    let message = voice(&ctx, &tired).await.params["clone"]["error"]["message"].clone();
    assert!(message.as_str().unwrap().contains("attempts"), "{message}");
    // Nothing left to take.
    assert_eq!(synth_worker::cloning::scan_once(&ctx).await.unwrap(), 0);
    ctx.kokoro.shutdown().await;
}
