//! Leases: one render per generation at a time, copies superseded by a
//! re-drive dropped, a render that lost its lease stopped, and a bounded
//! shutdown that returns unfinished jobs and their leases.

use std::time::Duration;

use diesel::prelude::*;
use shared::amqp::{Incoming, Outcome, SYNTH_ROUTING_KEY};
use shared::db::Db;
use shared::ids::GenerationId;
use shared::messages::JobMessage;
use shared::schema::{generations, job_queue_progress};
use synth_worker::{Application, State, handle};
use uuid::Uuid;

use crate::helpers::*;

/// A text the default (Piper) voice takes seconds to render on one engine.
fn long_text() -> String {
    SEED.repeat(40)
}

/// Times the worker rendered and stored a generation's audio.
fn renders(ctx: &State) -> f64 {
    let text = ctx.broker.metrics().render();
    testkit::metric_value(
        &text,
        "voiceprod_synthesis_seconds_count",
        &[("format", "wav")],
    )
    .unwrap_or(0.0)
}

fn copy(id: Uuid, redrive: i32) -> Incoming {
    let msg = JobMessage::SynthesizeV1 {
        generation_id: GenerationId(id),
        redrive,
        stream_to: None,
    };
    Incoming {
        data: serde_json::to_vec(&msg).unwrap(),
        ..job(id, false)
    }
}

async fn sql(db: &Db, query: String) {
    db.run(move |c| {
        diesel::sql_query(query)
            .execute(c)
            .map_err(anyhow::Error::from)
    })
    .await
    .unwrap();
}

/// `(claimed_by, lease live)` of generation `id`.
async fn lease(db: &Db, id: Uuid) -> (Option<String>, bool) {
    db.run(move |c| {
        let (by, until): (Option<String>, Option<chrono::DateTime<chrono::Utc>>) =
            generations::table
                .find(id)
                .select((generations::claimed_by, generations::lease_until))
                .first(c)?;
        Ok::<_, anyhow::Error>((by, until.is_some_and(|u| u > chrono::Utc::now())))
    })
    .await
    .unwrap()
}

async fn wait_claimed(db: &Db, id: Uuid) {
    eventually("the generation to be claimed", || async {
        lease(db, id).await.1.then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_second_copy_of_a_job_being_rendered_is_dropped_and_the_generation_renders_once() {
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, &long_text())).await;

    let (first, second) = tokio::join!(handle(&ctx, job(g.id, false)), async {
        wait_claimed(&ctx.db, g.id).await;
        handle(&ctx, job(g.id, false)).await
    });

    assert_eq!((first, second), (Outcome::Ack, Outcome::Ack));
    assert_eq!(find(&ctx.db, g.id).await.status, "completed");
    assert_eq!(renders(&ctx), 1.0);
    // The worker recorded how far it consumed the jobs queue.
    let queue = ctx.broker.topology().jobs_queue();
    let progress: Option<chrono::DateTime<chrono::Utc>> = ctx
        .db
        .run(move |c| {
            job_queue_progress::table
                .find(queue)
                .select(job_queue_progress::consumed_through)
                .first(c)
                .optional()
                .map_err(anyhow::Error::from)
        })
        .await
        .unwrap();
    assert!(progress.is_some());
}

#[tokio::test]
async fn a_copy_older_than_the_generations_last_redrive_is_dropped() {
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, SEED)).await;
    sql(
        &ctx.db,
        format!("UPDATE generations SET redrives = 1 WHERE id = '{}'", g.id),
    )
    .await;

    assert_eq!(handle(&ctx, copy(g.id, 0)).await, Outcome::Ack);
    assert_eq!(find(&ctx.db, g.id).await.status, "processing");
    assert_eq!(lease(&ctx.db, g.id).await, (None, false));
    assert_eq!(renders(&ctx), 0.0);

    assert_eq!(handle(&ctx, copy(g.id, 1)).await, Outcome::Ack);
    assert_eq!(find(&ctx.db, g.id).await.status, "completed");
    assert_eq!(renders(&ctx), 1.0);
}

#[tokio::test]
async fn a_render_whose_lease_another_worker_took_stops() {
    let mut settings = tokio::task::spawn_blocking(|| settings(1)).await.unwrap();
    // Renewed every 200 ms.
    settings.worker.lease_ms = 600;
    let ctx = State::build(&settings).await.unwrap();
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, &long_text().repeat(4))).await;

    let rendering = handle(&ctx, job(g.id, false));
    let take_over = async {
        wait_claimed(&ctx.db, g.id).await;
        // As if its lease had expired and another worker had claimed it.
        sql(
            &ctx.db,
            format!(
                "UPDATE generations SET claimed_by = 'other/1', lease_until = now() + interval '1 hour' \
                 WHERE id = '{}'",
                g.id
            ),
        )
        .await;
    };
    let (outcome, ()) = tokio::join!(rendering, take_over);

    assert_eq!(outcome, Outcome::Ack);
    assert_eq!(find(&ctx.db, g.id).await.status, "processing");
    assert_eq!(renders(&ctx), 0.0, "the render was stopped");
    assert_eq!(lease(&ctx.db, g.id).await, (Some("other/1".into()), true));
}

#[tokio::test]
async fn on_sigterm_a_worker_returns_an_unfinished_job_and_its_lease_within_the_drain_time() {
    let mut settings = tokio::task::spawn_blocking(|| settings(1)).await.unwrap();
    settings.worker.drain_ms = 300;
    let app = Application::build(settings.clone()).await.unwrap();
    let ctx = app.state();
    let stop = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let ws = insert_workspace(&ctx.db, 100).await;
    // Seconds of rendering, far beyond the drain time.
    let g = insert_generation(&ctx.db, new_generation(ws, &long_text())).await;
    let job = JobMessage::synthesize(GenerationId(g.id));
    let exchange = ctx.broker.topology().jobs_exchange();
    ctx.publisher
        .publish(&exchange, SYNTH_ROUTING_KEY, "job-1", &job)
        .await
        .unwrap();
    wait_claimed(&ctx.db, g.id).await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the worker stopped")
        .unwrap()
        .unwrap();

    // Not finished, not held: the job is back in the queue for the next
    // worker, which claims it at once and finishes it.
    assert_eq!(find(&ctx.db, g.id).await.status, "processing");
    assert!(!lease(&ctx.db, g.id).await.1, "lease released");
    let next = Application::build(settings).await.unwrap();
    let next_ctx = next.state();
    let next_stop = next.shutdown_token();
    let next_running = tokio::spawn(next.run_until_stopped());
    let row = eventually("the next worker to finish it", || async {
        let row = find(&next_ctx.db, g.id).await;
        (row.status != "processing").then_some(row)
    })
    .await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    assert_eq!(renders(&next_ctx), 1.0);
    next_stop.cancel();
    next_running.await.unwrap().unwrap();
}
