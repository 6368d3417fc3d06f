//! The encoder against the package's own embeddings
//! (`tests/fixtures/speaker/make.py` wrote the WAVs and `expected.json`),
//! and against itself: one voice on two texts must score clearly above two
//! voices on one text. Needs `deploy/fetch-models`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speaker")
}

fn encoder() -> SpeakerEncoder {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models");
    SpeakerEncoder::load(
        &models.join("onnxruntime/libonnxruntime.so.1.32.0"),
        &models.join(MODEL_FILE),
        1,
    )
    .unwrap()
}

fn wav(name: &str) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::open(fixtures().join(name)).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16), "{name}");
    let samples = reader.samples::<i16>().map(Result::unwrap).collect();
    (samples, spec.sample_rate)
}

fn embed(encoder: &mut SpeakerEncoder, name: &str) -> Embedding {
    let (samples, rate) = wav(name);
    encoder.embed(&samples, rate).unwrap()
}

#[test]
fn embeddings_match_the_reference_package_within_1e_3_cosine_distance() {
    let expected: HashMap<String, Vec<f32>> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let mut encoder = encoder();
    for name in ["joe-a.wav", "joe-b.wav", "espeak-a.wav"] {
        let ours = embed(&mut encoder, name);
        let theirs = Embedding(expected[name].clone().try_into().unwrap());
        let distance = 1.0 - ours.cosine(&theirs);
        eprintln!("{name}: cosine distance to the package's embedding {distance:.2e}");
        assert!(distance < 1e-3, "{name}: cosine distance {distance}");
        let norm: f32 = ours.0.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{name}: norm {norm}");
    }
}

#[test]
fn one_voice_on_two_texts_scores_clearly_above_two_voices_on_one_text() {
    let mut encoder = encoder();
    let joe_a = embed(&mut encoder, "joe-a.wav");
    let joe_b = embed(&mut encoder, "joe-b.wav");
    let espeak_a = embed(&mut encoder, "espeak-a.wav");
    let same = joe_a.cosine(&joe_b);
    let different = joe_a.cosine(&espeak_a);
    eprintln!("cosine: Joe on two texts {same:.4}, Joe and espeak-ng on one text {different:.4}");
    assert!(
        same > 0.7 && different < same - 0.3,
        "same voice {same}, different voices {different}"
    );
}

#[test]
fn audio_shorter_than_a_tenth_of_a_second_is_refused() {
    let mut encoder = encoder();
    let err = encoder.embed(&[100; 2_000], 22_050).unwrap_err();
    assert!(matches!(err, EncoderError::TooShort { .. }), "{err}");
    // Just long enough: one window of mostly padding, still unit length.
    let tone: Vec<i16> = (0..MIN_SAMPLES)
        .map(|n| ((n as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let e = encoder.embed(&tone, 16_000).unwrap();
    let norm: f32 = e.0.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
}

#[test]
fn a_missing_model_names_fetch_models() {
    let err = SpeakerEncoder::load(
        Path::new("/nonexistent/libonnxruntime.so"),
        Path::new("/nonexistent/embedder.int8.onnx"),
        1,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("deploy/fetch-models"), "{err}");
}
