//! SSML in the worker and its engines: a queued job is parsed again and
//! only its canonical form reaches an engine; libespeak-ng itself refuses
//! every URI, so `<audio src>` that bypassed the validator plays nothing;
//! and audio beyond what a text may produce fails permanently (refunded),
//! never as a retried engine crash.

use std::path::Path;

use shared::amqp::Outcome;
use synth_worker::engine::{EnginePool, EngineRequest};
use synth_worker::handle;

use crate::helpers::*;

/// An espeak-ng preset (Emil), not the neural default.
const ESPEAK_VOICE: &str = "voice_734bbd";

/// A request as the wire carries it, straight to the engine: no
/// validator, no canonical form, no audio ceiling.
fn raw_request(text: &str, ssml: bool) -> EngineRequest {
    serde_json::from_value(serde_json::json!({
        "text": text, "ssml": ssml, "voice": "en-us", "rate": 175, "pitch": 50, "range": 50,
    }))
    .unwrap()
}

/// 1.5 s of a loud 1 kHz tone at espeak-ng's own rate (22,050 Hz mono
/// s16), so libespeak-ng would play it as it is, without `sox`.
fn write_tone(path: &Path) -> Vec<i16> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tone: Vec<i16> = (0..33_075)
        .map(|i| {
            let t = f64::from(i) / 22_050.0;
            (20_000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
        })
        .collect();
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in &tone {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    tone
}

/// The best normalised correlation of `needle` with any window of
/// `haystack` (1.0: the needle's samples are in there, at some gain).
fn max_correlation(haystack: &[i16], needle: &[i16]) -> f64 {
    let n: Vec<f64> = needle.iter().map(|&s| f64::from(s)).collect();
    let n_energy: f64 = n.iter().map(|s| s * s).sum();
    let h: Vec<f64> = haystack.iter().map(|&s| f64::from(s)).collect();
    let mut best: f64 = 0.0;
    for lag in 0..h.len().saturating_sub(n.len()) {
        let window = &h[lag..lag + n.len()];
        let energy: f64 = window.iter().map(|s| s * s).sum();
        if energy == 0.0 {
            continue;
        }
        let dot: f64 = window.iter().zip(&n).map(|(a, b)| a * b).sum();
        best = best.max(dot / (energy * n_energy).sqrt());
    }
    best
}

#[tokio::test]
async fn engine_never_plays_a_file_named_by_audio_in_ssml_that_bypassed_the_validator() {
    let dir = std::env::temp_dir().join(format!("voiceprod-tone-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("another-workspace.wav");
    let tone = write_tone(&path);
    let needle = &tone[..1_102]; // 50 ms
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();

    for (text, ssml) in [
        (
            format!("<speak>Hi.<audio src=\"{}\"/></speak>", path.display()),
            true,
        ),
        (
            format!(
                "<speak>Hi.<audio src=\"file://{}\">x</audio></speak>",
                path.display()
            ),
            true,
        ),
        (format!("Hi.<audio src=\"{}\"/>", path.display()), false),
        (
            format!(
                "<speak>Hi.&lt;audio src=\"{}\"/&gt;</speak>",
                path.display()
            ),
            true,
        ),
    ] {
        let audio = pool.render(&raw_request(&text, ssml)).await.unwrap();

        let seconds = audio.samples.len() as f64 / 22_050.0;
        let correlation = max_correlation(&audio.samples, needle);
        assert!(
            correlation < 0.6,
            "{text}: the file's tone is in the output (correlation {correlation:.3}, {seconds:.2} s)"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn engine_survives_audio_naming_etc_passwd_and_keeps_its_process() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    let pid = pool.idle_pids()[0];

    let result = pool
        .render(&raw_request(
            "<speak>Hi.<audio src=\"/etc/passwd\"/> there.</speak>",
            true,
        ))
        .await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        pool.idle_pids(),
        vec![pid],
        "the engine process was replaced"
    );
}

#[tokio::test]
async fn a_queued_job_whose_ssml_has_audio_fails_as_invalid_ssml_and_is_refunded() {
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let mut new = new_generation(ws, "<speak>Hi.<audio src=\"/etc/passwd\"/></speak>");
    new.text_type = "ssml".to_owned();
    new.voice_id = ESPEAK_VOICE.to_owned();
    let g = insert_generation(&ctx.db, new).await;
    assert_eq!(workspace(&ctx.db, ws).await.credits_used, 1);

    assert_eq!(handle(&ctx, job(g.id, false)).await, Outcome::Ack);

    let row = find(&ctx.db, g.id).await;
    let error = row.error.unwrap();
    assert_eq!(
        (row.status.as_str(), &error["code"]),
        ("failed", &serde_json::json!("invalid_ssml"))
    );
    assert!(
        error["message"].as_str().unwrap().contains("<audio>"),
        "{error}"
    );
    assert_eq!(workspace(&ctx.db, ws).await.credits_used, 0, "not refunded");
}

#[tokio::test]
async fn a_queued_twenty_thousand_second_break_fails_permanently_without_rendering() {
    let (_settings, ctx) = ctx().await;
    let ws = insert_workspace(&ctx.db, 100).await;
    let mut new = new_generation(ws, "<speak>a<break time=\"20000s\"/>b</speak>");
    new.text_type = "ssml".to_owned();
    new.voice_id = ESPEAK_VOICE.to_owned();
    let g = insert_generation(&ctx.db, new).await;

    assert_eq!(handle(&ctx, job(g.id, false)).await, Outcome::Ack);

    let row = find(&ctx.db, g.id).await;
    assert_eq!(row.status, "failed", "rendered {:?} ms", row.duration_ms);
    assert_eq!(row.error.unwrap()["code"], "invalid_ssml");
    assert_eq!(workspace(&ctx.db, ws).await.credits_used, 0, "not refunded");
}

#[tokio::test]
async fn engine_stops_at_its_sample_ceiling_and_refuses_permanently_keeping_its_process() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    let pid = pool.idle_pids()[0];
    // The seed sentence is ~4 s; its request may produce 1 s.
    let mut request = raw_request(&format!("<speak>{SEED}<break time=\"10s\"/></speak>"), true);
    request.max_samples = Some(22_050);

    let err = pool.render(&request).await.unwrap_err();

    assert!(err.is_permanent(), "{err:?}");
    assert!(
        matches!(&err, synth_worker::engine::EngineError::Refused { code, .. } if code == "audio_too_long"),
        "{err:?}"
    );
    assert_eq!(
        pool.idle_pids(),
        vec![pid],
        "the engine process was replaced"
    );
    request.max_samples = None;
    assert!(pool.render(&request).await.is_ok());
}
