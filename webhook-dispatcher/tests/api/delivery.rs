//! End to end: an event published on the broker reaches the receiver,
//! shaped and signed as docs/api.md says.

use shared::messages::EventType;
use standardwebhooks::Webhook;

use crate::helpers::{TestEnv, completed_event, event, eventually};

#[tokio::test]
async fn published_event_arrives_signed_with_the_exact_payload() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let (endpoint, secret) = env.endpoint(ws, "/hooks", &["generation.failed"]).await;
    let data = serde_json::json!({
        "id": "gen_3b9d0e", "status": "failed", "voiceId": "voice_8f2a1c",
        "error": {"code": "engine_failed", "message": "boom"}
    });
    let e = event(ws, EventType::GenerationFailed, data.clone());

    env.publish(&e).await;
    let request = eventually("the webhook", || async { env.receiver.requests().pop() }).await;

    assert_eq!(request.path, "/hooks");
    assert_eq!(
        request.json(),
        serde_json::json!({"event": "generation.failed", "data": data})
    );
    assert_eq!(
        request.header("webhook-id"),
        Some(e.id.to_string().as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("voiceprod-webhooks/")
    );
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    Webhook::new(&secret)
        .unwrap()
        .verify(&request.body, &request.header_map())
        .expect("the signature verifies with the Standard Webhooks library");

    let delivery = env.settled_delivery(e.id).await;
    assert_eq!(
        (delivery.status.as_str(), delivery.attempts),
        ("succeeded", 1)
    );
    assert_eq!(delivery.last_status_code, Some(204));
    assert!(delivery.last_duration_ms.is_some() && delivery.last_attempt_at.is_some());
    let endpoint = env.endpoint_row(endpoint).await;
    assert!(endpoint.last_success_at.is_some() && endpoint.failing_since.is_none());
    app.stop().await;
}

#[tokio::test]
async fn completed_event_carries_a_signed_audio_url() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let (_, secret) = env.endpoint(ws, "/hooks", &["generation.completed"]).await;
    let e = completed_event(ws);
    let generation = e.audio_of.unwrap().to_string();

    env.publish(&e).await;
    let request = eventually("the webhook", || async { env.receiver.requests().pop() }).await;

    Webhook::new(&secret)
        .unwrap()
        .verify(&request.body, &request.header_map())
        .unwrap();
    let body = request.json();
    assert_eq!(body["event"], "generation.completed");
    let mut data = body["data"].clone();
    let audio_url = data["audioUrl"].as_str().unwrap().to_owned();
    data.as_object_mut().unwrap().remove("audioUrl");
    assert_eq!(data, e.data, "the rest of data is passed through unchanged");

    let prefix = format!(
        "{}/v1/audio/{generation}?expires=",
        env.settings.gateway.public_base_url
    );
    let query = audio_url
        .strip_prefix(&prefix)
        .expect("a gateway audio URL");
    let (expires, signature) = query.split_once("&signature=").unwrap();
    let expires: i64 = expires.parse().unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&env.settings.audio_urls.signing_key).to_owned();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        shared::signing::verify_audio_url(key.as_bytes(), &generation, expires, signature, now),
        shared::signing::AudioUrlCheck::Valid
    );
    assert!(expires > now + env.settings.audio_urls.ttl_secs as i64 - 60);
    app.stop().await;
}

#[tokio::test]
async fn unsubscribed_and_disabled_endpoints_receive_nothing() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    env.endpoint(ws, "/subscribed", &["voice.ready"]).await;
    env.endpoint(ws, "/other-event", &["generation.completed"])
        .await;
    let (disabled, _) = env.endpoint(ws, "/disabled", &["voice.ready"]).await;
    env.disable_endpoint(disabled).await;
    let e = event(
        ws,
        EventType::VoiceReady,
        serde_json::json!({"id": "voice_1"}),
    );

    env.publish(&e).await;
    env.settled_delivery(e.id).await;

    // Deliveries are created in the one fan-out transaction: once the one
    // row exists and is settled, no other endpoint can ever be sent this.
    assert_eq!(env.deliveries(e.id).await.len(), 1);
    let paths: Vec<String> = env
        .receiver
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["/subscribed"]);
    app.stop().await;
}

#[tokio::test]
async fn private_target_is_refused_unless_allowed() {
    let env = TestEnv::with(|s| {
        s.webhooks.allowed_target_cidrs = vec![];
        s.dispatcher.retry_schedule_secs = vec![];
    })
    .await;
    let app = env.spawn_app().await;
    let ws = env.workspace().await;
    let by_ip = env.receiver.url("/ip");
    let by_name = by_ip
        .replace("127.0.0.1", "localhost")
        .replace("/ip", "/name");
    env.endpoint_at(ws, by_ip, &["voice.ready"]).await;
    env.endpoint_at(ws, by_name, &["voice.ready"]).await;
    let e = event(ws, EventType::VoiceReady, serde_json::json!({}));

    env.publish(&e).await;
    let rows = eventually("both deliveries to fail", || async {
        let rows = env.deliveries(e.id).await;
        (rows.len() == 2 && rows.iter().all(|r| r.status == "failed")).then_some(rows)
    })
    .await;

    for row in rows {
        let error = row.last_error.unwrap();
        assert!(error.contains("refused target"), "{error}");
        if error.contains("localhost") {
            // The delivery log is the customer's: it never says what the
            // name resolved to.
            assert!(error.contains("not public"), "{error}");
            assert!(
                !error.contains("127.0.0.1") && !error.contains("loopback"),
                "{error}"
            );
        } else {
            assert!(error.contains("127.0.0.1 is a loopback address"), "{error}");
        }
        assert_eq!((row.attempts, row.last_status_code), (1, None));
    }
    assert!(env.receiver.requests().is_empty());
    app.stop().await;
}
