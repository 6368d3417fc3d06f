//! `voiceprod-bench clone`: how near cloning onto Kokoro gets
//! (`synth_worker::speaker::clone`), beside the nearest preset and the
//! plain blend of the nearest presets, same references, same run.
//!
//! Each target is an English Kokoro preset held out of the search: its
//! reference is about 30 s of its own speech ([`REFERENCE`]), the search
//! may use the other 27 English packs, and every figure is the speaker
//! encoder's cosine to the reference embedding of a voice speaking other
//! words (`CHECK_TEXT`): the target itself (the ceiling), the
//! nearest other pack, the softmax blend of the nearest packs the search
//! starts from, and what the search found. With the renders spent and the
//! seconds per clone (2 Kokoro engines of one thread, the encoder in this
//! process). `VOICEPROD_BENCH_CLONE_RENDERS` sets the budget (40).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use shared::voices::{KokoroPack, kokoro};
use synth_worker::speaker::Embedding;
use synth_worker::speaker::clone::{self, Budget, Searcher};

use crate::report;

/// About 30 s of speech.
pub const REFERENCE: &str = "The old lighthouse keeper climbed the winding stairs every evening, carrying a lantern and a small notebook. He wrote down the color of the sky, the direction of the wind, and the names of the ships that passed. Over forty years, the notebooks filled three shelves in his kitchen, and nobody ever asked to read them. When he retired, a young historian came by with a box of tea and a question about the storm.";
/// Held out in turn: two of each accent and gender but one, best and
/// worst served by the other packs in the catalog run.
const TARGETS: [&str; 6] = [
    "af_heart",
    "af_sky",
    "am_michael",
    "am_onyx",
    "bf_emma",
    "bm_george",
];
const SEED: u64 = 19;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models")
}

fn espeak_of(pack: &str) -> &'static str {
    if pack.starts_with('b') {
        "en-gb"
    } else {
        "en-us"
    }
}

fn single(pack: &str) -> Vec<KokoroPack> {
    vec![KokoroPack {
        name: pack.to_owned(),
        weight: 1.0,
    }]
}

fn shown(packs: &[KokoroPack]) -> String {
    packs
        .iter()
        .map(|p| format!("{} {:.2}", p.name, p.weight))
        .collect::<Vec<_>>()
        .join(" + ")
}

pub async fn run() -> anyhow::Result<()> {
    let renders = std::env::var("VOICEPROD_BENCH_CLONE_RENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let (pool, mut encoder) = clone::kokoro_rig(std::env::current_exe()?, &models(), 2).await?;
    let english: Vec<&str> = kokoro::PACKS
        .iter()
        .map(|(p, _, _)| *p)
        .filter(|p| p.starts_with('a') || p.starts_with('b'))
        .collect();
    let voices_dir = models().join("voices");
    // Each pack on the probe words, once per accent spoken.
    let mut packs: HashMap<&str, Vec<(String, Embedding)>> = HashMap::new();
    let mut rows = String::new();
    let mut sums = [0f64; 5];
    let mut at: Vec<(usize, f64)> = Vec::new();
    for target in TARGETS {
        let espeak = espeak_of(target);
        let mut searcher = Searcher::new(&pool, &mut encoder, espeak, voices_dir.clone());
        if !packs.contains_key(espeak) {
            packs.insert(espeak, searcher.pack_embeddings(&english).await?);
        }
        let reference = searcher.render(&[single(target)], REFERENCE).await?;
        let seconds = reference[0].len() as f64 / 24_000.0;
        let candidates: Vec<(String, Embedding)> = packs[espeak]
            .iter()
            .filter(|(name, _)| name != target)
            .cloned()
            .collect();
        drop(searcher);
        let reference_embedding = encoder.embed(&reference[0], 24_000)?;
        let mut searcher = Searcher::new(&pool, &mut encoder, espeak, voices_dir.clone());
        let found = searcher
            .search(
                &reference_embedding,
                &candidates,
                Budget {
                    renders,
                    seconds: 900.0,
                },
                SEED,
            )
            .await?;
        let mut check = Vec::new();
        for packs in [
            single(target),
            single(&found.nearest.0),
            found.start.0.clone(),
            found.probe_best.0.clone(),
            found.packs.clone(),
        ] {
            check.push(searcher.similarity(&packs, &reference_embedding).await?);
        }
        for (i, (renders, packs)) in found.checkpoints.iter().enumerate() {
            let c = f64::from(searcher.similarity(packs, &reference_embedding).await?);
            println!("  after {renders} renders: {c:.3} on other words");
            match at.get_mut(i) {
                Some(slot) => slot.1 += c,
                None => at.push((*renders, c)),
            }
        }
        for (s, c) in sums.iter_mut().zip(&check) {
            *s += f64::from(*c);
        }
        let line = format!(
            "| {target} | {seconds:.0} s | {:.3} | {:.3} ({}) | {:.3} | {:.3} | **{:.3}** ({}) | {} | {:.0} s |\n",
            check[0],
            check[1],
            found.nearest.0,
            check[2],
            check[3],
            check[4],
            shown(&found.packs),
            found.renders,
            found.seconds
        );
        print!("{line}");
        println!(
            "  probe scores: nearest {:.3}, start {:.3}, best {:.3}, chosen {:.3} (validation {:.3}); trace {:?}",
            found.nearest.1,
            found.start.1,
            found.probe_best.1,
            found.score,
            found.validation,
            found.trace
        );
        rows.push_str(&line);
    }
    // A real person: the LibriVox reader of `deploy/fetch-models`, all 28
    // packs to search, at the API's budget (`cloning.max_renders`).
    let api_budget = shared::settings::Settings::defaults()?.cloning.max_renders;
    let wavs = testkit::librivox_samples();
    let real = synth_worker::cloning::speaker_embedding(&mut encoder, &wavs)?;
    let mut searcher = Searcher::new(&pool, &mut encoder, "en-us", voices_dir.clone());
    let found = searcher
        .search(
            &real,
            &packs["en-us"],
            Budget {
                renders: api_budget,
                seconds: 900.0,
            },
            SEED,
        )
        .await?;
    let mut check = Vec::new();
    for packs in [
        single(&found.nearest.0),
        found.start.0.clone(),
        found.probe_best.0.clone(),
        found.packs.clone(),
    ] {
        check.push(searcher.similarity(&packs, &real).await?);
    }
    let real_row = format!(
        "| LibriVox reader (a real person, male) | 24.7 s | — | {:.3} ({}) | {:.3} | {:.3} | **{:.3}** ({}) | {} | {:.0} s |\n",
        check[0],
        found.nearest.0,
        check[1],
        check[2],
        check[3],
        shown(&found.packs),
        found.renders,
        found.seconds
    );
    print!("{real_row}");
    pool.shutdown().await;
    let n = TARGETS.len() as f64;
    let curve = std::iter::once(format!("start (1 render) {:.3}", sums[2] / n))
        .chain(at.iter().map(|(r, c)| format!("{r} renders {:.3}", c / n)))
        .chain(std::iter::once(format!(
            "after validation {:.3}",
            sums[4] / n
        )))
        .collect::<Vec<_>>()
        .join(" → ");
    let body = format!(
        "Cloning onto Kokoro by a search over blends of voice packs \
         (`synth_worker::speaker::clone`), each target an English Kokoro preset **held out** of \
         the search: its reference is ~30 s of its own speech, the search blends the other 27 \
         English packs, up to {renders} renders of the probe sentences. Every figure is the \
         speaker encoder's cosine to the reference's embedding, of a voice speaking **other \
         words** than the search scored: the target itself (the ceiling), the nearest other \
         pack alone, the blend of the nearest packs the search starts from, the blend of the \
         search's best score on its own probe words, and the clone: of those and the nearest \
         pack, the one nearest the reference on a third text (validation). 2 Kokoro engines of one thread; seconds are the search's wall time.\n\n\
         | held out | reference | itself | nearest pack | blend of the nearest | search's best on its probe | clone (recipe) | renders | seconds |\n\
         |---|---|---|---|---|---|---|---|---|\n{rows}\
         | **mean** | | {:.3} | {:.3} | {:.3} | {:.3} | **{:.3}** | | |\n\n\
         Similarity reached against renders spent (mean over the targets, on the other words; \
         the search's best on its probe words at each point): {curve}.\n\n\
         A real person, the LibriVox reader of `deploy/fetch-models` (pocketsphinx 5.1.1's test \
         clips), searched over all 28 English packs at the API's budget ({api_budget} renders, \
         `cloning.max_renders`); no ceiling, the speaker has no pack:\n\n\
         | reference | length | itself | nearest pack | blend of the nearest | search's best on its probe | clone (recipe) | renders | seconds |\n\
         |---|---|---|---|---|---|---|---|---|\n{real_row}",
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        sums[3] / n,
        sums[4] / n,
    );
    report::write_section(
        "clone",
        "Cloning onto Kokoro: similarity reached against the nearest preset",
        "deploy/fetch-models && cargo run --release -p bench -- clone",
        &body,
    )?;
    Ok(())
}
