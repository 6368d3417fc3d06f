//! A designed voice through the whole stack: designed with `POST
//! /v1/voices`, rendered by a real worker's Kokoro engine, stable (the
//! same recipe gives the same audio, render after render, and the same as
//! the inline blend of that recipe) and its own voice (not one of its
//! members); a described design speaks exactly as the designed preset
//! whose recipe it took.

use std::io::Cursor;

use serde_json::{Value, json};

use crate::helpers::{completed_audio, rms, settings, start_stack};

const TEXT: &str = "Hello, this is a test of a designed voice.";

/// Renders `TEXT` in `voice`: the WAV's samples at 24 kHz.
async fn render(stack: &testkit::stack::Stack, voice: &str) -> Vec<i16> {
    let response = stack
        .post(
            "/v1/generations",
            json!({"text": TEXT, "voiceId": voice, "format": "wav"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202, "{voice}");
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = completed_audio(stack, &id).await;
    let mut wav = hound::WavReader::new(Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(wav.spec().sample_rate, 24_000, "{voice}: Kokoro's rate");
    wav.samples::<i16>().map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_designed_voice_renders_the_same_audio_every_time_and_as_its_recipe_inline() {
    let mut settings = settings(1);
    // The waits poll quickly: above the scale plan's request rate.
    if let Some(scale) = settings.plans.get_mut("scale") {
        scale.requests_per_second = Some(1_000);
    }
    let stack = start_stack(settings).await;
    let response = stack
        .post(
            "/v1/voices",
            json!({"name": "Narrator", "design": {"from": [
                {"voiceId": "af_bella", "weight": 2}, {"voiceId": "af_sky", "weight": 1}]}}),
        )
        .await;
    let status = response.status().as_u16();
    let voice: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{voice}");
    let id = voice["id"].as_str().unwrap();

    let first = render(&stack, id).await;
    let again = render(&stack, id).await;
    let inline = render(&stack, "af_bella(2)+af_sky(1)").await;
    let bella = render(&stack, "af_bella").await;

    assert!(rms(&first) > 300.0, "silence");
    assert!(
        first == again,
        "a designed voice changed between two renders"
    );
    assert!(first == inline, "the designed voice is not its recipe");
    assert!(first != bella, "the designed voice is one of its members");

    // By description: the designed preset of that accent and gender that
    // fits, as a voice of the workspace.
    let response = stack
        .post(
            "/v1/voices",
            json!({"name": "Presenter", "design": {
                "gender": "female", "accent": "british", "description": "bright and lively"}}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let described: Value = response.json().await.unwrap();
    let page: Value = stack
        .get("/v1/voices?type=preset&designed=true&accent=british&gender=female&limit=100")
        .await
        .json()
        .await
        .unwrap();
    let preset = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["recipe"] == described["recipe"])
        .unwrap_or_else(|| panic!("no designed preset has the recipe of {described}"));
    let mine = render(&stack, described["id"].as_str().unwrap()).await;
    let theirs = render(&stack, preset["id"].as_str().unwrap()).await;
    assert!(rms(&mine) > 300.0, "silence");
    assert!(mine == theirs, "the described design is not its preset");
}
