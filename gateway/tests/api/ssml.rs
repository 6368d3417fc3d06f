//! SSML at request time: only the allow-list of `shared::ssml` passes,
//! `<audio>` (which made espeak-ng read any file of the worker) never does,
//! breaks are capped, and pauses alone may not exceed the audio a text may
//! produce. Every refusal is a 422 in the envelope, naming what is wrong,
//! with nothing stored, queued or charged.

use diesel::prelude::*;
use serde_json::{Value, json};

use shared::schema::{generations, workspaces};

use crate::helpers::*;

fn ssml(text: &str) -> Value {
    json!({"text": text, "textType": "ssml", "voiceId": "voice_734bbd", "format": "wav"})
}

/// Generations stored and credits used, over every workspace.
fn nothing_happened(app: &TestApp) {
    let mut c = connect(&app.settings);
    let rows: i64 = generations::table.count().get_result(&mut c).unwrap();
    assert_eq!(rows, 0, "a refused generation was stored");
    let used: Vec<i64> = workspaces::table
        .select(workspaces::credits_used)
        .load(&mut c)
        .unwrap();
    assert!(used.iter().all(|&u| u == 0), "credits used: {used:?}");
}

async fn refused(app: &TestApp, text: &str, code: &str) -> String {
    let body = assert_error(app.post_generation(&ssml(text)).await, 422, code).await;
    assert_eq!(body["error"]["param"], "text", "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn ssml_audio_naming_another_workspaces_file_or_etc_passwd_is_422_naming_audio() {
    let app = spawn_app().await;
    // Workspace A's audio on the store's disk, where the worker could read it.
    let (a_ws, _) = new_workspace(&app.settings, "victim", "scale");
    let a_dir = app.settings.storage.root.join(&a_ws);
    std::fs::create_dir_all(&a_dir).unwrap();
    let a_file = a_dir.join("gen_0192aaaa.wav");
    std::fs::write(&a_file, b"RIFF....WAVE").unwrap();

    for src in [
        a_file.display().to_string(),
        format!("file://{}", a_file.display()),
        "/etc/passwd".to_owned(),
    ] {
        for text in [
            format!("<speak>Hi.<audio src=\"{src}\"/></speak>"),
            format!("Hi.<audio src=\"{src}\">fallback</audio>"),
            format!(
                "<speak><p><prosody rate=\"slow\"><audio src=\"{src}\"/></prosody></p></speak>"
            ),
        ] {
            let message = refused(&app, &text, "invalid_ssml").await;
            assert!(message.contains("<audio>"), "{text}: {message}");
        }
    }
    nothing_happened(&app);
}

#[tokio::test]
async fn ssml_elements_attributes_dtds_and_processing_instructions_off_the_list_are_422() {
    let app = spawn_app().await;

    for (text, named) in [
        ("<speak><voice name=\"en\">x</voice></speak>", "<voice>"),
        (
            "<speak><break time=\"1s\" src=\"/etc/passwd\"/></speak>",
            "src",
        ),
        ("<speak><s xml:base=\"/etc/\">x</s></speak>", "xml:base"),
        (
            "<!DOCTYPE speak [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><speak>&x;</speak>",
            "DOCTYPE",
        ),
        (
            "<?xml-stylesheet href=\"/etc/passwd\"?><speak>x</speak>",
            "processing instruction",
        ),
        ("<speak>&x;</speak>", "not well-formed"),
        ("<speak><prosody rate=\"5%\">x</prosody></speak>", "rate"),
    ] {
        let message = refused(&app, text, "invalid_ssml").await;
        assert!(message.contains(named), "{text}: {message} lacks {named}");
    }
    nothing_happened(&app);
}

#[tokio::test]
async fn a_break_over_ten_seconds_is_422_naming_the_limit_and_charges_nothing() {
    let app = spawn_app().await;

    let message = refused(
        &app,
        "<speak>a<break time=\"20000s\"/>b</speak>",
        "invalid_ssml",
    )
    .await;

    assert!(message.contains("at most 10s"), "{message}");
    nothing_happened(&app);
}

#[tokio::test]
async fn breaks_adding_up_past_the_audio_ceiling_of_the_text_are_422_audio_too_long() {
    let app = spawn_app().await;
    // 20 breaks of 10 s in ~400 characters: 200 s of silence for 1 credit.
    let text = format!("<speak>a{}b</speak>", "<break time=\"10s\"/>".repeat(20));

    let message = refused(&app, &text, "audio_too_long").await;

    assert!(message.contains("200.0 s"), "{message}");
    nothing_happened(&app);
}

#[tokio::test]
async fn allowed_ssml_with_character_references_is_accepted() {
    let app = spawn_app().await;

    for text in [
        "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"en-US\">Caf&#233; &#xE9;<break time=\"10s\"/><say-as interpret-as=\"characters\">abc</say-as><sub alias=\"World Wide Web\">WWW</sub><mark name=\"m1\"/></speak>",
        "Hello <emphasis level=\"strong\">there</emphasis>, no speak element.",
    ] {
        let response = app.post_generation(&ssml(text)).await;
        assert_eq!(response.status().as_u16(), 202, "{text}");
    }
}
