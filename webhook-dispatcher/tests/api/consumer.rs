//! The event consumer, driven step by step through `consumer::handle`.

use secrecy::SecretString;
use shared::amqp::{Incoming, Outcome};
use shared::messages::{EventMessage, EventType};
use webhook_dispatcher::consumer::handle;

use crate::helpers::{TestEnv, event};

fn incoming(message: &EventMessage, redelivered: bool) -> Incoming {
    Incoming {
        data: serde_json::to_vec(message).unwrap(),
        redelivered,
        message_id: None,
        published_at: None,
    }
}

#[tokio::test]
async fn unparseable_event_is_rejected() {
    let env = TestEnv::new().await;
    let ctx = env.state();
    for data in [
        b"not json".to_vec(),
        br#"{"type":"event.v9","id":"msg_1"}"#.to_vec(),
        br#"{"type":"event.v1","id":"nope"}"#.to_vec(),
    ] {
        let outcome = handle(
            &ctx,
            Incoming {
                data,
                redelivered: false,
                message_id: None,
                published_at: None,
            },
        )
        .await;
        assert_eq!(outcome, Outcome::Reject);
    }
}

#[tokio::test]
async fn redelivered_event_creates_no_second_delivery() {
    let env = TestEnv::new().await;
    let ctx = env.state();
    let ws = env.workspace().await;
    env.endpoint(ws, "/a", &["generation.failed"]).await;
    env.endpoint(ws, "/b", &["generation.failed"]).await;
    let e = event(
        ws,
        EventType::GenerationFailed,
        serde_json::json!({"id": "gen_1"}),
    );
    let message = EventMessage::V1(e.clone());

    assert_eq!(handle(&ctx, incoming(&message, false)).await, Outcome::Ack);
    assert_eq!(handle(&ctx, incoming(&message, true)).await, Outcome::Ack);

    let rows = env.deliveries(e.id).await;
    assert_eq!(
        rows.len(),
        2,
        "one delivery per endpoint, however often the event comes"
    );
    assert!(
        rows.iter()
            .all(|r| r.status == "pending" && r.attempts == 0)
    );
}

#[tokio::test]
async fn only_enabled_subscribed_endpoints_of_the_workspace_get_deliveries() {
    let env = TestEnv::new().await;
    let ctx = env.state();
    let ws = env.workspace().await;
    let other_ws = env.workspace().await;
    let (subscribed, _) = env
        .endpoint(ws, "/a", &["generation.failed", "voice.ready"])
        .await;
    env.endpoint(ws, "/b", &["generation.completed"]).await;
    let (disabled, _) = env.endpoint(ws, "/c", &["generation.failed"]).await;
    env.disable_endpoint(disabled).await;
    env.endpoint(other_ws, "/d", &["generation.failed"]).await;
    let e = event(ws, EventType::GenerationFailed, serde_json::json!({}));

    assert_eq!(
        handle(&ctx, incoming(&EventMessage::V1(e.clone()), false)).await,
        Outcome::Ack
    );

    let rows = env.deliveries(e.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].endpoint_id, subscribed);
}

#[tokio::test]
async fn event_is_requeued_when_the_database_is_down() {
    let env = TestEnv::with(|s| {
        s.database.url = SecretString::from("postgres://postgres@127.0.0.1:1/nowhere");
        s.database.pool_timeout_ms = 200;
    })
    .await;
    let ctx = env.state();
    let e = event(
        shared::ids::WorkspaceId::new(),
        EventType::VoiceReady,
        serde_json::json!({}),
    );

    assert_eq!(
        handle(&ctx, incoming(&EventMessage::V1(e), false)).await,
        Outcome::Retry
    );
}

#[tokio::test]
async fn test_event_goes_to_its_one_target_endpoint_only() {
    let env = TestEnv::new().await;
    let ctx = env.state();
    let ws = env.workspace().await;
    let (target, _) = env.endpoint(ws, "/a", &["generation.completed"]).await;
    env.endpoint(ws, "/b", &["generation.completed"]).await;
    let mut e = event(ws, EventType::WebhookTest, serde_json::json!({}));
    e.target_endpoint = Some(shared::ids::WebhookId(target));

    assert_eq!(
        handle(&ctx, incoming(&EventMessage::V1(e.clone()), false)).await,
        Outcome::Ack
    );

    let rows = env.deliveries(e.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].endpoint_id, target);

    // Another workspace cannot aim a test event at this endpoint.
    let mut foreign = event(
        env.workspace().await,
        EventType::WebhookTest,
        serde_json::json!({}),
    );
    foreign.target_endpoint = Some(shared::ids::WebhookId(target));
    assert_eq!(
        handle(&ctx, incoming(&EventMessage::V1(foreign.clone()), false)).await,
        Outcome::Ack
    );
    assert!(env.deliveries(foreign.id).await.is_empty());
}
