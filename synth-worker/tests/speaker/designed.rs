//! The designed presets (`shared::voices::designed`) on real Kokoro engine
//! processes and the real speaker encoder: the two of one language and
//! gender with the nearest recipes are told apart (their cosine on the
//! screening words is below the catalog's same-voice threshold, and across
//! texts each is nearer itself than the other); and a recipe renders the
//! same audio every time. Engines of one thread, as the catalog script
//! rendered them. Needs `deploy/fetch-models`.

use std::path::Path;

use shared::formats::AudioFormat;
use shared::voices::designed::{self, Designed};
use shared::voices::{Preset, kokoro};
use synth_worker::engine::EnginePool;
use synth_worker::render;
use synth_worker::speaker::clone;
use synth_worker::speaker::{Embedding, SpeakerEncoder};

use crate::engine_program;

fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models")
}

/// The weights of `d`'s recipe over every pack (normalised).
fn weights(d: &Designed) -> std::collections::HashMap<String, f64> {
    let parts = designed::parse_recipe(&d.recipe).unwrap();
    let total: f64 = parts.iter().map(|(_, w)| f64::from(*w)).sum();
    parts
        .into_iter()
        .map(|(p, w)| (p.to_owned(), f64::from(w) / total))
        .collect()
}

/// The two rows of one language and gender whose recipes are nearest (L1).
fn nearest_recipes() -> (&'static Designed, &'static Designed) {
    let rows = designed::rows();
    let mut best: Option<(f64, usize, usize)> = None;
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let (a, b) = (&rows[i], &rows[j]);
            if a.language != b.language || a.gender != b.gender {
                continue;
            }
            let (wa, wb) = (weights(a), weights(b));
            let distance: f64 = wa
                .keys()
                .chain(wb.keys())
                .collect::<std::collections::HashSet<_>>()
                .into_iter()
                .map(|k| (wa.get(k).unwrap_or(&0.0) - wb.get(k).unwrap_or(&0.0)).abs())
                .sum();
            if best.is_none_or(|(d, _, _)| distance < d) {
                best = Some((distance, i, j));
            }
        }
    }
    let (distance, i, j) = best.unwrap();
    eprintln!(
        "nearest recipes: {} and {} (L1 {distance:.3})",
        rows[i].recipe, rows[j].recipe
    );
    (&rows[i], &rows[j])
}

fn preset(d: &Designed) -> Preset {
    designed::presets_over(&kokoro::all_presets())
        .into_iter()
        .find(|p| p.id == d.id)
        .unwrap()
}

async fn render(pool: &EnginePool, voice: &Preset, text: &str) -> Vec<i16> {
    let row = shared::models::Generation::unsaved(&voice.id, text, AudioFormat::Wav.as_str(), 1.0);
    let plan = render::plan(&row, &voice.voice, &models().join("voices")).unwrap();
    let produced = render::produce(pool, &plan).await.unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(&produced.bytes)).unwrap();
    reader.into_samples::<i16>().map(Result::unwrap).collect()
}

fn embed(encoder: &mut SpeakerEncoder, samples: &[i16]) -> Embedding {
    encoder.embed(samples, 24_000).unwrap()
}

#[tokio::test]
async fn the_designed_presets_with_the_nearest_recipes_are_distinct_voices_and_stable() {
    let (pool, mut encoder) = clone::kokoro_rig(engine_program(), &models(), 2)
        .await
        .unwrap();
    let (a, b) = nearest_recipes();
    let (a, b) = (preset(a), preset(b));

    let (a_screen, b_screen, a_other, b_other) = tokio::join!(
        render(&pool, &a, designed::SCREENING_TEXT),
        render(&pool, &b, designed::SCREENING_TEXT),
        render(&pool, &a, designed::OTHER_TEXT),
        render(&pool, &b, designed::OTHER_TEXT),
    );
    let again = render(&pool, &a, designed::SCREENING_TEXT).await;
    pool.shutdown().await;
    assert_eq!(
        again, a_screen,
        "a recipe renders the same audio every time"
    );

    let [a_s, b_s, a_o, b_o] =
        [&a_screen, &b_screen, &a_other, &b_other].map(|s| embed(&mut encoder, s));
    // The catalog's criterion: on the same words, below the threshold.
    let apart = a_s.cosine(&b_s);
    let threshold = designed::threshold().unwrap();
    eprintln!(
        "{} vs {} on the same words: {apart:.3} (threshold {threshold:.3})",
        a.name, b.name
    );
    assert!(
        apart < threshold,
        "{} and {} score {apart:.3}, not below the same-voice threshold {threshold:.3}",
        a.id,
        b.id
    );
    // Across texts (other words on one side, so the words do not count),
    // each is nearer itself than the other.
    for (name, this, itself, other) in [(&a.name, &a_s, &a_o, &b_o), (&b.name, &b_s, &b_o, &a_o)] {
        let (same, different) = (this.cosine(itself), this.cosine(other));
        eprintln!("{name} on other words: itself {same:.3}, the other {different:.3}");
        assert!(
            same > different,
            "{name} is nearer the other voice ({different:.3}) than itself ({same:.3})"
        );
    }
}
