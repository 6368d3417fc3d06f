//! Kokoro voices in the API: the 41 presets in `GET /v1/voices` (filters
//! `engine` and `natural`, natural voices first), pack names as aliases,
//! inline blends as `voiceId` (stored canonically, resolved to weighted
//! packs) and every refused blend a 422 that charges nothing; OpenAI's
//! names on `POST /v1/audio/speech`. The Kokoro directory is the sparse
//! fixture of `helpers::kokoro_packs`.

use diesel::prelude::*;
use serde_json::{Value, json};

use shared::schema::generations;
use shared::voices::kokoro::voice_id;
use shared::voices::{KokoroPack, resolve};

use crate::helpers::*;

async fn credits_used(app: &TestApp) -> i64 {
    let w: Value = app.get("/v1/workspace").await.json().await.unwrap();
    w["creditsUsed"].as_i64().unwrap()
}

fn generation_rows(app: &TestApp) -> i64 {
    generations::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap()
}

#[tokio::test]
async fn kokoro_voices_are_41_natural_presets_in_7_languages_listed_first() {
    let app = spawn_app().await;

    let kokoro = all_voices(&app, "&engine=kokoro&designed=false").await;
    assert_eq!(kokoro.len(), 41, "{kokoro:?}");
    assert!(
        kokoro
            .iter()
            .all(|v| v["engine"] == "kokoro" && v["natural"] == true && v["type"] == "preset")
    );
    let languages: std::collections::BTreeSet<&str> = kokoro
        .iter()
        .map(|v| v["language"].as_str().unwrap())
        .collect();
    assert_eq!(
        languages.into_iter().collect::<Vec<_>>(),
        ["en-GB", "en-US", "es", "fr-FR", "hi", "it", "pt-BR"]
    );
    let nova = kokoro.iter().find(|v| v["name"] == "Nova").unwrap();
    assert_eq!(nova["id"], voice_id("af_nova").as_str());
    assert_eq!(
        (&nova["gender"], &nova["language"]),
        (&json!("female"), &json!("en-US"))
    );
    assert!(nova["description"].as_str().unwrap().contains("af_nova"));
    assert!(
        !kokoro
            .iter()
            .any(|v| v["description"].as_str().unwrap().contains("jf_"))
    );

    // Everything: natural voices first (Joe, Kokoro, the designed ones),
    // then the rest.
    let all = all_voices(&app, "").await;
    let first_other = all.iter().position(|v| v["natural"] == false).unwrap();
    let designed = shared::voices::designed::rows().len();
    assert_eq!(
        first_other,
        42 + designed,
        "Joe, the 41 Kokoro voices and the designed ones come first"
    );
    assert!(all[1..42].iter().all(|v| v["designed"] == false));
    assert!(all[42..first_other].iter().all(|v| v["designed"] == true));
    assert_eq!(all[0]["id"], "voice_8f2a1c");
    assert!(all[first_other..].iter().all(|v| v["natural"] == false));
    assert!(all.len() > 400);

    let natural = all_voices(&app, "&natural=true").await;
    assert_eq!(natural, all[..first_other].to_vec());
    let formant = all_voices(&app, "&natural=false&engine=espeak-ng").await;
    assert_eq!(formant.len(), all.len() - first_other);
    assert!(
        all_voices(&app, "&natural=false&engine=kokoro")
            .await
            .is_empty()
    );
    let british = all_voices(
        &app,
        "&engine=kokoro&language=en-GB&gender=male&designed=false",
    )
    .await;
    let names: Vec<&str> = british
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Fable", "George", "Lewis", "Daniel"]);
    assert_error(
        app.get("/v1/voices?natural=maybe").await,
        400,
        "invalid_parameter",
    )
    .await;
    let refused = assert_error(
        app.get("/v1/voices?engine=wavenet").await,
        400,
        "invalid_engine",
    )
    .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kokoro")
    );
}

#[tokio::test]
async fn a_pack_name_is_an_alias_of_its_preset_wherever_a_voice_is_named() {
    let app = spawn_app().await;
    let by_alias: Value = app.get("/v1/voices/af_nova").await.json().await.unwrap();
    let by_id: Value = app
        .get(&format!("/v1/voices/{}", voice_id("af_nova")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_alias, by_id);
    assert_eq!(by_alias["name"], "Nova");
    // Packs that are no voice here: Japanese, and what is not a pack.
    assert_error(app.get("/v1/voices/jf_alpha").await, 404, "not_found").await;
    assert_error(app.get("/v1/voices/af_nobody").await, 404, "not_found").await;
    let delete = app
        .client
        .delete(format!("{}/v1/voices/af_nova", app.address))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_error(delete, 422, "preset_voice").await;

    let response = app
        .post_generation(&json!({"text": "Hello.", "voiceId": "af_nova", "format": "wav"}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["voiceId"],
        voice_id("af_nova").as_str(),
        "stored as the id"
    );
}

#[tokio::test]
async fn a_blend_voice_id_is_accepted_stored_canonically_and_its_job_renders_the_weighted_packs() {
    let app = spawn_app().await;
    let sky = voice_id("af_sky");
    let response = app
        .post_generation(&json!({
            "text": "A blend of two voices.",
            "voiceId": format!("af_bella(2) + {sky}"),
            "format": "wav"
        }))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["voiceId"], "af_bella(2)+af_sky(1)");
    let got: Value = app
        .get(&format!("/v1/generations/{}", body["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["voiceId"], "af_bella(2)+af_sky(1)");

    // The job names the generation; the worker resolves its row's voice
    // with the same function, to these packs.
    let job = app.next_job().await;
    assert_eq!(job["generationId"], body["id"]);
    let stored: String = generations::table
        .select(generations::voice_id)
        .first(&mut connect(&app.settings))
        .unwrap();
    let voice = resolve(&stored).unwrap().unwrap().voice;
    assert_eq!(voice.espeak_voice, "en-us");
    assert_eq!(
        voice.kokoro.unwrap().packs,
        [
            KokoroPack {
                name: "af_bella".into(),
                weight: 2.0 / 3.0
            },
            KokoroPack {
                name: "af_sky".into(),
                weight: 1.0 / 3.0
            },
        ]
    );
    assert_eq!(credits_used(&app).await, 1);
}

#[tokio::test]
async fn every_bad_voice_blend_is_a_422_naming_voice_id_that_charges_nothing() {
    let app = spawn_app().await;
    let huge_name = "x".repeat(1_000_000);
    let huge_blend = format!("af_bella+{}", "a".repeat(1_000));
    let cases: Vec<(String, &str)> = vec![
        ("af_bella+".into(), "invalid_voice_blend"),
        ("af_bella((2))+af_sky".into(), "invalid_voice_blend"),
        ("af_bella(2".into(), "invalid_voice_blend"),
        ("af_bélla+af_sky".into(), "invalid_voice_blend"),
        (huge_blend, "invalid_voice_blend"),
        ("af_bella(0)+af_sky".into(), "invalid_voice_weight"),
        ("af_bella(NaN)+af_sky".into(), "invalid_voice_weight"),
        ("af_bella(1e999)+af_sky".into(), "invalid_voice_weight"),
        ("af_bella(-1)+af_sky".into(), "invalid_voice_weight"),
        (
            "af_heart+af_sky+am_adam+af_nova+af_bella".into(),
            "too_many_voices",
        ),
        (
            format!("af_bella+{}", voice_id("af_bella")),
            "duplicate_voice",
        ),
        ("af_bella+ef_dora".into(), "mixed_voice_languages"),
        ("af_bella+voice_8f2a1c".into(), "voice_not_blendable"),
        ("af_bella+af_nobody".into(), "unknown_voice"),
        ("af_bella+jf_alpha".into(), "unknown_voice"),
        ("jf_alpha".into(), "unknown_voice"),
        (huge_name, "unknown_voice"),
    ];
    for (voice, code) in &cases {
        let response = app
            .post_generation(&json!({"text": "Hello.", "voiceId": voice, "format": "wav"}))
            .await;
        let body = assert_error(response, 422, code).await;
        assert_eq!(body["error"]["param"], "voiceId", "{code}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.len() < 300,
            "{code}: a {}-byte message",
            message.len()
        );
    }
    // The same check on OpenAI's endpoint, naming its parameter.
    let speech = app
        .client
        .post(format!("{}/v1/audio/speech", app.address))
        .bearer_auth(&app.api_key)
        .json(&json!({"model": "tts-1", "input": "Hello.", "voice": "af_bella(0)+af_sky"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(speech, 422, "invalid_voice_weight").await;
    assert_eq!(body["error"]["param"], "voice");

    assert_eq!(generation_rows(&app), 0);
    assert_eq!(credits_used(&app).await, 0);
}

#[tokio::test]
async fn openai_voice_names_speak_with_their_kokoro_namesakes() {
    let mut settings = settings();
    // No worker here: the speech call gives up at once, and the generation
    // it created says which voice it was given.
    settings.gateway.speech_timeout_ms = 1;
    let app = spawn_app_with(settings).await;
    for (name, pack) in [
        ("nova", "af_nova"),
        ("Alloy", "af_alloy"),
        ("echo", "am_echo"),
        ("fable", "bm_fable"),
        ("onyx", "am_onyx"),
        ("marin", "af_heart"),
        ("af_bella(1)+af_sky(1)", ""),
    ] {
        let response = app
            .client
            .post(format!("{}/v1/audio/speech", app.address))
            .bearer_auth(&app.api_key)
            .json(&json!({"model": "tts-1", "input": "Hello.", "voice": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 504, "{name}");
        let id = response.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let g: Value = app
            .get(&format!("/v1/generations/{id}"))
            .await
            .json()
            .await
            .unwrap();
        let expected = if pack.is_empty() {
            "af_bella(1)+af_sky(1)".to_owned()
        } else {
            voice_id(pack)
        };
        assert_eq!(g["voiceId"], expected.as_str(), "{name}");
        if !pack.is_empty() {
            let voice: Value = app
                .get(&format!("/v1/voices/{expected}"))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(voice["engine"], "kokoro", "{name}");
        }
    }
}
