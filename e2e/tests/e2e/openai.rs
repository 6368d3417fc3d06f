//! `POST /v1/audio/speech` (OpenAI-compatible) through the whole stack:
//! gateway, RabbitMQ, a real worker and its engines; the answer is the
//! audio, and the request is an ordinary, charged generation.

use std::io::Cursor;

use serde_json::{Value, json};

use testkit::stack::Stack;

use crate::helpers::{SEED, completed_audio, rms, settings, start_stack};

async fn workspace_credits_used(stack: &Stack) -> i64 {
    let w = stack.get_json("/v1/workspace").await;
    w["creditsUsed"].as_i64().unwrap()
}

#[tokio::test]
async fn speech_answers_with_wav_audio_and_is_an_ordinary_charged_generation() {
    let stack = start_stack(settings(1)).await;

    let response = stack
        .post(
            "/v1/audio/speech",
            json!({"model": "tts-1", "voice": "alloy", "input": SEED, "response_format": "wav"}),
        )
        .await;

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(response.headers()["x-credits-charged"], "1");
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.bytes().await.unwrap().to_vec();
    let mut wav = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
    assert_eq!(wav.spec().sample_rate, 24_000, "OpenAI's rate");
    // Streamed: the header cannot know the length, so read to the end.
    let samples: Vec<i16> = wav.samples::<i16>().map_while(Result::ok).collect();
    assert_eq!(samples.len(), (bytes.len() - 44) / 2);
    assert!(samples.len() > 24_000, "{} samples", samples.len());
    let rms = rms(&samples);
    assert!(rms > 300.0, "RMS {rms}: silence");

    // An ordinary generation: listed, completed, charged once.
    let got = stack.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(got["status"], "completed");
    // alloy is Kokoro's Alloy where its pack is installed, else Joe.
    assert_eq!(
        got["voiceId"],
        gateway::routes::openai::resolve_voice("alloy").as_str()
    );
    assert_eq!(got["format"], "wav");
    let listed = stack.get_json("/v1/generations").await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert_eq!(workspace_credits_used(&stack).await, 1);
}

#[tokio::test]
async fn speech_defaults_to_mp3_and_speaks_opus_flac_and_pcm() {
    let stack = start_stack(settings(2)).await;
    let cases = [
        (json!({}), "audio/mpeg"),
        (json!({"response_format": "opus"}), "audio/ogg"),
        (json!({"response_format": "flac"}), "audio/flac"),
        (json!({"response_format": "pcm", "speed": 1.5}), "audio/L16"),
    ];
    for (extra, content_type) in cases {
        let mut body = json!({"model": "gpt-4o-mini-tts", "voice": {"id": "voice_3c71e9"}, "input": "Hello there."});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = stack.post("/v1/audio/speech", body).await;
        assert_eq!(response.status().as_u16(), 200, "{content_type}");
        assert_eq!(response.headers()["content-type"], content_type);
        let bytes = response.bytes().await.unwrap();
        match content_type {
            "audio/mpeg" => assert!(
                bytes.starts_with(b"ID3") || (bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0),
                "not MP3"
            ),
            "audio/ogg" => assert!(bytes.starts_with(b"OggS")),
            "audio/flac" => assert!(bytes.starts_with(b"fLaC")),
            _ => assert!(
                bytes.len() > 4_800 && bytes.len() % 2 == 0,
                "{}",
                bytes.len()
            ),
        }
    }
    assert_eq!(workspace_credits_used(&stack).await, 4);
}

#[tokio::test]
async fn speech_refuses_what_it_cannot_do_in_the_error_envelope_without_charging() {
    let stack = start_stack(settings(1)).await;
    let base = json!({"model": "tts-1", "voice": "alloy", "input": "Hi."});
    let cases = [
        (
            "response_format",
            json!("aac"),
            400,
            "unsupported_response_format",
        ),
        ("model", json!("whisper-1"), 400, "invalid_model"),
        ("speed", json!(4.0), 400, "invalid_speed"),
        ("voice", json!("nobody"), 422, "unknown_voice"),
        ("input", json!("   "), 422, "text_empty"),
        (
            "stream_format",
            json!("sse"),
            400,
            "unsupported_stream_format",
        ),
    ];
    for (param, value, status, code) in cases {
        let mut body = base.clone();
        body[param] = value;
        let response = stack.post("/v1/audio/speech", body).await;
        assert_eq!(response.status().as_u16(), status, "{param}");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{e}");
        assert_eq!(e["error"]["param"], param, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().len() > 10);
        assert!(e["error"]["type"].is_string());
    }
    let unauthenticated = reqwest::Client::new()
        .post(format!("{}/v1/audio/speech", stack.gateway))
        .bearer_auth("vp_not_a_key")
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    assert_eq!(workspace_credits_used(&stack).await, 0);
}

#[tokio::test]
async fn speech_times_out_with_504_and_the_generation_which_finishes_charged_once() {
    let mut s = settings(1);
    s.gateway.speech_timeout_ms = 1;
    let stack = start_stack(s).await;

    let response = stack
        .post(
            "/v1/audio/speech",
            json!({"model": "tts-1", "voice": "nova", "input": SEED}),
        )
        .await;

    assert_eq!(response.status().as_u16(), 504);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/v1/generations/{id}")
    );
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["code"], "generation_timeout");
    assert!(e["error"]["message"].as_str().unwrap().contains(&id));
    // The generation goes on, completes, and is charged exactly once.
    let audio = completed_audio(&stack, &id).await;
    assert!(audio.starts_with(b"ID3") || (audio[0] == 0xFF && audio[1] & 0xE0 == 0xE0));
    assert_eq!(workspace_credits_used(&stack).await, 1);
}

/// `sentences` sentences of plain prose, each different.
fn prose(sentences: usize) -> String {
    (0..sentences)
        .map(|i| {
            format!("Sentence number {i} tells a short story about the harbour and its boats. ")
        })
        .collect()
}

#[tokio::test]
async fn speech_streams_its_first_audio_while_the_rest_is_still_rendering() {
    // One engine renders the chunks one after another: 10,000 characters
    // take many times as long as the first sentence.
    let stack = start_stack(settings(1)).await;
    let text = prose(140);
    assert!(text.len() > 10_000);
    let mut response = stack
        .post(
            "/v1/audio/speech",
            json!({"model": "tts-1", "voice": "voice_3c71e9", "input": text, "response_format": "pcm"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "a streamed answer has no length"
    );
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    // The order, not a time: audio has arrived and the generation is
    // still rendering.
    let got = stack.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(got["status"], "processing", "{got}");

    let mut streamed = first.to_vec();
    let mut chunks = 1;
    while let Some(more) = response.chunk().await.unwrap() {
        streamed.extend_from_slice(&more);
        chunks += 1;
    }
    assert!(chunks > 2, "{chunks} chunks");
    let stored = completed_audio(&stack, &id).await;
    assert_eq!(streamed.len(), stored.len(), "the same duration");
    assert!(streamed == stored, "the stream is the stored file");
    let credits = text.chars().count().div_ceil(1000) as i64;
    assert_eq!(workspace_credits_used(&stack).await, credits);
}

#[tokio::test]
async fn a_create_with_stream_true_streams_the_audio_that_is_stored_and_charged_once() {
    let stack = start_stack(settings(1)).await;
    let text = prose(60);
    let mut response = stack
        .post(
            "/v1/generations?stream=true",
            json!({"text": text, "voiceId": "voice_3c71e9", "format": "pcm"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("content-length").is_none());
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/v1/generations/{id}")
    );
    let first = response.chunk().await.unwrap().expect("a first chunk");
    // The order, not a time: audio has arrived while it still renders.
    let got = stack.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(got["status"], "processing", "{got}");
    let mut streamed = first.to_vec();
    while let Some(more) = response.chunk().await.unwrap() {
        streamed.extend_from_slice(&more);
    }
    let stored = completed_audio(&stack, &id).await;
    assert!(streamed == stored, "the stream is the stored file");
    let credits = text.chars().count().div_ceil(1000) as i64;
    assert_eq!(workspace_credits_used(&stack).await, credits);
}

#[tokio::test]
async fn streamed_wav_mp3_and_opus_are_the_stored_files_and_flac_comes_whole() {
    let stack = start_stack(settings(2)).await;
    let text = prose(6);
    for format in ["wav", "mp3", "opus", "flac"] {
        let response = stack
            .post(
                "/v1/audio/speech",
                json!({"model": "tts-1", "voice": "voice_3c71e9", "input": text, "response_format": format}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "{format}");
        let streamed_answer = response.headers().get("content-length").is_none();
        let id = response.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let streamed = response.bytes().await.unwrap().to_vec();
        let stored = completed_audio(&stack, &id).await;
        match format {
            "wav" => {
                assert!(streamed_answer);
                // A stream cannot know its length: only the header's
                // sizes differ.
                assert_eq!(streamed[44..], stored[44..]);
                let wav = hound::WavReader::new(Cursor::new(&stored)).unwrap();
                assert_eq!(wav.spec().sample_rate, 24_000);
                assert_eq!(
                    wav.duration() as usize,
                    (streamed.len() - 44) / 2,
                    "the same duration"
                );
            }
            "mp3" => {
                assert!(streamed_answer);
                // Only the first frame differs: the LAME tag, known last.
                assert_eq!(streamed.len(), stored.len());
                let differ = streamed.iter().zip(&stored).rposition(|(a, b)| a != b);
                assert!(differ.is_none_or(|at| at < 400), "{differ:?}");
            }
            "opus" => {
                assert!(streamed_answer);
                assert!(streamed == stored, "the stream is the stored file");
            }
            _ => {
                assert!(!streamed_answer, "FLAC is answered whole");
                assert!(streamed == stored);
            }
        }
    }
}
