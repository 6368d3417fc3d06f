//! Cloning onto Kokoro, the gateway's half: samples are stored, the voice
//! is `processing` with its clone job and a `clone-voice.v1` message, it
//! cannot be used before it is made, and deleting it takes its samples;
//! bad engines, languages and too little speech are refused and create
//! nothing. (The worker's half: synth-worker's `tests/speaker`; the whole
//! path: e2e `cloning.rs`.)

use diesel::prelude::*;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use shared::models::VoiceClone;

use crate::helpers::*;
use crate::voices::{form, post_voice, voiced_wav};

fn job_row(app: &TestApp, id: &str) -> Option<VoiceClone> {
    VoiceClone::find(&mut connect(&app.settings), id).unwrap()
}

fn store(app: &TestApp) -> std::sync::Arc<dyn object_store::ObjectStore> {
    shared::storage::open(&app.settings.storage).unwrap()
}

#[tokio::test]
async fn an_english_clone_is_processing_with_its_samples_stored_and_a_job_published() {
    let app = spawn_app().await;
    let samples = vec![voiced_wav(118.0, 4.5, 4.0), voiced_wav(122.0, 4.5, 3.0)];

    let response = post_voice(
        &app,
        &app.api_key,
        form(&[("name", "Reader"), ("gender", "male")], &samples),
    )
    .await;

    assert_eq!(response.status().as_u16(), 202);
    let voice: Value = response.json().await.unwrap();
    let id = voice["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &voice["type"],
            &voice["status"],
            &voice["engine"],
            &voice["natural"],
            &voice["language"],
            &voice["accent"],
        ),
        (
            &json!("cloned"),
            &json!("processing"),
            &json!("kokoro"),
            &json!(true),
            &json!("en-US"),
            &json!("American"),
        ),
        "{voice}"
    );
    assert!(voice.get("similarity").is_none() && voice.get("recipe").is_none());
    assert_eq!(app.get_json(&format!("/v1/voices/{id}")).await, voice);

    let job = app.next_job().await;
    assert_eq!(job, json!({"type": "clone-voice.v1", "voiceId": id}));
    let row = job_row(&app, &id).expect("the clone job's row");
    assert_eq!((row.samples, row.attempts), (2, 0));
    let store = store(&app);
    for (i, sample) in samples.iter().enumerate() {
        let key =
            object_store::path::Path::from(VoiceClone::sample_key(&row.samples_key, i as i32));
        let stored = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[..], &sample[..], "sample {i} stored as sent");
    }

    // Not usable until a worker has made it.
    let body = json!({ "text": SEED_TEXT, "voiceId": id, "format": "wav" });
    assert_error(app.post_generation(&body).await, 422, "voice_not_ready").await;

    // Deleting it takes its job and its samples.
    let deleted = app
        .client
        .delete(format!("{}/v1/voices/{id}", app.address))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert!(job_row(&app, &id).is_none());
    let first = object_store::path::Path::from(VoiceClone::sample_key(&row.samples_key, 0));
    assert!(matches!(
        store.get(&first).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_failed_clone_reports_why_and_cannot_be_used() {
    let app = spawn_app().await;
    let samples = vec![voiced_wav(200.0, 4.0, 5.0)];
    let response = post_voice(&app, &app.api_key, form(&[("name", "Gone")], &samples)).await;
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // As a worker finishes a clone that cannot be made.
    let params = json!({"clone": {"engine": "kokoro", "error": {"code": "samples_too_short", "message": "too little speech"}}});
    let finished = VoiceClone::finish(&mut connect(&app.settings), &id, "failed", &params).unwrap();
    assert!(finished);

    let voice = app.get_json(&format!("/v1/voices/{id}")).await;
    assert_eq!(voice["status"], "failed");
    assert_eq!(voice["error"]["code"], "samples_too_short");
    let body = json!({ "text": SEED_TEXT, "voiceId": id, "format": "wav" });
    assert_error(app.post_generation(&body).await, 422, "voice_failed").await;
    // A second finish (another worker) changes nothing.
    let again = VoiceClone::finish(
        &mut connect(&app.settings),
        &id,
        "ready",
        &json!({"engine": null}),
    )
    .unwrap();
    assert!(!again);
}

#[tokio::test]
async fn clones_onto_an_unknown_engine_a_language_kokoro_lacks_or_too_little_speech_are_refused() {
    let app = spawn_app().await;
    let speech = vec![voiced_wav(120.0, 4.5, 5.0)];
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<Vec<u8>>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("name", "x"), ("engine", "wavenet")],
            speech.clone(),
            "invalid_engine",
            "engine",
        ),
        (
            vec![("name", "x"), ("engine", "kokoro"), ("language", "fr-FR")],
            speech.clone(),
            "unsupported_language",
            "language",
        ),
        (
            vec![("name", "x")],
            vec![voiced_wav(120.0, 4.5, 1.5)],
            "samples_too_short",
            "samples",
        ),
    ];
    for (fields, samples, code, param) in cases {
        let body = assert_error(
            post_voice(&app, &app.api_key, form(&fields, &samples)).await,
            422,
            code,
        )
        .await;
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    // Another language is cloned onto espeak-ng by default: ready at once.
    let french = post_voice(
        &app,
        &app.api_key,
        form(&[("name", "Lea"), ("language", "fr-FR")], &speech),
    )
    .await;
    assert_eq!(french.status().as_u16(), 201);
    let french: Value = french.json().await.unwrap();
    assert_eq!(
        (&french["status"], &french["engine"]),
        (&json!("ready"), &json!("espeak-ng"))
    );

    let listed = all_voices(&app, "&type=cloned").await;
    assert_eq!(listed.len(), 1, "a refused clone was stored: {listed:?}");
    let clones: i64 = shared::schema::voice_clones::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap();
    assert_eq!(clones, 0);
}
