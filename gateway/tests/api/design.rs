//! Designed voices: `POST /v1/voices` with a JSON design of natural voices
//! makes a ready workspace voice whose recipe is stored (normalised), that
//! generations use at once and that lists as `designed`; every bad design
//! is a 422 (or 400) in the envelope that creates nothing.

use serde_json::{Value, json};

use shared::voices::kokoro::voice_id;

use crate::helpers::*;

async fn workspace_voices(app: &TestApp) -> Vec<Value> {
    let page: Value = app
        .get("/v1/voices?type=designed&limit=100")
        .await
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_designed_voice_keeps_its_normalised_recipe_and_is_usable_at_once() {
    let app = spawn_app().await;
    let bella = voice_id("af_bella");
    let response = app
        .post_json(
            "/v1/voices",
            &json!({"name": " Narrator ", "description": "warm and bright",
                    "design": {"from": [{"voiceId": "af_bella", "weight": 3}, {"voiceId": voice_id("af_sky"), "weight": 1},
                                        {"voiceId": "af_nova", "weight": 0}]}}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let voice: Value = response.json().await.unwrap();
    assert_eq!(voice["type"], "designed");
    assert_eq!(voice["engine"], "kokoro");
    assert_eq!(voice["natural"], true);
    assert_eq!(voice["status"], "ready");
    assert_eq!(voice["name"], "Narrator");
    assert_eq!(voice["language"], "en-US");
    assert_eq!(voice["gender"], "female");
    assert_eq!(
        voice["recipe"],
        json!([{"voiceId": bella, "weight": 0.75}, {"voiceId": voice_id("af_sky"), "weight": 0.25}])
    );
    let id = voice["id"].as_str().unwrap();
    assert_eq!(app.get_json(&format!("/v1/voices/{id}")).await, voice);
    assert_eq!(workspace_voices(&app).await, vec![voice.clone()]);

    // Usable at once, as any voice of the workspace.
    let created = app
        .post_generation(
            &json!({"text": "Hello from a designed voice.", "voiceId": id, "format": "wav"}),
        )
        .await;
    assert_eq!(created.status().as_u16(), 202);

    // Another workspace sees nothing of it.
    let (_, other_key) = new_workspace(&app.settings, "other", "scale");
    let theirs = app
        .get_json_with_key(&format!("/v1/voices/{id}"), &other_key)
        .await;
    assert_eq!(theirs["error"]["code"], "not_found", "{theirs}");
}

#[tokio::test]
async fn every_bad_design_is_refused_in_the_envelope_and_creates_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"name": "x", "design": {"from": []}}),
            422,
            "design_required",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": 1}, {"voiceId": "af_sky", "weight": 1}, {"voiceId": "af_nova", "weight": 1}, {"voiceId": "af_heart", "weight": 1}, {"voiceId": "af_alloy", "weight": 1}]}}),
            422,
            "too_many_voices",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": -1}]}}),
            422,
            "invalid_voice_weight",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": 0}]}}),
            422,
            "invalid_voice_weight",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "voice_8f2a1c", "weight": 1}]}}),
            422,
            "voice_not_blendable",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "voice_734bbd", "weight": 1}]}}),
            422,
            "voice_not_blendable",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_nobody", "weight": 1}]}}),
            422,
            "unknown_voice",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella(2)+af_sky", "weight": 1}]}}),
            422,
            "unknown_voice",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": 1}, {"voiceId": "bf_emma", "weight": 1}]}}),
            422,
            "mixed_voice_languages",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": 1}, {"voiceId": voice_id("af_bella"), "weight": 1}]}}),
            422,
            "duplicate_voice",
        ),
        (
            json!({"name": "", "design": {"from": [{"voiceId": "af_bella", "weight": 1}]}}),
            422,
            "invalid_name",
        ),
        (
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": 1}]}, "extra": 1}),
            400,
            "malformed_body",
        ),
        (
            json!({"name": "x", "design": {"gender": "female"}}),
            400,
            "malformed_body",
        ),
        (json!("not an object"), 400, "malformed_body"),
    ];
    for (body, status, code) in cases {
        let response = app.post_json("/v1/voices", &body).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
    }
    let huge = json!({"name": "x".repeat(20_000), "design": {"from": []}});
    assert_eq!(
        app.post_json("/v1/voices", &huge).await.status().as_u16(),
        413
    );
    assert!(workspace_voices(&app).await.is_empty());
}
