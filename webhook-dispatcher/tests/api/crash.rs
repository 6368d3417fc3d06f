//! Outages on either side: a dispatcher killed mid-delivery loses nothing,
//! and a receiver that is down gets everything once it is back.

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use shared::db::DbError;
use shared::messages::EventType;
use shared::schema::webhook_attempts as a;
use testkit::receiver::{Receiver, Reply};
use tokio_util::sync::CancellationToken;
use webhook_dispatcher::consumer::fan_out;

use crate::helpers::{TestEnv, event, eventually};

/// The attempt log of every delivery, as (attempt, status code) pairs.
async fn attempt_log(env: &TestEnv) -> Vec<(i32, Option<i32>)> {
    env.db
        .run(|conn| {
            a::table
                .order((a::delivery_id, a::attempt))
                .select((a::attempt, a::status_code))
                .load(conn)
                .map_err(DbError::from)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn dispatcher_killed_mid_delivery_loses_nothing() {
    // A short lease (over the request timeout, as start-up demands) so the
    // second dispatcher takes over quickly.
    let env = TestEnv::with(|s| {
        s.dispatcher.request_timeout_ms = 1_000;
        s.dispatcher.lease_ms = 1_500;
    })
    .await;
    // The first request is held far longer than the test lasts.
    env.receiver
        .script([Reply::status(204).delay(Duration::from_secs(60))]);
    let ws = env.workspace().await;
    env.endpoint(ws, "/hooks", &["generation.completed"]).await;
    let e = event(ws, EventType::GenerationCompleted, serde_json::json!({}));
    let first = env.state();
    assert_eq!(fan_out(&first, e.clone()).await.unwrap(), 1);
    let crashing = tokio::spawn(webhook_dispatcher::delivery::run(
        first,
        CancellationToken::new(),
    ));
    eventually("the first dispatcher's request", || async {
        (env.receiver.requests().len() == 1).then_some(())
    })
    .await;

    // Kill it mid-send: its tasks are dropped, nothing is recorded.
    crashing.abort();
    assert!(crashing.await.unwrap_err().is_cancelled());
    let second = env.spawn_app().await;
    let delivery = env.settled_delivery(e.id).await;

    assert_eq!(
        (delivery.status.as_str(), delivery.attempts),
        ("succeeded", 1),
        "the lost attempt is made again and counted once"
    );
    let requests = env.receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == Some(e.id.to_string().as_str())),
        "the same webhook-id, so the receiver can deduplicate"
    );
    assert_eq!(attempt_log(&env).await, [(1, Some(204))]);
    second.stop().await;
}

#[tokio::test]
async fn receiver_down_then_up_gets_every_event() {
    let env = TestEnv::with(|s| s.dispatcher.retry_schedule_secs = vec![1; 20]).await;
    // A port with nothing listening on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    env.endpoint_at(
        ws,
        format!("http://127.0.0.1:{port}/hooks"),
        &["generation.failed"],
    )
    .await;
    let events: Vec<_> = (0..5)
        .map(|i| event(ws, EventType::GenerationFailed, serde_json::json!({"n": i})))
        .collect();
    for e in &events {
        env.publish(e).await;
    }
    // Every delivery has failed at least once and is waiting for a retry.
    for e in &events {
        eventually("a failed first attempt", || async {
            env.deliveries(e.id)
                .await
                .into_iter()
                .find(|d| d.status == "pending" && d.attempts >= 1)
        })
        .await;
    }

    let receiver = Receiver::start_on(port).await;
    for e in &events {
        let d = env.settled_delivery(e.id).await;
        assert_eq!(d.status, "succeeded");
        assert!(d.last_error.is_none());
    }
    app.stop().await;

    let requests = receiver.requests();
    let ids: HashSet<&str> = requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(requests.len(), events.len(), "each event arrives once");
    assert_eq!(
        ids,
        events
            .iter()
            .map(|e| e.id.to_string())
            .collect::<HashSet<_>>()
            .iter()
            .map(String::as_str)
            .collect()
    );
    // The log shows the refused connections, then the 204.
    let log = attempt_log(&env).await;
    assert_eq!(log.iter().filter(|(_, s)| *s == Some(204)).count(), 5);
    assert!(log.iter().any(|(n, s)| *n == 1 && s.is_none()));
}
