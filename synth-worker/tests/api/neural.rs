//! Piper neural voices on real engine processes with ONNX Runtime and the
//! default voice's model (`deploy/fetch-models` installs both): length
//! that fits the text, speed, SSML breaks, the phoneme mapping against the
//! `espeak-ng` command line, and the start-up error without the model.

use shared::formats::AudioFormat;
use shared::voices;
use synth_worker::State;
use synth_worker::engine::piper::{ModelConfig, clauses, sentence_phonemes};
use synth_worker::render;
use synth_worker::text::sentences;

use crate::helpers::*;

fn row(text: &str, speed: f32, ssml: bool) -> shared::models::Generation {
    shared::models::Generation {
        text_type: if ssml { "ssml" } else { "text" }.to_owned(),
        ..shared::models::Generation::unsaved(
            voices::DEFAULT_VOICE_ID,
            text,
            AudioFormat::Wav.as_str(),
            speed,
        )
    }
}

/// Milliseconds of audio the neural voice renders for `text`.
async fn duration_ms(ctx: &State, text: &str, speed: f32, ssml: bool) -> i64 {
    let voice = voices::preset(voices::DEFAULT_VOICE_ID).unwrap();
    let plan = render::plan(&row(text, speed, ssml), &voice.voice, &ctx.voices_dir).unwrap();
    assert!(plan.neural);
    let produced = render::produce(&ctx.neural, &plan).await.unwrap();
    produced.duration_ms
}

#[tokio::test]
async fn the_default_voice_is_neural_and_its_length_fits_the_text_and_the_speed() {
    let (_, ctx) = ctx().await;
    assert_eq!(
        voices::preset(voices::DEFAULT_VOICE_ID)
            .unwrap()
            .voice
            .engine(),
        voices::EngineKind::Piper
    );
    let one = duration_ms(&ctx, SEED, 1.0, false).await;
    let three = duration_ms(&ctx, &[SEED; 3].join(" "), 1.0, false).await;
    let fast = duration_ms(&ctx, SEED, 2.0, false).await;
    // ~13 words: natural speech is 2–5 words a second.
    assert!((2_500..=7_000).contains(&one), "{one} ms for the seed");
    let ratio = three as f64 / one as f64;
    assert!(
        (2.6..=3.4).contains(&ratio),
        "3× the text: {ratio:.2}× the audio"
    );
    let speedup = fast as f64 / one as f64;
    assert!(
        (0.4..=0.7).contains(&speedup),
        "speed 2.0: {speedup:.2}× the audio"
    );
}

#[tokio::test]
async fn ssml_breaks_become_silence_on_the_neural_voice() {
    let (_, ctx) = ctx().await;
    let plain = duration_ms(&ctx, "<speak>Hello there. Goodbye now.</speak>", 1.0, true).await;
    let paused = duration_ms(
        &ctx,
        r#"<speak>Hello there.<break time="1500ms"/>Goodbye now.</speak>"#,
        1.0,
        true,
    )
    .await;
    let added = paused - plain;
    assert!(
        (1_300..=1_700).contains(&added),
        "a 1.5 s break added {added} ms"
    );
}

#[tokio::test]
async fn a_worker_without_the_default_model_refuses_to_start_and_names_the_fetch_command() {
    let mut s = tokio::task::spawn_blocking(|| settings(1)).await.unwrap();
    let empty = std::env::temp_dir().join(format!("no-voices-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&empty).unwrap();
    s.piper.voices_dir = empty.clone();
    let error = State::build(&s)
        .await
        .err()
        .expect("the worker must not start");
    let message = format!("{error:#}");
    assert!(message.contains("deploy/fetch-models"), "{message}");
    assert!(message.contains("en_US-joe-medium.onnx"), "{message}");
    assert!(message.contains(&empty.display().to_string()), "{message}");

    let mut s = tokio::task::spawn_blocking(|| settings(1)).await.unwrap();
    s.piper.onnxruntime = empty.join(shared::settings::ONNXRUNTIME_LIB);
    let message = format!("{:#}", State::build(&s).await.err().expect("no runtime"));
    assert!(message.contains("deploy/fetch-models"), "{message}");
    assert!(message.contains("libonnxruntime.so"), "{message}");
}

/// Sentences with numbers, contractions, abbreviations, clause marks.
const SENTENCES: &[&str] = &[
    "Welcome to Voice Production AI. Let's build something that speaks.",
    "The quick brown fox jumps over the lazy dog!",
    "Dr. Smith paid $4.50 for 3 apples on May 5th, 2026; was it worth it?",
    "However, the results were clear: nobody expected them.",
    "She said \"hello\" and left at 10:30 in the morning.",
    "Reading, writing, and arithmetic.",
    "I can't believe it's already November... isn't it strange?",
];

/// Words of a phoneme string, without Piper's kept punctuation.
fn bare(phonemes: &str) -> String {
    phonemes
        .replace([',', '.', ';', ':', '!', '?'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn piper_phonemes_match_the_espeak_ng_command_line_and_map_to_known_ids() {
    use unicode_normalization::UnicodeNormalization;

    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/voices");
    let config = ModelConfig::load(&models.join("en_US-joe-medium.onnx")).unwrap();
    for text in SENTENCES {
        let mut ours = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for (s, e) in sentences(text) {
            let sentence: String = chars[s..e].iter().collect();
            let owned = sentence.clone();
            let phonemes = with_espeak(move |e| sentence_phonemes(e, "en-us", &owned).unwrap());
            // Each clause's punctuation is kept, as Piper does.
            for (_, punct) in clauses(&sentence) {
                if let Some(p) = punct {
                    assert!(phonemes.contains(p), "{p} missing from {phonemes}");
                }
            }
            let (ids, missing) = config.phoneme_ids(&phonemes);
            assert!(missing.is_empty(), "{text}: {missing:?} not in the map");
            assert_eq!(ids.len(), 2 * phonemes.chars().count() + 3);
            ours.push(bare(&phonemes));
        }
        let cli = std::process::Command::new("espeak-ng")
            .args(["-q", "--ipa", "-v", "en-us", text])
            .output()
            .expect("the espeak-ng command");
        assert!(cli.status.success());
        let theirs: String = bare(&String::from_utf8(cli.stdout).unwrap())
            .nfd()
            .collect();
        assert_eq!(ours.join(" "), theirs, "{text}");
    }
}
