//! Voice previews through the whole stack: `GET /v1/voices/{id}/preview`
//! (and the recipe form) rendered by a real worker's engine, stored, and
//! served from the store the second time — the same bytes — without a
//! generation, a charge or a line of usage.

use std::io::Cursor;

use serde_json::{Value, json};

use crate::helpers::{rms, settings, start_stack};

/// GETs `path` and answers the status, the `X-Preview-Cache` header and
/// the body.
async fn fetch(stack: &testkit::stack::Stack, path: &str) -> (u16, String, Vec<u8>) {
    let response = stack.get(path).await;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-preview-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, cache, response.bytes().await.unwrap().to_vec())
}

fn samples(wav: &[u8]) -> (u32, Vec<i16>) {
    let mut reader = hound::WavReader::new(Cursor::new(wav.to_vec())).unwrap();
    let rate = reader.spec().sample_rate;
    (rate, reader.samples::<i16>().map(Result::unwrap).collect())
}

#[tokio::test]
async fn a_preview_is_rendered_once_then_served_from_the_store_and_charges_nothing() {
    let stack = start_stack(settings(1)).await;
    let workspace_before = stack.get_json("/v1/workspace").await;
    let usage_before = stack.get_json("/v1/usage?groupBy=key").await;

    // The default (Piper) voice, as WAV so the audio can be checked.
    let path = "/v1/voices/voice_8f2a1c/preview?format=wav";
    let (status, cache, first) = fetch(&stack, path).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    assert_eq!(cache, "miss");
    let (rate, audio) = samples(&first);
    let seconds = audio.len() as f64 / f64::from(rate);
    assert!((2.0..15.0).contains(&seconds), "{seconds} s");
    assert!(rms(&audio) > 300.0, "silence");

    let (status, cache, second) = fetch(&stack, path).await;
    assert_eq!(status, 200);
    assert_eq!(cache, "hit");
    assert_eq!(second, first, "the stored clip, byte for byte");

    // A Kokoro blend before it is saved, as MP3 (the default).
    let (status, cache, blend) =
        fetch(&stack, "/v1/voices/preview?recipe=af_bella(2)+af_sky(1)").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&blend));
    assert_eq!(cache, "miss");
    assert!(blend.len() > 10_000, "{} bytes of MP3", blend.len());
    let (_, cache, again) = fetch(&stack, "/v1/voices/preview?recipe=af_bella(2)+af_sky(1)").await;
    assert_eq!((cache.as_str(), again), ("hit", blend));

    // No generation, no credits, no usage.
    assert_eq!(stack.get_json("/v1/generations").await["data"], json!([]));
    let workspace_after: Value = stack.get_json("/v1/workspace").await;
    assert_eq!(
        workspace_after["creditsUsed"],
        workspace_before["creditsUsed"]
    );
    assert_eq!(stack.get_json("/v1/usage?groupBy=key").await, usage_before);
}
