//! `voiceprod-bench catalog`: the reproducible script that chooses the
//! designed presets (`shared/src/voices/designed.tsv`): blends of two to
//! four English Kokoro voice packs, each **distinct** by the speaker
//! encoder from every English preset and from every voice kept before it,
//! and **intelligible** by Whisper tiny.en. `bench/design-catalog` runs it
//! (it sets up Whisper's venv first).
//!
//! 1. The same-voice threshold: every English preset renders the two
//!    screening sentences and two other sentences; the cosine between the
//!    two embeddings is how alike one voice is to itself on other words.
//!    The lowest of them is the threshold: two voices closer than that
//!    cannot be told apart from one voice on two texts.
//! 2. Candidates: blends drawn by a seeded generator (splitmix64, seed
//!    [`SEED`]) for one group (accent × gender) at a time, the group with
//!    the fewest kept voices per own pack first: one English pack of the
//!    group's accent and gender (its accent is spoken), then one or two
//!    more English packs of either accent and either gender, integer
//!    weights 1 to 3 (reduced, so each recipe is drawn once), at least 2/3
//!    of the weight of the group's gender ([`draw`]). Until [`TARGET`] are
//!    kept or every group has had [`GIVE_UP`] rejections in a row.
//!    (Blends of one accent and gender alone ran out: in a first run,
//!    after 280 candidates only 65 were distinct, most of the rest too
//!    close to a blend kept before.)
//! 3. A candidate renders the screening sentences; it is kept when its
//!    cosine to every preset and every kept voice is below the threshold
//!    (the same words on both sides, so only the voice differs) and its
//!    median pitch is within 5 % of its gender's presets' range.
//! 4. Whisper tiny.en (`bench/catalog_wer.py`, the intelligibility suite's
//!    normaliser) transcribes each kept voice's screening audio; a voice
//!    above 5 % word error rate is dropped.
//! 5. Each voice is described from what was measured of that audio:
//!    pitch (median F0, terciles within its gender), liveliness (the
//!    10th–90th percentile F0 spread in semitones, terciles) and pace
//!    (syllables per second, terciles).
//!
//! Renders are deterministic (one intra-op thread per engine), and each
//! is cached in `.cache/catalog/renders.jsonl` by text and recipe, so a
//! second run only renders what it has not seen. Rendering dominates:
//! about 3 s of two engines per candidate on 2 cores (44 minutes for the
//! 900 candidates of the table).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use shared::formats::AudioFormat;
use shared::voices::{EngineVoice, KokoroPack, analysis, designed, kokoro};
use synth_worker::engine::EnginePool;
use synth_worker::engine::protocol::le_bytes_to_samples;
use synth_worker::render;
use synth_worker::speaker::clone;
use synth_worker::speaker::{Embedding, SpeakerEncoder};

use crate::report;

mod names;

/// The words every voice is compared on (and Whisper checks).
const SCREEN: &str = designed::SCREENING_TEXT;
/// Other words, for how alike a voice is to itself.
const OTHER: &str = designed::OTHER_TEXT;
const SEED: u64 = 0x766f_6963_6570_726f; // "voicepro"
/// Voices to keep before Whisper's cut (it drops a few).
const TARGET: usize = 330;
/// Candidates of [`Phase::One`].
const PHASE_ONE: usize = 440;
/// Rejections in a row after which a group is left (counted again from 0
/// in phase two).
const GIVE_UP: usize = 40;
/// Engine processes (one thread each).
const ENGINES: usize = 2;
const MAX_WER: f64 = 0.05;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models() -> PathBuf {
    root().join(".cache/models")
}

fn work_dir() -> PathBuf {
    root().join(".cache/catalog")
}

/// What one render gave: its embedding and what was measured of it.
#[derive(Clone, Serialize, Deserialize)]
struct Render {
    key: String,
    embedding: Vec<f32>,
    pitch_hz: f64,
    pitch_p10_hz: f64,
    pitch_p90_hz: f64,
    syllables_per_second: f64,
    wav: Option<PathBuf>,
}

impl Render {
    fn embedding(&self) -> Embedding {
        let mut e = [0f32; synth_worker::speaker::EMBEDDING_DIM];
        e.copy_from_slice(&self.embedding);
        Embedding(e)
    }

    fn spread_st(&self) -> f64 {
        12.0 * (self.pitch_p90_hz / self.pitch_p10_hz.max(1.0)).log2()
    }
}

/// Renders, embeds and remembers (`renders.jsonl`).
struct Renderer {
    pool: EnginePool,
    encoder: SpeakerEncoder,
    cache: HashMap<String, Render>,
    log: std::fs::File,
    rendered: usize,
}

impl Renderer {
    async fn start() -> anyhow::Result<Self> {
        let dir = work_dir();
        std::fs::create_dir_all(dir.join("wav"))?;
        let path = dir.join("renders.jsonl");
        let mut cache = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if let Ok(r) = serde_json::from_str::<Render>(line) {
                    cache.insert(r.key.clone(), r);
                }
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let (pool, encoder) =
            clone::kokoro_rig(std::env::current_exe()?, &models(), ENGINES).await?;
        Ok(Self {
            pool,
            encoder,
            cache,
            log,
            rendered: 0,
        })
    }

    /// `text` in each voice of `voices` (`(recipe, voice)`), rendered at
    /// once on the pool; the WAV kept when `keep_wav`.
    async fn renders(
        &mut self,
        text: &str,
        voices: &[(String, EngineVoice)],
        keep_wav: bool,
    ) -> anyhow::Result<Vec<Render>> {
        let key = |recipe: &str| format!("{}|{recipe}", short_hash(text));
        let missing: Vec<&(String, EngineVoice)> = voices
            .iter()
            .filter(|(r, _)| !self.cache.contains_key(&key(r)))
            .collect();
        let plans = missing
            .iter()
            .map(|(_, v)| plan(text, v))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let produced =
            futures_util::future::join_all(plans.iter().map(|p| render::produce(&self.pool, p)))
                .await;
        for ((recipe, _), produced) in missing.iter().zip(produced) {
            let produced = produced.map_err(|e| anyhow::anyhow!("{recipe}: {e}"))?;
            let (samples, rate) = pcm(&produced.bytes)?;
            let embedding = self.encoder.embed(&samples, rate)?;
            let measured = analysis::analyse(&[analysis::decode(0, &produced.bytes)?])?;
            let wav = if keep_wav {
                let path = work_dir().join("wav").join(format!(
                    "{}.wav",
                    key(recipe).replace(['|', '(', ')', '+'], "_")
                ));
                std::fs::write(&path, &produced.bytes)?;
                Some(path)
            } else {
                None
            };
            let r = Render {
                key: key(recipe),
                embedding: embedding.0.to_vec(),
                pitch_hz: measured.pitch_median_hz,
                pitch_p10_hz: measured.pitch_p10_hz,
                pitch_p90_hz: measured.pitch_p90_hz,
                syllables_per_second: measured.syllables_per_second,
                wav,
            };
            writeln!(self.log, "{}", serde_json::to_string(&r)?)?;
            self.cache.insert(r.key.clone(), r);
            self.rendered += 1;
        }
        Ok(voices
            .iter()
            .map(|(r, _)| self.cache[&key(r)].clone())
            .collect())
    }
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

fn plan(text: &str, voice: &EngineVoice) -> anyhow::Result<render::Plan> {
    let row =
        shared::models::Generation::unsaved("voice_catalog", text, AudioFormat::Wav.as_str(), 1.0);
    render::plan(&row, voice, &models().join("voices")).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The samples and rate of one of our WAVs (16-bit mono PCM, 44-byte header).
fn pcm(wav: &[u8]) -> anyhow::Result<(Vec<i16>, u32)> {
    anyhow::ensure!(
        wav.len() >= 44 && &wav[..4] == b"RIFF" && &wav[36..40] == b"data",
        "not a plain PCM WAV"
    );
    let rate = u32::from_le_bytes(wav[24..28].try_into()?);
    Ok((le_bytes_to_samples(&wav[44..]), rate))
}

/// splitmix64: a tiny generator whose sequence never changes with a crate
/// version, so the same seed draws the same candidates everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A language × gender of designed voices.
struct Group {
    language: &'static str,
    gender: &'static str,
    /// English packs of this accent and gender: a recipe starts with one.
    own: Vec<&'static str>,
    kept: usize,
    misses: usize,
}

/// The gender letter of a pack (`f`, `m`).
fn gender_of(pack: &str) -> u8 {
    pack.as_bytes()[1]
}

/// A drawn recipe for `group`, or `None` when the draw breaks a rule: one
/// of the group's own packs, then one or two more English packs of either
/// accent (3 in 5 of the group's gender, else the other), integer weights
/// 1 to 3, reduced; at least 2/3 of the weight of the group's gender.
/// Ordered with the group's accent first (it is spoken), then as `PACKS`.
fn draw(
    rng: &mut SplitMix,
    group: &Group,
    english: &[&'static str],
    phase: Phase,
) -> Option<Vec<(&'static str, u32)>> {
    let k = match phase {
        Phase::One => 2 + rng.below(2),
        Phase::Two => 3 + rng.below(2),
    };
    let g = group.gender.as_bytes()[0];
    let mut chosen = vec![group.own[rng.below(group.own.len())]];
    while chosen.len() < k {
        let same = match phase {
            Phase::One => rng.below(5) < 3,
            Phase::Two => rng.below(2) == 0,
        };
        let pool: Vec<&'static str> = english
            .iter()
            .copied()
            .filter(|p| (gender_of(p) == g) == same && !chosen.contains(p))
            .collect();
        chosen.push(pool[rng.below(pool.len())]);
    }
    let letter = if group.language == "en-GB" { 'b' } else { 'a' };
    let order = |p: &&str| (!p.starts_with(letter), english.iter().position(|q| q == p));
    chosen.sort_by_key(order);
    let mut parts: Vec<(&'static str, u32)> = chosen
        .into_iter()
        .map(|p| (p, 1 + rng.below(3) as u32))
        .collect();
    let d = parts.iter().fold(0, |d, (_, w)| gcd(d, *w));
    for (_, w) in &mut parts {
        *w /= d;
    }
    let total: u32 = parts.iter().map(|(_, w)| w).sum();
    let own: u32 = parts
        .iter()
        .filter(|(p, _)| gender_of(p) == g)
        .map(|(_, w)| w)
        .sum();
    let flat = phase == Phase::One || parts.iter().all(|(_, w)| 5 * w <= 3 * total);
    (3 * own >= 2 * total && flat).then_some(parts)
}

/// The draws change after [`PHASE_ONE`] candidates ([`draw`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Two or three packs, 3 in 5 of them of the group's gender.
    One,
    /// Three or four packs, half of them of the group's gender, none over
    /// 60 % of the weight. In phase one, three packs, blends of both
    /// genders and of both accents, and flatter weights were kept most
    /// often (56 %, 65 %, 54 % against 35 % overall late in it).
    Two,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn recipe_string(parts: &[(&str, u32)]) -> String {
    parts
        .iter()
        .map(|(p, w)| format!("{p}({w})"))
        .collect::<Vec<_>>()
        .join("+")
}

fn voice_of(language: &str, parts: &[(&str, u32)]) -> EngineVoice {
    let total: f64 = parts.iter().map(|(_, w)| f64::from(*w)).sum();
    EngineVoice::kokoro(
        if language == "en-GB" {
            "en-gb"
        } else {
            "en-us"
        },
        parts
            .iter()
            .map(|(p, w)| KokoroPack {
                name: (*p).to_owned(),
                weight: (f64::from(*w) / total) as f32,
            })
            .collect(),
    )
}

/// A voice kept so far.
struct Kept {
    recipe: String,
    language: &'static str,
    gender: &'static str,
    render: Render,
    embedding: Embedding,
    /// The highest cosine to any other voice, known once all are kept.
    nearest: f32,
}

pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let target = std::env::var("VOICEPROD_CATALOG_TARGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TARGET);
    let mut renderer = Renderer::start().await?;

    // 1. The English presets on both texts: the same-voice threshold.
    let english: Vec<&'static str> = kokoro::PACKS
        .iter()
        .map(|(p, _, _)| *p)
        .filter(|p| p.starts_with('a') || p.starts_with('b'))
        .collect();
    let language_of = |p: &str| if p.starts_with('b') { "en-GB" } else { "en-US" };
    let preset_voices: Vec<(String, EngineVoice)> = english
        .iter()
        .map(|p| (format!("{p}(1)"), voice_of(language_of(p), &[(p, 1)])))
        .collect();
    let mut screen = Vec::new();
    let mut other = Vec::new();
    for pair in preset_voices.chunks(ENGINES) {
        screen.extend(renderer.renders(SCREEN, pair, true).await?);
        other.extend(renderer.renders(OTHER, pair, false).await?);
    }
    let self_cos: Vec<(f32, &str)> = screen
        .iter()
        .zip(&other)
        .zip(&english)
        .map(|((s, o), p)| (s.embedding().cosine(&o.embedding()), *p))
        .collect();
    let (threshold, weakest) = self_cos
        .iter()
        .copied()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .context("no English preset")?;
    let self_mean = self_cos.iter().map(|c| f64::from(c.0)).sum::<f64>() / self_cos.len() as f64;
    let mut cross = Vec::new();
    for i in 0..screen.len() {
        for j in i + 1..screen.len() {
            cross.push(screen[i].embedding().cosine(&screen[j].embedding()));
        }
    }
    let cross_mean = cross.iter().map(|c| f64::from(*c)).sum::<f64>() / cross.len() as f64;
    let cross_max = cross.iter().copied().fold(f32::MIN, f32::max);
    println!(
        "same voice on other words: min {threshold:.3} ({weakest}), mean {self_mean:.3}; two presets on the same words: mean {cross_mean:.3}, max {cross_max:.3}"
    );
    let preset_embeddings: Vec<Embedding> = screen.iter().map(Render::embedding).collect();

    // 2–3. Candidates, kept when distinct.
    let mut groups: Vec<Group> = [("en-US", 'a'), ("en-GB", 'b')]
        .into_iter()
        .flat_map(|(language, letter)| {
            [("female", b'f'), ("male", b'm')].map(|(gender, g)| Group {
                language,
                gender,
                own: english
                    .iter()
                    .copied()
                    .filter(|p| p.starts_with(letter) && gender_of(p) == g)
                    .collect(),
                kept: 0,
                misses: 0,
            })
        })
        .collect();
    // A voice must sound of its gender: its median pitch within 5 % of the
    // range of the presets of that gender.
    let pitch = |g: u8| {
        screen
            .iter()
            .zip(&english)
            .filter(|(_, p)| gender_of(p) == g)
            .map(|(r, _)| r.pitch_hz)
            .collect::<Vec<f64>>()
    };
    let female_floor = pitch(b'f').into_iter().fold(f64::MAX, f64::min) * 0.95;
    let male_ceiling = pitch(b'm').into_iter().fold(f64::MIN, f64::max) * 1.05;
    println!("pitch: female at least {female_floor:.0} Hz, male at most {male_ceiling:.0} Hz");
    let mut rng = SplitMix(SEED);
    let mut seen = HashSet::new();
    let mut kept: Vec<Kept> = Vec::new();
    let mut candidates = 0usize;
    let mut phase_two = false;
    while kept.len() < target {
        if candidates >= PHASE_ONE && !phase_two {
            phase_two = true;
            for g in &mut groups {
                g.misses = 0;
            }
        }
        // Draw one candidate per engine from the group most in need (each
        // is then judged against every voice kept, the first included).
        let mut batch: Vec<(usize, Vec<(&'static str, u32)>)> = Vec::new();
        let mut draws = 0;
        while batch.len() < ENGINES && draws < 10_000 {
            draws += 1;
            let Some(g) = (0..groups.len())
                .filter(|&g| groups[g].misses < GIVE_UP)
                .min_by(|&a, &b| {
                    let need = |g: &Group| g.kept as f64 / g.own.len() as f64;
                    need(&groups[a]).total_cmp(&need(&groups[b]))
                })
            else {
                break;
            };
            let phase = if candidates + batch.len() < PHASE_ONE {
                Phase::One
            } else {
                Phase::Two
            };
            let Some(parts) = draw(&mut rng, &groups[g], &english, phase) else {
                continue;
            };
            if !seen.insert(recipe_string(&parts)) {
                continue;
            }
            batch.push((g, parts));
        }
        if batch.is_empty() {
            println!(
                "every group has given up; stopping at {} voices",
                kept.len()
            );
            break;
        }
        let voices: Vec<(String, EngineVoice)> = batch
            .iter()
            .map(|(g, parts)| (recipe_string(parts), voice_of(groups[*g].language, parts)))
            .collect();
        let rendered = renderer.renders(SCREEN, &voices, true).await?;
        // Decided in draw order, so a second run keeps the same voices.
        for ((g, parts), render) in batch.into_iter().zip(rendered) {
            candidates += 1;
            let embedding = render.embedding();
            let nearest = preset_embeddings
                .iter()
                .chain(kept.iter().map(|k| &k.embedding))
                .map(|o| embedding.cosine(o))
                .fold(f32::MIN, f32::max);
            let group = &mut groups[g];
            let sounds_of_its_gender = if group.gender == "female" {
                render.pitch_hz >= female_floor
            } else {
                render.pitch_hz <= male_ceiling
            };
            if nearest < threshold && sounds_of_its_gender {
                group.kept += 1;
                group.misses = 0;
                kept.push(Kept {
                    recipe: recipe_string(&parts),
                    language: group.language,
                    gender: group.gender,
                    render,
                    embedding,
                    nearest: f32::NAN,
                });
            } else {
                group.misses += 1;
            }
        }
        if candidates % 20 < ENGINES {
            println!(
                "{candidates} candidates, {} kept ({}), {} renders, {:.0} s",
                kept.len(),
                groups
                    .iter()
                    .map(|g| format!("{} {} {}", g.language, g.gender, g.kept))
                    .collect::<Vec<_>>()
                    .join(", "),
                renderer.rendered,
                started.elapsed().as_secs_f64()
            );
        }
    }
    renderer.pool.shutdown().await;
    let rendered = renderer.rendered;
    let cached = 2 * english.len() + candidates - rendered;

    // The nearest other voice, now that all are known (the table says it).
    for i in 0..kept.len() {
        kept[i].nearest = preset_embeddings
            .iter()
            .chain(
                kept.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, k)| &k.embedding),
            )
            .map(|o| kept[i].embedding.cosine(o))
            .fold(f32::MIN, f32::max);
    }

    // 4. Whisper.
    let wers = whisper(&kept)?;
    let before = kept.len();
    let mut dropped = Vec::new();
    let mut rows: Vec<(Kept, f64)> = Vec::new();
    for (k, wer) in kept.into_iter().zip(&wers) {
        if *wer > MAX_WER {
            dropped.push(format!("{} ({:.1} %)", k.recipe, wer * 100.0));
        } else {
            rows.push((k, *wer));
        }
    }
    println!(
        "Whisper: {} of {before} kept at ≤ {:.0} % WER; dropped {}",
        rows.len(),
        MAX_WER * 100.0,
        dropped.join(", ")
    );

    // 5. Words, names, the table.
    let table = write_table(
        &rows, threshold, weakest, self_mean, cross_mean, cross_max, candidates, before,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "wrote {} ({} voices) in {seconds:.0} s",
        table.display(),
        rows.len()
    );
    let by_group = |language: &str, gender: &str| {
        rows.iter()
            .filter(|(k, _)| k.language == language && k.gender == gender)
            .count()
    };
    let max_nearest = rows.iter().map(|(k, _)| k.nearest).fold(f32::MIN, f32::max);
    let mean_wer = rows.iter().map(|(_, w)| w).sum::<f64>() / rows.len().max(1) as f64;
    let body = format!(
        "The designed presets (`shared/src/voices/designed.tsv`), chosen by the script itself, \
         on 2 Kokoro engine processes of one thread and the speaker encoder in the script's process.\n\n\
         | step | figure |\n|---|---|\n\
         | same voice on other words (28 English presets), lowest cosine = **threshold** | **{threshold:.4}** ({weakest}; mean {self_mean:.3}) |\n\
         | two presets on the same words | mean {cross_mean:.3}, max {cross_max:.3} |\n\
         | candidates drawn and rendered | {candidates} |\n\
         | distinct (below the threshold against every preset and every voice kept before) | {before} |\n\
         | intelligible (Whisper tiny.en WER ≤ 5 %) | **{}** (mean WER {:.2} %) |\n\
         | en-US female / male, en-GB female / male | {} / {} / {} / {} |\n\
         | highest cosine between a designed voice and any other catalog voice | {max_nearest:.4} |\n\
         | wall time of this run | {seconds:.0} s ({rendered} renders made, {cached} taken from `.cache/catalog`) |\n",
        rows.len(),
        mean_wer * 100.0,
        by_group("en-US", "female"),
        by_group("en-US", "male"),
        by_group("en-GB", "female"),
        by_group("en-GB", "male"),
    );
    report::write_section(
        "catalog",
        "Designed voices: the catalog script",
        "bench/design-catalog",
        &body,
    )?;
    Ok(())
}

/// Each kept voice's word error rate on [`SCREEN`], by Whisper tiny.en.
fn whisper(kept: &[Kept]) -> anyhow::Result<Vec<f64>> {
    let list = work_dir().join("wer-input.json");
    let files: Vec<String> = kept
        .iter()
        .map(|k| {
            k.render
                .wav
                .as_ref()
                .map(|p| p.display().to_string())
                .context("a kept voice without its WAV")
        })
        .collect::<anyhow::Result<_>>()?;
    std::fs::write(
        &list,
        serde_json::to_vec(&serde_json::json!({ "text": SCREEN, "files": files }))?,
    )?;
    let python = root().join(".cache/venv-intelligibility/bin/python");
    let output = std::process::Command::new(&python)
        .arg(root().join("bench/catalog_wer.py"))
        .arg(&list)
        .env("HF_HUB_OFFLINE", "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {} (run bench/design-catalog)", python.display()))?;
    anyhow::ensure!(output.status.success(), "bench/catalog_wer.py failed");
    let wers: Vec<f64> = serde_json::from_slice(&output.stdout)?;
    anyhow::ensure!(wers.len() == kept.len(), "one WER per voice expected");
    Ok(wers)
}

/// Tercile cut points of `values`.
fn terciles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(1.0 / 3.0), at(2.0 / 3.0))
}

fn word(value: f64, cuts: (f64, f64), words: [&'static str; 3]) -> &'static str {
    if value < cuts.0 {
        words[0]
    } else if value < cuts.1 {
        words[1]
    } else {
        words[2]
    }
}

#[allow(clippy::too_many_arguments)]
fn write_table(
    rows: &[(Kept, f64)],
    threshold: f32,
    weakest: &str,
    self_mean: f64,
    cross_mean: f64,
    cross_max: f32,
    candidates: usize,
    distinct: usize,
) -> anyhow::Result<PathBuf> {
    let taken: HashSet<&str> = kokoro::PACKS.iter().map(|(_, n, _)| *n).collect();
    let mut names: HashMap<&str, std::vec::IntoIter<&str>> = HashMap::from([
        (
            "female",
            names::FEMALE
                .iter()
                .copied()
                .filter(|n| !taken.contains(n))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        (
            "male",
            names::MALE
                .iter()
                .copied()
                .filter(|n| !taken.contains(n))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
    ]);
    let mut cuts = HashMap::new();
    for gender in ["female", "male"] {
        let of = |f: fn(&Render) -> f64| {
            terciles(
                rows.iter()
                    .filter(|(k, _)| k.gender == gender)
                    .map(|(k, _)| f(&k.render))
                    .collect(),
            )
        };
        cuts.insert(
            gender,
            (
                of(|r| r.pitch_hz),
                of(Render::spread_st),
                of(|r| r.syllables_per_second),
            ),
        );
    }
    let mut out = String::new();
    out.push_str(&format!(
        "# voiceprod's designed presets: written by bench/design-catalog (bench/src/catalog.rs); do not edit by hand.\n\
         # Screening words: {SCREEN}\n\
         # Same-voice threshold (lowest cosine of an English preset with itself on other words): {threshold:.4} ({weakest}); mean {self_mean:.4}.\n\
         # Two presets on the same words: mean {cross_mean:.4}, max {cross_max:.4}.\n\
         # {candidates} candidates, {distinct} distinct, {} intelligible (Whisper tiny.en WER <= 5 %).\n",
        rows.len()
    ));
    for gender in ["female", "male"] {
        let (p, s, r) = cuts[gender];
        out.push_str(&format!(
            "# {gender} terciles: pitch {:.1} / {:.1} Hz, spread {:.2} / {:.2} semitones, pace {:.2} / {:.2} syllables/s\n",
            p.0, p.1, s.0, s.1, r.0, r.1
        ));
    }
    out.push_str("# id\tname\tlanguage\tgender\tpitch\tliveliness\tpace\tpitch_hz\tspread_st\tsyllables_per_s\tnearest_cosine\twer\trecipe\n");
    let mut sorted: Vec<&(Kept, f64)> = rows.iter().collect();
    // Listed by language, then gender, each in the order kept.
    sorted.sort_by_key(|(k, _)| (k.language != "en-US", k.gender != "female"));
    for (k, wer) in sorted {
        let (p, s, r) = cuts[k.gender];
        let name = names
            .get_mut(k.gender)
            .and_then(Iterator::next)
            .context("ran out of names; add to bench/src/catalog/names.rs")?;
        out.push_str(&format!(
            "{}\t{name}\t{}\t{}\t{}\t{}\t{}\t{:.1}\t{:.2}\t{:.2}\t{:.4}\t{:.4}\t{}\n",
            designed::id_of(&k.recipe),
            k.language,
            k.gender,
            word(k.render.pitch_hz, p, designed::PITCH_WORDS),
            word(k.render.spread_st(), s, designed::LIVELINESS_WORDS),
            word(k.render.syllables_per_second, r, designed::PACE_WORDS),
            k.render.pitch_hz,
            k.render.spread_st(),
            k.render.syllables_per_second,
            k.nearest,
            wer,
            k.recipe
        ));
    }
    let path = root().join("shared/src/voices/designed.tsv");
    std::fs::write(&path, out)?;
    Ok(path)
}
