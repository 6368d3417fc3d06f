use diesel::prelude::*;
use serde_json::json;

use shared::schema::generations;

use crate::helpers::*;

async fn assert_nothing_written(app: &TestApp) {
    let rows: i64 = generations::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400() {
    let app = spawn_app().await;
    let url = format!("{}/v1/generations", app.address);

    let malformed = app
        .client
        .post(&url)
        .bearer_auth(&app.api_key)
        .header("Content-Type", "application/json")
        .body("{\"text\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "malformed_json").await;

    let wrong_type = app
        .post_generation(&json!({"text": 42, "voiceId": SEED_VOICE}))
        .await;
    assert_error(wrong_type, 400, "invalid_parameter").await;

    let unknown_field = app
        .post_generation(&json!({"text": "hi", "voice_id": SEED_VOICE}))
        .await;
    assert_error(unknown_field, 400, "invalid_parameter").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "format": "aiff"}),
            "invalid_format",
            "format",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "speed": 3.0}),
            "invalid_speed",
            "speed",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "speed": 0.25}),
            "invalid_speed",
            "speed",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "sampleRate": 12345}),
            "invalid_sample_rate",
            "sampleRate",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "textType": "markdown"}),
            "invalid_text_type",
            "textType",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "metadata": [1, 2]}),
            "invalid_metadata",
            "metadata",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "metadata": {"k": "x".repeat(5000)}}),
            "metadata_too_large",
            "metadata",
        ),
        (
            json!({"text": "hi", "voiceId": SEED_VOICE, "metadata": {"k\u{0}": "a\u{0}b"}}),
            "invalid_metadata",
            "metadata",
        ),
    ];
    for (body, code, param) in cases {
        let response = app.post_generation(&body).await;
        let error = assert_error(response, 400, code).await;
        assert_eq!(error["error"]["param"], param);
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn unusable_text_and_voice_are_422() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"text": "", "voiceId": SEED_VOICE, "format": "wav"}),
            "text_empty",
            "text",
        ),
        (
            json!({"text": "   \n", "voiceId": SEED_VOICE, "format": "wav"}),
            "text_empty",
            "text",
        ),
        (
            json!({"text": "a".repeat(100_001), "voiceId": SEED_VOICE, "format": "wav"}),
            "text_too_long",
            "text",
        ),
        (
            json!({"text": "bell\u{7}", "voiceId": SEED_VOICE, "format": "wav"}),
            "text_invalid",
            "text",
        ),
        (
            json!({"text": "hi", "voiceId": "voice_000000", "format": "wav"}),
            "unknown_voice",
            "voiceId",
        ),
    ];
    for (body, code, param) in cases {
        let error = assert_error(app.post_generation(&body).await, 422, code).await;
        assert_eq!(error["error"]["param"], param);
    }
    // Exactly the limit is fine (and costs 100 credits of the 1,000).
    let at_limit = app
        .post_generation(
            &json!({"text": "a".repeat(100_000), "voiceId": SEED_VOICE, "format": "wav"}),
        )
        .await;
    assert_eq!(at_limit.status().as_u16(), 202);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_a_non_json_body_is_415() {
    let app = spawn_app().await;
    let url = format!("{}/v1/generations", app.address);

    let huge = json!({"text": "a".repeat(2 * 1024 * 1024), "voiceId": SEED_VOICE});
    assert_error(app.post_generation(&huge).await, 413, "body_too_large").await;

    let form = app
        .client
        .post(&url)
        .bearer_auth(&app.api_key)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(form, 415, "unsupported_content_type").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_envelope() {
    let app = spawn_app().await;

    assert_error(app.get("/v1/nothing-here").await, 404, "route_not_found").await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;

    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(health.status().as_u16(), 200);
    // Ready once the database, the broker and the key-invalidation listener are up.
    eventually("the gateway to be ready", || async {
        let ready = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        ready.status().is_success().then_some(())
    })
    .await;
}
