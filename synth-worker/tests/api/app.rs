//! The whole worker through RabbitMQ: `Application::build`, a job on the
//! jobs exchange, the generation completed in the database.

use shared::amqp::SYNTH_ROUTING_KEY;
use shared::ids::GenerationId;
use shared::messages::JobMessage;
use synth_worker::Application;

use crate::helpers::*;

#[tokio::test]
async fn a_job_published_to_the_jobs_exchange_is_rendered_and_completed() {
    let settings = tokio::task::spawn_blocking(|| settings(2)).await.unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.state();
    let stop = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let ws = insert_workspace(&ctx.db, 100).await;
    let g = insert_generation(&ctx.db, new_generation(ws, SEED)).await;

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    eventually("readiness", || async {
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let job = JobMessage::synthesize(GenerationId(g.id));
    let exchange = ctx.broker.topology().jobs_exchange();
    ctx.publisher
        .publish(&exchange, SYNTH_ROUTING_KEY, &format!("job-{}", g.id), &job)
        .await
        .unwrap();

    let row = eventually("the generation to complete", || async {
        let row = find(&ctx.db, g.id).await;
        (row.status != "processing" && row.event_published_at.is_some()).then_some(row)
    })
    .await;

    assert_eq!(row.status, "completed", "{:?}", row.error);
    assert!(row.duration_ms.unwrap() > 2_000);
    stop.cancel();
    running.await.unwrap().unwrap();
}
