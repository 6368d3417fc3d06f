//! Every Kokoro preset through the public API: listed by
//! `GET /v1/voices?engine=kokoro`, rendered by a real worker's Kokoro
//! engine process, downloaded as 24 kHz WAV that is speech (not silence,
//! of a plausible length, with word timestamps), and each voice its own
//! (no two presets give the same audio).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::eventually_within;

use crate::helpers::{rms, settings, start_stack};

/// The number of Kokoro presets (docs/voices-and-audio.md).
const PRESETS: usize = 41;

/// A short sentence in the voice's language.
fn sentence(language: &str) -> &'static str {
    match language.split('-').next().unwrap_or("") {
        "es" => "Hola, esta es una prueba de la voz.",
        "fr" => "Bonjour, ceci est un essai de la voix.",
        "hi" => "नमस्ते, यह आवाज़ की एक परीक्षा है।",
        "it" => "Ciao, questa è una prova della voce.",
        "pt" => "Olá, este é um teste da voz.",
        _ => "Hello, this is a test of the voice.",
    }
}

async fn kokoro_voices(stack: &testkit::stack::Stack) -> Vec<Value> {
    let mut voices = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/voices?engine=kokoro&designed=false&limit=100".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = stack.get_json(&path).await;
        voices.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    voices
}

#[tokio::test]
async fn every_kokoro_preset_renders_its_own_speech_through_the_public_api() {
    let mut settings = settings(1);
    // All 41 at once: above the scale plan's request rate and in-flight limit.
    if let Some(scale) = settings.plans.get_mut("scale") {
        scale.requests_per_second = Some(1_000);
        scale.max_in_flight = Some(1_000);
    }
    let stack = start_stack(settings).await;
    let voices = kokoro_voices(&stack).await;
    assert_eq!(voices.len(), PRESETS, "{voices:?}");

    let mut accepted = Vec::new();
    for v in &voices {
        assert_eq!(v["engine"], "kokoro", "{v}");
        assert_eq!(v["natural"], true, "{v}");
        let language = v["language"].as_str().unwrap();
        let response = stack
            .post(
                "/v1/generations",
                json!({"text": sentence(language), "voiceId": v["id"], "format": "wav"}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 202, "{v}");
        let body: Value = response.json().await.unwrap();
        accepted.push((
            v["id"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        ));
    }

    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for (voice, id) in &accepted {
        let done = eventually_within(Duration::from_secs(240), "the generation", || async {
            let g = stack.get_json(&format!("/v1/generations/{id}")).await;
            (g["status"] != "processing").then_some(g)
        })
        .await;
        assert_eq!(done["status"], "completed", "{voice}: {done}");
        let audio = stack.get(&format!("/v1/generations/{id}/audio")).await;
        assert_eq!(audio.status().as_u16(), 200);
        let bytes = audio.bytes().await.unwrap().to_vec();
        let mut wav = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(
            wav.spec().sample_rate,
            24_000,
            "{voice}: Kokoro's native rate"
        );
        let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
        let seconds = samples.len() as f64 / 24_000.0;
        assert!((0.8..8.0).contains(&seconds), "{voice}: {seconds:.2} s");
        let level = rms(&samples);
        assert!(level > 300.0, "{voice}: RMS {level}: silence");
        let alignment = stack
            .get_json(&format!("/v1/generations/{id}/alignment"))
            .await;
        let words = alignment["words"].as_array().map_or(0, Vec::len);
        assert!(words >= 5, "{voice}: {words} words in {alignment}");
        digests.insert(
            voice.clone(),
            hex::encode(Sha256::digest(samples_bytes(&samples))),
        );
    }
    let distinct: BTreeSet<&String> = digests.values().collect();
    assert_eq!(distinct.len(), PRESETS, "two presets gave the same audio");
}

fn samples_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}
