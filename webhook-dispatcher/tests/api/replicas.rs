//! Several dispatchers on one database and one queue.

use std::collections::HashSet;

use shared::messages::EventType;

use crate::helpers::{TestEnv, event, eventually};

#[tokio::test]
async fn two_dispatchers_deliver_each_event_exactly_once() {
    let env = TestEnv::new().await;
    let (first, second) = (env.spawn_app().await, env.spawn_app().await);
    let ws = env.workspace().await;
    env.endpoint(ws, "/hooks", &["generation.completed"]).await;
    let events: Vec<_> = (0..20)
        .map(|i| {
            event(
                ws,
                EventType::GenerationCompleted,
                serde_json::json!({"n": i}),
            )
        })
        .collect();

    for e in &events {
        env.publish(e).await;
    }
    for e in &events {
        let d = env.settled_delivery(e.id).await;
        assert_eq!((d.status.as_str(), d.attempts), ("succeeded", 1));
    }
    // Stopping waits for sends in flight, so nothing can arrive later.
    first.stop().await;
    second.stop().await;

    let requests = env.receiver.requests();
    let ids: HashSet<String> = requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(requests.len(), events.len(), "no event was sent twice");
    assert_eq!(
        ids,
        events
            .iter()
            .map(|e| e.id.to_string())
            .collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", app.port);

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = eventually("readiness", || async {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        (r.status() == 200).then_some(r)
    })
    .await;
    assert_eq!(ready.status(), 200);
    app.stop().await;
}
