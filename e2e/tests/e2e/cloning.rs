//! Cloned voices through the whole stack: samples of a low, slow speaker
//! and of a high, fast one are posted to the gateway, and the worker's
//! renders in those voices are measured — the first lower and slower.
//! Also: the word timestamps of a real render through the gateway.

use serde_json::{Value, json};
use shared::voices::analysis;
use synth_worker::engine::{EnginePool, EngineRequest};

use testkit::stack::Stack;
use testkit::{eventually, wav};

use crate::helpers::{SEED, engine_program, settings, start_stack};

const BOUNDARY: &str = "voiceprod-cloning-test";

/// Posts samples as a voice to clone onto `engine`; the answer's status
/// and body.
pub async fn post_clone(
    stack: &Stack,
    name: &str,
    engine: &str,
    samples: &[Vec<u8>],
) -> (u16, Value) {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"engine\"\r\n\r\n{engine}\r\n"
    )
    .into_bytes();
    for (i, sample) in samples.iter().enumerate() {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"samples\"; filename=\"s{i}.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(sample);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let response = stack
        .client
        .post(format!("{}/v1/voices", stack.gateway))
        .bearer_auth(&stack.api_key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn clone_voice(stack: &Stack, name: &str, sample: Vec<u8>) -> Value {
    let (status, voice) = post_clone(stack, name, "espeak-ng", &[sample]).await;
    assert_eq!(status, 201, "{voice}");
    voice
}

/// Posts a generation and waits for it to complete: (id, row as JSON).
async fn generate(stack: &Stack, voice: &str, text: &str) -> (String, Value) {
    let accepted: Value = stack
        .post(
            "/v1/generations",
            json!({"text": text, "voiceId": voice, "format": "wav"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    let done = eventually("the generation to complete", || async {
        let g = stack.get_json(&format!("/v1/generations/{id}")).await;
        // A 429 (polled faster than the key's rate) is not an answer.
        (g["status"].is_string() && g["status"] != "processing").then_some(g)
    })
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    (id, done)
}

async fn measured(stack: &Stack, id: &str) -> analysis::Analysis {
    let bytes = stack
        .get(&format!("/v1/generations/{id}/audio"))
        .await
        .bytes()
        .await
        .unwrap();
    analysis::analyse(&[analysis::decode(0, &bytes).unwrap()]).unwrap()
}

#[tokio::test]
async fn a_voice_cloned_from_a_low_slow_sample_renders_lower_and_slower_than_one_from_a_high_fast_sample()
 {
    let stack = start_stack(settings(2)).await;
    let pool = EnginePool::start(engine_program(), 2).await.unwrap();
    let speaker = |voice: &str, pitch, rate| EngineRequest {
        text: [SEED; 4].join(" "),
        ssml: false,
        voice: voice.to_owned(),
        rate,
        pitch,
        range: 50,
        piper: None,
        kokoro: None,
        max_samples: None,
    };
    let (low_speaker, high_speaker) = (speaker("en-us+m3", 10, 130), speaker("en-us+f2", 90, 260));
    let (low, high) = tokio::join!(pool.render(&low_speaker), pool.render(&high_speaker));
    let (low, high) = (low.unwrap(), high.unwrap());

    let low_voice = clone_voice(&stack, "Low", wav(&low.samples, low.sample_rate)).await;
    let high_voice = clone_voice(&stack, "High", wav(&high.samples, high.sample_rate)).await;
    let text = [SEED; 2].join(" ");
    let (low_id, low_row) = generate(&stack, low_voice["id"].as_str().unwrap(), &text).await;
    let (high_id, high_row) = generate(&stack, high_voice["id"].as_str().unwrap(), &text).await;

    let (low_out, high_out) = (
        measured(&stack, &low_id).await,
        measured(&stack, &high_id).await,
    );
    assert!(
        low_out.pitch_median_hz * 1.5 < high_out.pitch_median_hz,
        "low voice at {:.0} Hz, high voice at {:.0} Hz",
        low_out.pitch_median_hz,
        high_out.pitch_median_hz
    );
    // Each follows its speaker's pitch (within 20 %).
    let sample_low = low_voice["analysis"]["pitchMedianHz"].as_f64().unwrap();
    let sample_high = high_voice["analysis"]["pitchMedianHz"].as_f64().unwrap();
    assert!(
        (low_out.pitch_median_hz / sample_low - 1.0).abs() < 0.2,
        "{sample_low} → {low_out:?}"
    );
    assert!(
        (high_out.pitch_median_hz / sample_high - 1.0).abs() < 0.2,
        "{sample_high} → {high_out:?}"
    );
    // The slow speaker's voice takes clearly longer over the same text.
    let (low_ms, high_ms) = (
        low_row["durationMs"].as_f64().unwrap(),
        high_row["durationMs"].as_f64().unwrap(),
    );
    assert!(low_ms > high_ms * 1.4, "low {low_ms} ms, high {high_ms} ms");

    // The word timestamps of that render, through the gateway.
    let alignment = stack
        .get_json(&format!("/v1/generations/{low_id}/alignment"))
        .await;
    let words = alignment["words"].as_array().unwrap();
    assert_eq!(words.len(), text.split_whitespace().count());
    assert!(words.last().unwrap()["endMs"].as_f64().unwrap() <= low_ms);
    let srt = stack
        .get(&format!("/v1/generations/{low_id}/alignment?format=srt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(srt.starts_with("1\n00:00:00,"), "{srt}");
}

/// A real person (LibriVox, 24.7 s) cloned onto Kokoro through the whole
/// stack: 202 `processing`, the worker's search, `ready` with the
/// similarity it reached and a recipe of Kokoro packs, then a generation
/// in the voice renders Kokoro's 24 kHz speech. The search is kept small
/// (4 renders): this checks the path, `synth-worker`'s speaker tests and
/// the clone benchmark measure the quality.
#[tokio::test]
async fn a_real_person_cloned_onto_kokoro_is_processing_then_ready_with_its_similarity_and_speaks()
{
    let mut s = settings(1);
    s.cloning.max_renders = 4;
    s.cloning.scan_interval_ms = 1_000;
    let stack = start_stack(s).await;

    let (status, voice) =
        post_clone(&stack, "Reader", "kokoro", &testkit::librivox_samples()).await;
    assert_eq!(status, 202, "{voice}");
    assert_eq!(
        (&voice["status"], &voice["engine"], &voice["type"]),
        (&json!("processing"), &json!("kokoro"), &json!("cloned")),
        "{voice}"
    );
    let id = voice["id"].as_str().unwrap().to_owned();
    // Not usable before it is made.
    let early = stack
        .post(
            "/v1/generations",
            json!({"text": SEED, "voiceId": id, "format": "wav"}),
        )
        .await;
    let early_status = early.status().as_u16();
    let early_body: Value = early.json().await.unwrap();
    if early_status != 202 {
        assert_eq!(
            (early_status, &early_body["error"]["code"]),
            (422, &json!("voice_not_ready"))
        );
    }

    // Polled as a client would, once a second.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let ready = loop {
        let v = stack.get_json(&format!("/v1/voices/{id}")).await;
        if v["status"] != "processing" {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clone did not finish within 600 s: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    assert_eq!(ready["status"], "ready", "{ready}");
    let similarity = ready["similarity"].as_f64().unwrap();
    assert!((0.3..1.0).contains(&similarity), "{ready}");
    assert!(ready["natural"].as_bool().unwrap(), "{ready}");
    let recipe = ready["recipe"].as_array().unwrap();
    assert!((1..=8).contains(&recipe.len()), "{ready}");
    let total: f64 = recipe.iter().map(|p| p["weight"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-3, "{ready}");

    let (_, done) = generate(&stack, &id, SEED).await;
    assert_eq!(done["voiceId"], id.as_str());
    // The key's rate (20 a second) refills after the polling.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let audio = stack
        .get(&format!(
            "/v1/generations/{}/audio",
            done["id"].as_str().unwrap()
        ))
        .await
        .bytes()
        .await
        .unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(audio)).unwrap();
    assert_eq!(reader.spec().sample_rate, 24_000, "Kokoro renders it");
    assert!(reader.duration() > 24_000, "a second of speech or more");
}
