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
            json!({"name": "x", "design": {"from": [{"voiceId": "af_bella", "weight": 1}, {"voiceId": "ef_dora", "weight": 1}]}}),
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
            422,
            "design_required",
        ),
        (
            json!({"name": "x", "design": {"gender": "female", "accent": "martian"}}),
            422,
            "unsupported_accent",
        ),
        (
            json!({"name": "x", "design": {"gender": "robot", "accent": "british"}}),
            422,
            "invalid_gender",
        ),
        (
            json!({"name": "x", "design": {"gender": "female", "accent": "british", "description": "a\u{0}b"}}),
            422,
            "invalid_design",
        ),
        (
            json!({"name": "x", "design": {"gender": "female", "accent": "british", "from": [{"voiceId": "af_bella", "weight": 1}]}}),
            422,
            "invalid_design",
        ),
        (
            json!({"name": "x", "design": {"gender": "female", "accent": "british", "mood": "sad"}}),
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

#[tokio::test]
async fn the_catalog_lists_the_designed_presets_after_the_kokoro_ones_with_their_recipes() {
    let app = spawn_app().await;
    let rows = shared::voices::designed::rows();
    let designed = all_voices(&app, "&type=preset&designed=true").await;
    assert_eq!(designed.len(), rows.len());
    assert!(designed.len() >= 300, "{}", designed.len());
    for (v, row) in designed.iter().zip(rows) {
        assert_eq!(v["id"], row.id.as_str());
        assert_eq!(v["name"], row.name.as_str());
        assert_eq!(
            (&v["engine"], &v["natural"], &v["type"]),
            (&json!("kokoro"), &json!(true), &json!("preset")),
            "{v}"
        );
        assert_eq!(v["language"], row.language);
        assert_eq!(
            v["accent"],
            if row.language == "en-GB" {
                "British"
            } else {
                "American"
            }
        );
        let recipe = v["recipe"].as_array().unwrap();
        assert!((2..=4).contains(&recipe.len()), "{v}");
        let sum: f64 = recipe.iter().map(|p| p["weight"].as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{v}");
        let description = v["description"].as_str().unwrap();
        assert!(description.contains(&row.traits()[1..]), "{description}");
    }
    // A designed preset is a voice like any other.
    let first = &designed[0];
    assert_eq!(
        app.get_json(&format!("/v1/voices/{}", first["id"].as_str().unwrap()))
            .await,
        *first
    );
    let created = app
        .post_generation(&json!({"text": "Hello.", "voiceId": first["id"], "format": "wav"}))
        .await;
    assert_eq!(created.status().as_u16(), 202);

    // Accent: every natural British voice, the designed ones included.
    let british = all_voices(&app, "&accent=BRITISH").await;
    assert!(british.iter().all(|v| v["language"] == "en-GB"));
    assert_eq!(
        british.len(),
        8 + rows.iter().filter(|r| r.language == "en-GB").count()
    );
    assert_eq!(
        all_voices(&app, "&designed=false&engine=kokoro")
            .await
            .len(),
        41
    );
    assert_error(
        app.get("/v1/voices?accent=martian").await,
        400,
        "invalid_accent",
    )
    .await;
    assert_error(
        app.get("/v1/voices?designed=maybe").await,
        400,
        "invalid_parameter",
    )
    .await;
}

#[tokio::test]
async fn a_described_design_takes_the_fitting_designed_voice_the_workspace_does_not_have_yet() {
    use shared::voices::Gender;
    use shared::voices::designed::pick;

    let app = spawn_app().await;
    let words = "a deep, calm and slow narrator";
    let body = json!({"name": "Night reader",
                      "design": {"gender": "male", "accent": "British", "description": words}});
    let expected = pick("en-GB", Gender::Male, words, |_| true, |_| false).unwrap();
    let preset = app.get_json(&format!("/v1/voices/{}", expected.id)).await;

    let response = app.post_json("/v1/voices", &body).await;
    assert_eq!(response.status().as_u16(), 201);
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["type"], "designed");
    assert_eq!(first["designed"], true);
    assert_eq!(
        (&first["language"], &first["gender"], &first["accent"]),
        (&json!("en-GB"), &json!("male"), &json!("British"))
    );
    assert_eq!(first["recipe"], preset["recipe"]);
    assert_eq!(first["description"], preset["description"]);
    // The traits were asked for, and the pick has the most of them.
    let traits = expected.traits();
    let matched = ["low", "even", "unhurried"]
        .iter()
        .filter(|w| traits.contains(*w))
        .count();
    let best = shared::voices::designed::rows()
        .iter()
        .filter(|r| r.language == "en-GB" && r.gender == Gender::Male)
        .map(|r| {
            ["low", "even", "unhurried"]
                .iter()
                .filter(|w| r.traits().contains(*w))
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(matched, best, "{traits}");

    // The same words again: another recipe, not the one the workspace has.
    let second: Value = app
        .post_json("/v1/voices", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["type"], "designed", "{second}");
    assert_ne!(second["recipe"], first["recipe"]);
    let again = pick(
        "en-GB",
        Gender::Male,
        words,
        |_| true,
        |d| d.id == expected.id,
    )
    .unwrap();
    assert_eq!(
        second["recipe"],
        app.get_json(&format!("/v1/voices/{}", again.id)).await["recipe"]
    );
    assert_eq!(workspace_voices(&app).await.len(), 2);

    // Usable at once.
    let created = app
        .post_generation(&json!({"text": "Good night.", "voiceId": second["id"], "format": "wav"}))
        .await;
    assert_eq!(created.status().as_u16(), 202);
}
