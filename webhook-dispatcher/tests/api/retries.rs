//! Failed attempts: retried on the (compressed) schedule with the same
//! webhook-id, given up when it runs out; 410 disables the endpoint.

use shared::messages::EventType;
use standardwebhooks::Webhook;

use crate::helpers::{TestEnv, event};
use testkit::receiver::Reply;

async fn env_with_schedule(schedule: Vec<u64>) -> TestEnv {
    TestEnv::with(|s| s.dispatcher.retry_schedule_secs = schedule).await
}

#[tokio::test]
async fn receiver_failing_once_gets_the_event_again_with_the_same_webhook_id() {
    let env = env_with_schedule(vec![0, 0, 1]).await;
    env.receiver.script([Reply::status(500).body("oops")]);
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let (endpoint, secret) = env.endpoint(ws, "/hooks", &["generation.failed"]).await;
    let e = event(
        ws,
        EventType::GenerationFailed,
        serde_json::json!({"id": "gen_1"}),
    );

    env.publish(&e).await;
    let delivery = env.settled_delivery(e.id).await;

    assert_eq!(
        (delivery.status.as_str(), delivery.attempts),
        ("succeeded", 2)
    );
    assert_eq!(delivery.last_status_code, Some(204));
    let requests = env.receiver.requests();
    assert_eq!(requests.len(), 2);
    let webhook = Webhook::new(&secret).unwrap();
    for r in &requests {
        assert_eq!(r.header("webhook-id"), Some(e.id.to_string().as_str()));
        webhook.verify(&r.body, &r.header_map()).unwrap();
    }
    assert_eq!(requests[0].body, requests[1].body);
    let endpoint = env.endpoint_row(endpoint).await;
    assert!(
        endpoint.enabled && endpoint.failing_since.is_none() && endpoint.last_success_at.is_some()
    );
    app.stop().await;
}

#[tokio::test]
async fn exhausted_schedule_ends_failed_with_the_last_answer_logged() {
    let env = env_with_schedule(vec![0, 0]).await;
    let long_body = "x".repeat(5000);
    env.receiver.script([
        Reply::status(500),
        // Redirects are not followed: a 3xx is a failure like any other.
        Reply::status(302).header("location", "/elsewhere"),
        Reply::status(503)
            .header("retry-after", "0")
            .body(&long_body),
    ]);
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let (endpoint, _) = env.endpoint(ws, "/hooks", &["voice.ready"]).await;
    let e = event(ws, EventType::VoiceReady, serde_json::json!({}));

    env.publish(&e).await;
    let delivery = env.settled_delivery(e.id).await;

    assert_eq!((delivery.status.as_str(), delivery.attempts), ("failed", 3));
    assert_eq!(delivery.last_status_code, Some(503));
    assert_eq!(delivery.last_response_body.unwrap().len(), 1024);
    assert!(delivery.last_error.unwrap().contains("503"));
    let paths: Vec<String> = env
        .receiver
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["/hooks", "/hooks", "/hooks"]);
    let endpoint = env.endpoint_row(endpoint).await;
    assert!(
        endpoint.enabled && endpoint.failing_since.is_some() && endpoint.last_success_at.is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_at_once() {
    let env = env_with_schedule(vec![0, 0, 0]).await;
    env.receiver.script([Reply::status(410)]);
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let (endpoint, _) = env.endpoint(ws, "/hooks", &["voice.ready"]).await;
    let e = event(ws, EventType::VoiceReady, serde_json::json!({}));

    env.publish(&e).await;
    let delivery = env.settled_delivery(e.id).await;

    assert_eq!((delivery.status.as_str(), delivery.attempts), ("failed", 1));
    assert_eq!(delivery.last_status_code, Some(410));
    assert_eq!(env.receiver.requests().len(), 1);
    let endpoint = env.endpoint_row(endpoint).await;
    assert!(!endpoint.enabled);
    assert!(endpoint.disabled_reason.unwrap().contains("410"));
    app.stop().await;
}

#[tokio::test]
async fn receiver_answering_500_to_the_first_attempts_gets_it_later_and_every_attempt_is_logged() {
    let env = env_with_schedule(vec![0, 0, 0, 0]).await;
    env.receiver.script([
        Reply::status(500).body("down for maintenance"),
        Reply::status(500).body("still down"),
    ]);
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    env.endpoint(ws, "/hooks", &["generation.failed"]).await;
    let e = event(ws, EventType::GenerationFailed, serde_json::json!({}));

    env.publish(&e).await;
    let delivery = env.settled_delivery(e.id).await;

    assert_eq!(
        (delivery.status.as_str(), delivery.attempts),
        ("succeeded", 3)
    );
    let log = env.attempts(e.id).await;
    let summary: Vec<_> = log
        .iter()
        .map(|a| (a.attempt, a.status_code, a.response_body.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(500), Some("down for maintenance")),
            (2, Some(500), Some("still down")),
            (3, Some(204), Some("")),
        ]
    );
    assert!(log[0].error.as_deref().unwrap().contains("500"));
    assert!(log[2].error.is_none());
    app.stop().await;
}

#[tokio::test]
async fn endpoint_failing_for_the_configured_days_is_disabled() {
    let env = TestEnv::with(|s| {
        s.dispatcher.retry_schedule_secs = vec![60];
        s.dispatcher.disable_after_failing_days = 5;
    })
    .await;
    env.receiver.script([Reply::status(500)]);
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let (endpoint, _) = env.endpoint(ws, "/hooks", &["voice.ready"]).await;
    env.set_failing_since(endpoint, chrono::Utc::now() - chrono::Duration::days(6))
        .await;
    let e = event(ws, EventType::VoiceReady, serde_json::json!({}));

    env.publish(&e).await;
    let endpoint = crate::helpers::eventually("the endpoint to be disabled", || async {
        Some(env.endpoint_row(endpoint).await).filter(|row| !row.enabled)
    })
    .await;

    assert!(endpoint.disabled_reason.unwrap().contains("5 days"));
    app.stop().await;
}
