//! Hostile and malformed input: each gets a clear 4xx in the error
//! envelope, and nothing is written.

use diesel::prelude::*;
use serde_json::json;

use shared::schema::{generations, webhook_endpoints};

use crate::helpers::*;

fn rows(app: &TestApp) -> (i64, i64) {
    let mut conn = connect(&app.settings);
    let g: i64 = generations::table.count().get_result(&mut conn).unwrap();
    let w: i64 = webhook_endpoints::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    (g, w)
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&app.api_key)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn invalid_utf8_and_odd_json_are_400() {
    let app = spawn_app().await;
    let mut invalid_utf8 = br#"{"text": "caf"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xC3, 0x28]);
    invalid_utf8.extend_from_slice(br#"", "voiceId": "voice_8f2a1c"}"#);
    let deeply_nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (invalid_utf8, "malformed_json"),
        (b"".to_vec(), "malformed_json"),
        (b"null".to_vec(), "invalid_parameter"),
        (b"[]".to_vec(), "invalid_parameter"),
        (deeply_nested.into_bytes(), "invalid_parameter"),
        (
            br#"{"text": "hi", "voiceId": "voice_8f2a1c", "text": "again"}"#.to_vec(),
            "invalid_parameter",
        ),
    ];
    for (body, code) in cases {
        let response = raw_post(&app, "/v1/generations", "application/json", body).await;
        assert_error(response, 400, code).await;
    }
    assert_eq!(rows(&app), (0, 0));
}

#[tokio::test]
async fn control_characters_and_nul_in_text_are_422() {
    let app = spawn_app().await;
    for text in ["nul\u{0}byte", "escape\u{1b}[31m", "delete\u{7f}"] {
        let response = app
            .post_generation(&json!({"text": text, "voiceId": SEED_VOICE, "format": "wav"}))
            .await;
        assert_error(response, 422, "text_invalid").await;
    }
    // Ordinary whitespace is fine.
    let fine = app
        .post_generation(
            &json!({"text": "line one\nline two\tend", "voiceId": SEED_VOICE, "format": "wav"}),
        )
        .await;
    assert_eq!(fine.status().as_u16(), 202);
    assert_eq!(rows(&app), (1, 0));
}

#[tokio::test]
async fn path_traversal_and_odd_ids_are_404() {
    let app = spawn_app().await;
    for path in [
        "/v1/generations/..%2F..%2Fetc%2Fpasswd",
        "/v1/generations/gen_%00",
        "/v1/generations/%2e%2e/audio",
        "/v1/voices/..%2Fvoice_8f2a1c",
        "/v1/webhooks/wh_'%20OR%201=1",
        "/v1/keys/key_x/rotate",
    ] {
        let response = if path.ends_with("/rotate") {
            app.client
                .post(format!("{}{path}", app.address))
                .bearer_auth(&app.api_key)
                .json(&json!({"gracePeriodSeconds": 0}))
                .send()
                .await
                .unwrap()
        } else {
            app.get(path).await
        };
        let status = response.status().as_u16();
        assert!(status == 404, "{path}: {status}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn header_injection_in_idempotency_keys_and_request_ids_is_refused_or_ignored() {
    let app = spawn_app().await;
    // A visible-ASCII rule: a key with spaces or non-ASCII is a 400.
    for key in ["has space", "naïve", &"k".repeat(256)] {
        let response = app
            .client
            .post(format!("{}/v1/generations", app.address))
            .bearer_auth(&app.api_key)
            .header("Idempotency-Key", key)
            .json(&app.seed_body())
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_idempotency_key").await;
    }
    // A hostile request id is not echoed; a fresh one is given instead.
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "abc\"<script>")
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(echoed.starts_with("req_"), "{echoed}");
    assert_eq!(rows(&app), (0, 0));
}

#[tokio::test]
async fn a_huge_webhook_body_is_413_and_a_form_body_is_415() {
    let app = spawn_app().await;
    let huge = json!({"url": format!("https://example.com/{}", "a".repeat(2 * 1024 * 1024)), "events": ["generation.completed"]});
    let response = app
        .client
        .post(format!("{}/v1/webhooks", app.address))
        .bearer_auth(&app.api_key)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "body_too_large").await;
    let form = raw_post(
        &app,
        "/v1/webhooks",
        "application/x-www-form-urlencoded",
        b"url=https://example.com".to_vec(),
    )
    .await;
    assert_error(form, 415, "unsupported_content_type").await;
    assert_eq!(rows(&app), (0, 0));
}
