//! The sweeper's re-drive of jobs the broker lost after confirming them,
//! and the maximum age: nothing stays `processing` for ever.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::Value;

use shared::schema::{generations, workspaces};

use crate::helpers::*;

/// Re-drives after half a second; the maximum age as given.
fn redrive_settings(max_age_ms: u64) -> shared::settings::Settings {
    let mut s = settings();
    s.gateway.redrive_grace_ms = 500;
    s.gateway.max_processing_age_ms = max_age_ms;
    s.gateway.metrics_enabled = true;
    s
}

fn redrives(app: &TestApp) -> i32 {
    generations::table
        .select(generations::redrives)
        .first(&mut connect(&app.settings))
        .unwrap()
}

/// As if a worker held the generation's lease until `seconds` from now.
fn set_lease(app: &TestApp, seconds: i64) {
    diesel::sql_query(format!(
        "UPDATE generations SET claimed_by = 'other-worker/1', \
         lease_until = now() + interval '{seconds} seconds'"
    ))
    .execute(&mut connect(&app.settings))
    .unwrap();
}

/// Sleeps long enough for the sweeper (every 200 ms in tests) to pass
/// many times over a generation it may re-drive (grace 500 ms).
async fn several_sweeps() {
    tokio::time::sleep(Duration::from_millis(2_500)).await;
}

#[tokio::test]
async fn a_confirmed_job_the_broker_lost_is_redriven_once_no_lease_holds_it() {
    let app = spawn_app_with(redrive_settings(3_600_000)).await;
    let created = app.create_seed_generation().await;
    let id = created["id"].as_str().unwrap().to_owned();
    // The job is taken from the queue and acked, then lost (as by a purge
    // or a lost node, or a worker that died after taking it), while a
    // worker's lease on the generation is live.
    let first = app.next_job().await;
    assert_eq!(first["generationId"], id.as_str());
    assert!(first.get("redrive").is_none(), "{first}");
    set_lease(&app, 3_600);

    several_sweeps().await;
    assert_eq!(redrives(&app), 0, "re-driven under a live lease");

    // The lease expired: the worker is gone.
    set_lease(&app, -1);
    let again = app.next_job().await;

    assert_eq!(again["generationId"], id.as_str());
    assert_eq!(again["redrive"], 1, "{again}");
    assert_eq!(redrives(&app), 1);
    // A worker takes the new copy: no more re-drives while it renders.
    set_lease(&app, 3_600);
    several_sweeps().await;
    assert_eq!(redrives(&app), 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        testkit::metric_value(&metrics, "voiceprod_generations_redriven_total", &[]),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_job_that_is_still_queued_is_not_redriven_even_when_old() {
    let app = spawn_app_with(redrive_settings(3_600_000)).await;
    let created = app.create_seed_generation().await;
    published_at_of_all(&app).await;

    // Nobody consumes: the job waits in the queue, which a re-drive
    // would only duplicate.
    several_sweeps().await;
    assert_eq!(redrives(&app), 0);

    // Its one copy is still there, the original.
    let job = app.next_job().await;
    assert_eq!(job["generationId"], created["id"]);
    assert!(job.get("redrive").is_none(), "{job}");
}

#[tokio::test]
async fn a_generation_past_the_maximum_age_fails_with_generation_timeout_and_is_refunded() {
    let app = spawn_app_with(redrive_settings(1_500)).await;
    let created = app.create_seed_generation().await;
    let id = created["id"].as_str().unwrap().to_owned();
    let used = || -> i64 {
        workspaces::table
            .select(workspaces::credits_used)
            .first(&mut connect(&app.settings))
            .unwrap()
    };
    assert_eq!(used(), 1);

    let failed: Value = eventually("the generation to time out", || async {
        let g = app.get_json(&format!("/v1/generations/{id}")).await;
        (g["status"] == "failed").then_some(g)
    })
    .await;

    assert_eq!(failed["error"]["code"], "generation_timeout", "{failed}");
    assert_eq!(used(), 0, "refunded");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        testkit::metric_value(&metrics, "voiceprod_generations_timed_out_total", &[]),
        Some(1.0)
    );
    // Refunded once, whatever the sweeper does next.
    several_sweeps().await;
    assert_eq!(used(), 0);
}
