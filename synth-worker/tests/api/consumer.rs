//! `handle` driven step by step on a real database, broker and engine.

use std::time::SystemTime;

use diesel::prelude::*;
use shared::amqp::{Incoming, Outcome};
use shared::ids::GenerationId;
use shared::messages::EventType;
use shared::schema::{generations, usage_events};
use synth_worker::handle;
use synth_worker::relay::relay_once;
use uuid::Uuid;

use crate::helpers::*;

fn audio_path(settings: &shared::settings::Settings, key: &str) -> std::path::PathBuf {
    settings.storage.root.join(key)
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[tokio::test]
async fn handle_completes_a_generation_stores_wav_and_publishes_generation_completed() {
    let (settings, ctx) = ctx().await;
    let mut tap = EventTap::bind(&ctx.broker).await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let mut new = new_generation(ws, SEED);
    new.metadata = Some(serde_json::json!({ "order": 42 }));
    let g = insert_generation(&ctx.db, new).await;

    let outcome = handle(&ctx, job(g.id, false)).await;

    assert_eq!(outcome, Outcome::Ack);
    let row = find(&ctx.db, g.id).await;
    assert_eq!(row.status, "completed");
    let duration = row.duration_ms.unwrap();
    assert!((2_000..8_000).contains(&duration), "{duration} ms");
    assert!(row.event_published_at.is_some());
    let key = row.storage_key.clone().unwrap();
    assert_eq!(
        key,
        format!(
            "{}/{}.wav",
            shared::ids::WorkspaceId(ws),
            GenerationId(g.id)
        )
    );
    let reader = hound::WavReader::open(audio_path(&settings, &key)).unwrap();
    assert_eq!(
        (
            reader.spec().channels,
            reader.spec().sample_rate,
            reader.spec().bits_per_sample
        ),
        (1, 22_050, 16)
    );
    assert_eq!(i64::from(reader.duration()) * 1000 / 22_050, duration);

    let seen = tap.next().await;
    let event = seen.event();
    assert_eq!(seen.routing_key, "generation.completed");
    assert_eq!(seen.message_id, Some(event.id.to_string()));
    assert_eq!(event.event, EventType::GenerationCompleted);
    assert_eq!(event.workspace_id.0, ws);
    assert_eq!(event.audio_of, Some(GenerationId(g.id)));
    let completed_at = row
        .completed_at
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        event.data,
        serde_json::json!({
            "id": GenerationId(g.id).to_string(),
            "status": "completed",
            "voiceId": "voice_8f2a1c",
            "format": "wav",
            "durationMs": duration,
            "completedAt": completed_at,
            "metadata": { "order": 42 },
        })
    );
}

#[tokio::test]
async fn a_redelivered_job_for_a_completed_generation_is_acked_without_rendering_again() {
    let (settings, ctx) = ctx().await;
    let mut tap = EventTap::bind(&ctx.broker).await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, SEED)).await;
    assert_eq!(handle(&ctx, job(g.id, false)).await, Outcome::Ack);
    let first = tap.next().await.event();
    let row = find(&ctx.db, g.id).await;
    let path = audio_path(&settings, row.storage_key.as_deref().unwrap());
    let written = mtime(&path);

    let outcome = handle(&ctx, job(g.id, true)).await;

    assert_eq!(outcome, Outcome::Ack);
    assert_eq!(mtime(&path), written, "the audio was rendered again");
    let again = find(&ctx.db, g.id).await;
    assert_eq!(
        (again.completed_at, again.event_published_at),
        (row.completed_at, row.event_published_at)
    );
    let marker = publish_sentinel(&ctx).await;
    let next = tap.next().await;
    assert_eq!(
        next.message_id.as_deref(),
        Some(marker.as_str()),
        "a second event was published"
    );
    assert_eq!(first.event, EventType::GenerationCompleted);
}

#[tokio::test]
async fn a_redelivered_job_whose_event_was_lost_publishes_it_again_with_the_same_id() {
    let (settings, ctx) = ctx().await;
    let mut tap = EventTap::bind(&ctx.broker).await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, SEED)).await;
    assert_eq!(handle(&ctx, job(g.id, false)).await, Outcome::Ack);
    let first = tap.next().await.event();
    let path = audio_path(
        &settings,
        find(&ctx.db, g.id).await.storage_key.as_deref().unwrap(),
    );
    let written = mtime(&path);
    // What a crash between publishing and recording it leaves behind.
    let id = g.id;
    ctx.db
        .run(move |c| {
            diesel::update(generations::table.find(id))
                .set(generations::event_published_at.eq(None::<chrono::DateTime<chrono::Utc>>))
                .execute(c)
                .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();

    let outcome = handle(&ctx, job(g.id, true)).await;

    assert_eq!(outcome, Outcome::Ack);
    let second = tap.next().await.event();
    assert_eq!(second, first, "the re-published event differs");
    assert_eq!(mtime(&path), written, "the audio was rendered again");
    assert!(find(&ctx.db, g.id).await.event_published_at.is_some());
}

#[tokio::test]
async fn an_unknown_voice_fails_the_generation_refunds_credits_and_publishes_generation_failed() {
    let (_settings, ctx) = ctx().await;
    let mut tap = EventTap::bind(&ctx.broker).await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let mut new = new_generation(ws, SEED);
    new.voice_id = "voice_000000".to_owned();
    let g = insert_generation(&ctx.db, new).await;
    assert_eq!(workspace(&ctx.db, ws).await.credits_used, 1);

    let outcome = handle(&ctx, job(g.id, false)).await;

    assert_eq!(outcome, Outcome::Ack);
    let row = find(&ctx.db, g.id).await;
    assert_eq!(row.status, "failed");
    assert_eq!(row.error.as_ref().unwrap()["code"], "unknown_voice");
    assert!(row.storage_key.is_none());
    assert_eq!(workspace(&ctx.db, ws).await.credits_used, 0);
    let id = g.id;
    let refunds: i64 = ctx
        .db
        .run(move |c| {
            usage_events::table
                .filter(usage_events::generation_id.eq(id))
                .filter(usage_events::kind.eq("refund"))
                .count()
                .get_result(c)
                .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(refunds, 1);
    let seen = tap.next().await;
    assert_eq!(seen.routing_key, "generation.failed");
    let event = seen.event();
    assert_eq!(event.audio_of, None);
    assert_eq!(
        event.data,
        serde_json::json!({
            "id": GenerationId(g.id).to_string(),
            "status": "failed",
            "voiceId": "voice_000000",
            "format": "wav",
            "error": row.error.unwrap(),
        })
    );
}

#[tokio::test]
async fn invalid_ssml_and_an_unsupported_sample_rate_fail_with_their_codes() {
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let mut ssml = new_generation(ws, "<speak>Hello <prosody rate=\"slow\">world</speak>");
    ssml.text_type = "ssml".to_owned();
    // Opus cannot carry 22,050 Hz (the gateway refuses it at request time).
    let mut rate = new_generation(ws, SEED);
    rate.format = "ogg".to_owned();
    rate.sample_rate = Some(22_050);
    let (ssml, rate) = (
        insert_generation(&ctx.db, ssml).await,
        insert_generation(&ctx.db, rate).await,
    );

    assert_eq!(handle(&ctx, job(ssml.id, false)).await, Outcome::Ack);
    assert_eq!(handle(&ctx, job(rate.id, false)).await, Outcome::Ack);

    let ssml = find(&ctx.db, ssml.id).await;
    assert_eq!(
        (ssml.status.as_str(), &ssml.error.unwrap()["code"]),
        ("failed", &serde_json::json!("invalid_ssml"))
    );
    let rate = find(&ctx.db, rate.id).await;
    assert_eq!(
        (rate.status.as_str(), &rate.error.unwrap()["code"]),
        ("failed", &serde_json::json!("unsupported_sample_rate"))
    );
}

#[tokio::test]
async fn well_formed_ssml_renders_to_pcm_at_the_requested_native_rate() {
    let (settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let mut new = new_generation(
        ws,
        "<speak>Hello <break time=\"300ms\"/> world &amp; friends.</speak>",
    );
    new.text_type = "ssml".to_owned();
    new.format = "pcm".to_owned();
    new.sample_rate = Some(22_050);
    new.speed = 1.5;
    let g = insert_generation(&ctx.db, new).await;

    assert_eq!(handle(&ctx, job(g.id, false)).await, Outcome::Ack);

    let row = find(&ctx.db, g.id).await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    let bytes = std::fs::read(audio_path(&settings, row.storage_key.as_deref().unwrap())).unwrap();
    assert_eq!(bytes.len() % 2, 0);
    assert_eq!(
        (bytes.len() / 2) as i64 * 1000 / 22_050,
        row.duration_ms.unwrap()
    );
}

#[tokio::test]
async fn an_unparseable_or_unknown_job_is_rejected() {
    let (_settings, ctx) = ctx().await;
    for data in [
        b"not json".to_vec(),
        br#"{"type":"synthesize.v9","generationId":"gen_0"}"#.to_vec(),
        br#"{"type":"synthesize.v1","generationId":"not-an-id"}"#.to_vec(),
    ] {
        let incoming = Incoming {
            data,
            redelivered: false,
            message_id: None,
            published_at: None,
        };
        assert_eq!(handle(&ctx, incoming).await, Outcome::Reject);
    }
}

#[tokio::test]
async fn a_job_for_a_generation_that_does_not_exist_is_acked() {
    let (_settings, ctx) = ctx().await;

    assert_eq!(handle(&ctx, job(Uuid::now_v7(), false)).await, Outcome::Ack);
}

#[tokio::test]
async fn an_event_the_broker_refuses_is_left_to_the_relay_which_publishes_it_once_it_can() {
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, SEED)).await;
    // No events exchange: the broker refuses every event (404).
    let ch = ctx.broker.channel().await.unwrap();
    ch.exchange_delete(
        ctx.broker.topology().events_exchange().into(),
        lapin::options::ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();

    let outcome = handle(&ctx, job(g.id, false)).await;

    // Finished and acked: the job holds no worker slot while events wait.
    assert_eq!(outcome, Outcome::Ack);
    let row = find(&ctx.db, g.id).await;
    assert_eq!(row.status, "completed");
    assert!(row.event_published_at.is_none());
    let grace = std::time::Duration::from_secs(3600);
    assert_eq!(relay_once(&ctx, grace).await.unwrap(), 0, "not due yet");
    // Due, but the broker still refuses: the pass fails, nothing is marked.
    assert!(relay_once(&ctx, std::time::Duration::ZERO).await.is_err());
    assert!(find(&ctx.db, g.id).await.event_published_at.is_none());

    // The broker takes events again.
    ctx.broker.topology().declare(&ch).await.unwrap();
    let mut tap = EventTap::bind(&ctx.broker).await;
    assert_eq!(
        relay_once(&ctx, std::time::Duration::ZERO).await.unwrap(),
        1
    );

    let seen = tap.next().await;
    let event = seen.event();
    assert_eq!(seen.routing_key, "generation.completed");
    assert_eq!(event.audio_of, Some(GenerationId(g.id)));
    assert!(find(&ctx.db, g.id).await.event_published_at.is_some());
    assert_eq!(
        relay_once(&ctx, std::time::Duration::ZERO).await.unwrap(),
        0,
        "published once"
    );
}

#[tokio::test]
async fn a_short_unstreamed_job_of_the_interactive_lane_renders_before_queued_bulk_chunks() {
    // One Piper engine, no reserve: only the engines' priority can let the
    // short job pass the long one's queued chunks (seconds each).
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let long = insert_generation(&ctx.db, new_generation(ws, &[SEED; 50].join(" "))).await;
    let short = insert_generation(&ctx.db, new_generation(ws, SEED)).await;

    let bulk = handle(&ctx, job(long.id, false));
    let interactive = async {
        let id = long.id;
        eventually("the long job to be rendering", || async {
            let claimed: Option<String> = ctx
                .db
                .run(move |c| {
                    generations::table
                        .find(id)
                        .select(generations::claimed_by)
                        .first(c)
                        .map_err(anyhow::Error::from)
                })
                .await
                .unwrap();
            claimed.map(|_| ())
        })
        .await;
        let outcome = synth_worker::consumer::handle_in(
            &ctx,
            shared::amqp::Lane::Interactive,
            job(short.id, false),
        )
        .await;
        // The order, not a time: the long one still renders.
        (outcome, find(&ctx.db, long.id).await.status)
    };
    let (bulk, (outcome, long_status)) = tokio::join!(bulk, interactive);

    assert_eq!((bulk, outcome), (Outcome::Ack, Outcome::Ack));
    assert_eq!(find(&ctx.db, short.id).await.status, "completed");
    assert_eq!(
        long_status, "processing",
        "the short job waited for the long one"
    );
    assert_eq!(find(&ctx.db, long.id).await.status, "completed");
}
