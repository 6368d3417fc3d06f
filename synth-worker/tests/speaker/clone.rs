//! Cloning onto Kokoro (`speaker::clone`) on real Kokoro engines and the
//! real speaker encoder: a Kokoro preset held out of the search, its
//! speaker given by ~30 s of its own speech, is recovered from the other
//! English packs at a cosine of at least 0.85 on words the search never
//! rendered. Engines of one thread, as in `voiceprod-bench clone`.

use std::path::Path;

use shared::voices::{KokoroPack, kokoro};
use synth_worker::speaker::clone::{self, Budget, Searcher};

use crate::engine_program;

/// About 30 s of speech (the bench's reference).
const REFERENCE: &str = "The old lighthouse keeper climbed the winding stairs every evening, carrying a lantern and a small notebook. He wrote down the color of the sky, the direction of the wind, and the names of the ships that passed. Over forty years, the notebooks filled three shelves in his kitchen, and nobody ever asked to read them. When he retired, a young historian came by with a box of tea and a question about the storm.";
const HELD_OUT: &str = "af_heart";

fn single(pack: &str) -> Vec<KokoroPack> {
    vec![KokoroPack {
        name: pack.to_owned(),
        weight: 1.0,
    }]
}

#[tokio::test]
async fn a_held_out_preset_is_cloned_from_30_s_of_its_speech_at_cosine_0_85_or_more() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models");
    let (pool, mut encoder) = clone::kokoro_rig(engine_program(), &models, 2)
        .await
        .unwrap();
    let others: Vec<&str> = kokoro::PACKS
        .iter()
        .map(|(p, _, _)| *p)
        .filter(|p| (p.starts_with('a') || p.starts_with('b')) && *p != HELD_OUT)
        .collect();

    let mut searcher = Searcher::new(&pool, &mut encoder, "en-us", models.join("voices"));
    let reference = searcher
        .render(&[single(HELD_OUT)], REFERENCE)
        .await
        .unwrap()
        .remove(0);
    let seconds = reference.len() as f64 / 24_000.0;
    assert!(
        (20.0..45.0).contains(&seconds),
        "{seconds:.1} s of reference"
    );
    let packs = searcher.pack_embeddings(&others).await.unwrap();
    drop(searcher);
    let target = encoder.embed(&reference, 24_000).unwrap();
    let mut searcher = Searcher::new(&pool, &mut encoder, "en-us", models.join("voices"));
    let found = searcher
        .search(
            &target,
            &packs,
            Budget {
                renders: 20,
                seconds: 300.0,
            },
            19,
        )
        .await
        .unwrap();
    assert!(found.packs.iter().all(|p| p.name != HELD_OUT));
    let similarity = searcher.similarity(&found.packs, &target).await.unwrap();
    let nearest = searcher
        .similarity(&single(&found.nearest.0), &target)
        .await
        .unwrap();
    pool.shutdown().await;
    eprintln!(
        "{HELD_OUT} from {seconds:.0} s: clone {similarity:.3} on other words ({:?}), nearest pack {} {nearest:.3}; {} renders in {:.0} s",
        found.packs, found.nearest.0, found.renders, found.seconds
    );
    assert!(
        similarity >= 0.85,
        "the clone of {HELD_OUT} reaches {similarity:.3}, below 0.85"
    );
}
