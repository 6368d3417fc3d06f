//! The whole path, for real: API key → gateway → RabbitMQ → synth-worker
//! (engine processes) → object store → webhook-dispatcher → a local
//! receiver, then the audio downloaded through the signed `audioUrl`.
//! All four services run in this process on their own ports and talk over
//! real HTTP and AMQP; nothing is mocked.

use std::io::Cursor;
use std::time::Duration;

use serde_json::{Value, json};
use standardwebhooks::Webhook;
use testkit::eventually_within;
use testkit::receiver::Receiver;

use crate::helpers::{SEED, rms, settings, start_stack};

const EVENT_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn seed_request_travels_the_whole_path_and_arrives_as_a_signed_webhook_with_playable_audio() {
    let stack = start_stack(settings(2)).await;
    let receiver = Receiver::start().await;
    let hook: Value = stack
        .post(
            "/v1/webhooks",
            json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();

    // The seed's request, verbatim.
    let response = stack
        .post(
            "/v1/generations",
            json!({"text": SEED, "voiceId": "voice_8f2a1c", "format": "wav"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["status"], "processing");

    // The webhook arrives, signed.
    let delivered = eventually_within(EVENT_DEADLINE, "the webhook", || async {
        receiver.requests().into_iter().next()
    })
    .await;
    Webhook::new(&secret)
        .unwrap()
        .verify(&delivered.body, &delivered.header_map())
        .expect("signature verifies with the standardwebhooks crate");
    assert!(delivered.header("webhook-id").unwrap().starts_with("msg_"));
    let payload = delivered.json();
    assert_eq!(payload["event"], "generation.completed");
    let data = &payload["data"];
    let mut fields: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "audioUrl",
            "completedAt",
            "durationMs",
            "format",
            "id",
            "status",
            "voiceId"
        ]
    );
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["status"], "completed");
    assert_eq!(data["voiceId"], "voice_8f2a1c");
    assert_eq!(data["format"], "wav");
    let duration_ms = data["durationMs"].as_i64().unwrap();

    // The signed URL serves the audio without a key.
    let audio_url = data["audioUrl"].as_str().unwrap();
    let audio = reqwest::get(audio_url).await.unwrap();
    assert_eq!(audio.status().as_u16(), 200);
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let bytes = audio.bytes().await.unwrap().to_vec();

    // It is a valid WAV whose length is durationMs, and it is not silence.
    let mut wav = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
    let spec = wav.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let measured_ms = samples.len() as i64 * 1000 / i64::from(spec.sample_rate);
    assert!(
        (measured_ms - duration_ms).abs() <= 1,
        "{measured_ms} ms of audio, durationMs {duration_ms}"
    );
    assert!(
        (2_000..10_000).contains(&duration_ms),
        "{duration_ms} ms for the seed sentence"
    );
    let rms = rms(&samples);
    assert!(rms > 300.0, "RMS {rms}: silence");

    // The API agrees, and serves the same bytes with the key.
    let got = stack.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(got["status"], "completed");
    assert_eq!(got["durationMs"], duration_ms);
    let with_key = stack.get(&format!("/v1/generations/{id}/audio")).await;
    assert_eq!(with_key.bytes().await.unwrap().to_vec(), bytes);
}
