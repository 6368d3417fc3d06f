//! `preview.v1` jobs driven through `handle_in` on a real engine and store:
//! the clip lands at the key the job's voice, text and format derive (and
//! is not rendered again), a job whose key is another is rejected
//! unrendered, and a voice this worker cannot render leaves its reason.

use object_store::ObjectStoreExt;
use shared::amqp::{Incoming, Lane, Outcome};
use shared::formats::AudioFormat;
use shared::messages::JobMessage;
use shared::previews;
use shared::voices::{EngineVoice, PiperVoice};
use synth_worker::consumer::handle_in;

use crate::helpers::*;

fn espeak_voice() -> EngineVoice {
    EngineVoice {
        espeak_voice: "en-us".into(),
        variant: None,
        pitch: 50,
        range: 50,
        rate: 175,
        piper: None,
        kokoro: None,
    }
}

fn preview_job(voice: &EngineVoice, key: &str) -> Incoming {
    let job = JobMessage::PreviewV1 {
        voice: voice.clone(),
        text: previews::text_for(voice).to_owned(),
        format: AudioFormat::Wav,
        key: key.to_owned(),
    };
    Incoming {
        data: serde_json::to_vec(&job).unwrap(),
        redelivered: false,
        message_id: Some("preview-test".into()),
        published_at: Some(chrono::Utc::now()),
    }
}

fn key_of(voice: &EngineVoice) -> object_store::path::Path {
    previews::key(voice, previews::text_for(voice), AudioFormat::Wav)
}

#[tokio::test]
async fn a_preview_job_stores_speech_at_its_key_once() {
    let (settings, ctx) = ctx().await;
    let voice = espeak_voice();
    let key = key_of(&voice);

    let outcome = handle_in(&ctx, Lane::Interactive, preview_job(&voice, key.as_ref())).await;

    assert_eq!(outcome, Outcome::Ack);
    let path = settings.storage.root.join(key.as_ref());
    let wav = std::fs::read(&path).unwrap();
    let mut reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    let rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let seconds = samples.len() as f64 / f64::from(rate);
    assert!((2.0..15.0).contains(&seconds), "{seconds} s");
    assert!(rms(&samples) > 300.0, "silence");

    // A second copy finds the clip and leaves it as it is.
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    let again = handle_in(&ctx, Lane::Interactive, preview_job(&voice, key.as_ref())).await;
    assert_eq!(again, Outcome::Ack);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        written
    );
}

#[tokio::test]
async fn a_preview_job_whose_key_is_not_its_voices_is_rejected_unrendered() {
    let (settings, ctx) = ctx().await;
    let voice = espeak_voice();
    let elsewhere = "ws_0190f5d2a0b47c1e9a3b5d7f0e2c4a6b/gen_0190f5d2a0b47c1e9a3b5d7f0e2c4a6b.wav";

    let outcome = handle_in(&ctx, Lane::Interactive, preview_job(&voice, elsewhere)).await;

    assert_eq!(outcome, Outcome::Reject);
    assert!(!settings.storage.root.join(elsewhere).exists());
    assert!(!settings.storage.root.join(key_of(&voice).as_ref()).exists());
}

#[tokio::test]
async fn a_preview_this_worker_cannot_render_leaves_its_reason() {
    let (_settings, ctx) = ctx().await;
    let mut voice = espeak_voice();
    voice.piper = Some(PiperVoice {
        model: "not-installed-here".into(),
        speaker: None,
    });
    let key = key_of(&voice);

    let outcome = handle_in(&ctx, Lane::Interactive, preview_job(&voice, key.as_ref())).await;

    assert_eq!(outcome, Outcome::Ack);
    let note = ctx
        .store
        .get(&previews::error_key(&key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let failure: previews::Failure = serde_json::from_slice(&note).unwrap();
    assert_eq!(failure.code, "voice_unavailable");
    assert!(matches!(
        ctx.store.head(&key).await,
        Err(object_store::Error::NotFound { .. })
    ));
}
