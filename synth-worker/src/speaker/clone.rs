//! Cloning onto Kokoro: a search over blends of voice packs for the blend
//! whose speech the speaker encoder finds nearest to a speaker's
//! embedding (the mean of their samples' embeddings).
//!
//! 1. Every candidate pack renders [`PROBE_TEXT`] once
//!    ([`Searcher::pack_embeddings`]; the same for every speaker, so a
//!    caller may keep them); each pack's cosine to the speaker.
//! 2. The start: the blend of the [`TOP`] nearest packs, weighted by a
//!    softmax of their cosines — or the nearest pack alone if that scores
//!    better.
//! 3. A (1 + λ) evolution strategy over the blend's log-weights (λ = the
//!    pool's engines, rendered at once): each offspring adds Gaussian
//!    noise of step σ; the best replaces the parent when it scores higher
//!    (σ grows by 1.3), else σ shrinks by 0.8. Until the budget of renders
//!    or seconds is spent.
//!
//! 4. The choice: the nearest pack, the start and the [`VALIDATED`] best
//!    blends of the search speak [`VALIDATION_TEXT`]; the one nearest the
//!    speaker there wins.
//!
//! The search's score is the cosine on [`PROBE_TEXT`], the words it
//! renders, so it flatters (hence step 4); a caller reports the chosen
//! voice's cosine on words neither step rendered ([`CHECK_TEXT`],
//! [`Searcher::similarity`]).
//!
//! What it cannot do: leave the space of the packs' blends. A speaker
//! unlike every pack gets the nearest blend, not their voice; Kokoro's
//! style vectors carry timbre and prosody, not a recording's room or
//! microphone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use shared::formats::AudioFormat;
use shared::voices::{EngineVoice, KokoroPack};

use super::{Embedding, EncoderError, MODEL_FILE, SpeakerEncoder};
use crate::engine::EnginePool;
use crate::engine::protocol::le_bytes_to_samples;
use crate::engine::server::EngineArgs;
use crate::render;

/// The words every candidate renders.
pub const PROBE_TEXT: &str = shared::voices::designed::SCREENING_TEXT;
/// Other words, for the similarity a clone reports.
pub const CHECK_TEXT: &str = shared::voices::designed::OTHER_TEXT;
/// Other words again, to choose among the best blends found: the probe's
/// own score flatters blends that fit its words (in the first bench run
/// the search raised af_heart's probe score from 0.933 to 0.956 while its
/// score on other words fell from 0.941 to 0.904).
pub const VALIDATION_TEXT: &str = "Every Sunday my grandmother baked two loaves of rye bread and gave one to the neighbours. Would you mind closing the window before the storm arrives?";
/// Renders after which [`Found::checkpoints`] keeps the best blend.
pub const CHECKPOINTS: [usize; 3] = [10, 20, 30];
/// Blends of the search (best probe scores first) validated at the end.
const VALIDATED: usize = 3;
/// Packs in a blend at most (the engine takes 8).
pub const TOP: usize = 8;
/// A pack below this weight is left out of the result.
const MIN_WEIGHT: f32 = 0.02;

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error("rendering a candidate failed: {0}")]
    Render(String),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error("no candidate packs")]
    NoPacks,
    #[error("the Kokoro engines did not start: {0}")]
    Engines(String),
}

/// `engines` Kokoro engine processes of one thread (`program engine …`,
/// the models of `models`, the layout the catalog script and the clone
/// benchmark render with) and the speaker encoder in this process.
pub async fn kokoro_rig(
    program: PathBuf,
    models: &Path,
    engines: usize,
) -> Result<(EnginePool, SpeakerEncoder), CloneError> {
    let onnxruntime = models.join(format!("onnxruntime/{}", shared::settings::ONNXRUNTIME_LIB));
    let args = EngineArgs {
        onnxruntime: Some(onnxruntime.clone()),
        threads: 1,
        kokoro: Some(models.join("kokoro")),
        kokoro_batch_tokens: None,
    };
    let pool = EnginePool::start_with_args(program, args.to_args(), engines)
        .await
        .map_err(|e| CloneError::Engines(e.to_string()))?;
    let encoder = SpeakerEncoder::load(&onnxruntime, &models.join(MODEL_FILE), 1)?;
    Ok((pool, encoder))
}

/// How much a search may spend.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub renders: usize,
    pub seconds: f64,
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The best blend, weights normalised.
    pub packs: Vec<KokoroPack>,
    /// Its cosine to the speaker on [`PROBE_TEXT`].
    pub score: f32,
    /// Its cosine to the speaker on [`VALIDATION_TEXT`], what chose it.
    pub validation: f32,
    /// The nearest pack alone and its cosine on [`PROBE_TEXT`].
    pub nearest: (String, f32),
    /// The starting blend and its cosine on [`PROBE_TEXT`].
    pub start: (Vec<KokoroPack>, f32),
    /// The blend of the best score on [`PROBE_TEXT`] and that score (what
    /// the search alone, without step 4, would answer).
    pub probe_best: (Vec<KokoroPack>, f32),
    /// Renders spent by the search and the validation (not counting the
    /// packs' own).
    pub renders: usize,
    pub seconds: f64,
    /// After each generation: (renders spent, best score so far).
    pub trace: Vec<(usize, f32)>,
    /// The best blend on [`PROBE_TEXT`] once [`CHECKPOINTS`] renders
    /// were spent (what a smaller budget would have reached).
    pub checkpoints: Vec<(usize, Vec<KokoroPack>)>,
}

/// Renders on a pool of Kokoro engines and embeds in this process.
pub struct Searcher<'a> {
    pool: &'a EnginePool,
    encoder: &'a mut SpeakerEncoder,
    espeak_voice: String,
    voices_dir: PathBuf,
}

impl<'a> Searcher<'a> {
    /// `espeak_voice` phonemises (`en-us`, `en-gb`); `voices_dir` is the
    /// Piper voices directory `render::plan` takes.
    pub fn new(
        pool: &'a EnginePool,
        encoder: &'a mut SpeakerEncoder,
        espeak_voice: &str,
        voices_dir: PathBuf,
    ) -> Self {
        Self {
            pool,
            encoder,
            espeak_voice: espeak_voice.to_owned(),
            voices_dir,
        }
    }

    /// The audio of `text` in each blend, rendered at once on the pool:
    /// 24 kHz samples.
    pub async fn render(
        &mut self,
        blends: &[Vec<KokoroPack>],
        text: &str,
    ) -> Result<Vec<Vec<i16>>, CloneError> {
        let plans = blends
            .iter()
            .map(|packs| {
                let row = shared::models::Generation::unsaved(
                    "voice_clone",
                    text,
                    AudioFormat::Pcm.as_str(),
                    1.0,
                );
                let voice = EngineVoice::kokoro(&self.espeak_voice, packs.clone());
                render::plan(&row, &voice, &self.voices_dir)
                    .map_err(|e| CloneError::Render(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let produced =
            futures_util::future::join_all(plans.iter().map(|p| render::produce(self.pool, p)))
                .await;
        produced
            .into_iter()
            .map(|p| {
                let p = p.map_err(|e| CloneError::Render(e.to_string()))?;
                Ok(le_bytes_to_samples(&p.bytes))
            })
            .collect()
    }

    /// The embedding of `text` in each blend.
    pub async fn embed(
        &mut self,
        blends: &[Vec<KokoroPack>],
        text: &str,
    ) -> Result<Vec<Embedding>, CloneError> {
        let audio = self.render(blends, text).await?;
        audio
            .iter()
            .map(|samples| Ok(self.encoder.embed(samples, 24_000)?))
            .collect()
    }

    /// Each pack alone on [`PROBE_TEXT`].
    pub async fn pack_embeddings(
        &mut self,
        packs: &[&str],
    ) -> Result<Vec<(String, Embedding)>, CloneError> {
        let mut out = Vec::with_capacity(packs.len());
        for group in packs.chunks(self.pool.size().max(1)) {
            let blends: Vec<Vec<KokoroPack>> = group.iter().map(|p| single(p)).collect();
            let embeddings = self.embed(&blends, PROBE_TEXT).await?;
            out.extend(group.iter().map(|p| (*p).to_owned()).zip(embeddings));
        }
        Ok(out)
    }

    /// The cosine of `packs` speaking [`CHECK_TEXT`] to `target`.
    pub async fn similarity(
        &mut self,
        packs: &[KokoroPack],
        target: &Embedding,
    ) -> Result<f32, CloneError> {
        let e = self.embed(&[packs.to_vec()], CHECK_TEXT).await?;
        Ok(e[0].cosine(target))
    }

    /// Searches the blends of `packs` (each with its embedding on
    /// [`PROBE_TEXT`]) for the one nearest `target`, within `budget`;
    /// `seed` makes the search repeatable.
    pub async fn search(
        &mut self,
        target: &Embedding,
        packs: &[(String, Embedding)],
        budget: Budget,
        seed: u64,
    ) -> Result<Found, CloneError> {
        let started = Instant::now();
        let mut scored: Vec<(&str, f32)> = packs
            .iter()
            .map(|(name, e)| (name.as_str(), e.cosine(target)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(TOP);
        let Some(&(nearest, nearest_score)) = scored.first() else {
            return Err(CloneError::NoPacks);
        };
        let names: Vec<&str> = scored.iter().map(|(n, _)| *n).collect();
        // A softmax of the cosines at temperature 0.05: the nearest lead.
        let mut x: Vec<f64> = scored
            .iter()
            .map(|(_, s)| f64::from(s - nearest_score) / 0.05)
            .collect();
        let start_packs = blend(&names, &x);
        let start_score = self
            .embed(std::slice::from_ref(&start_packs), PROBE_TEXT)
            .await?[0]
            .cosine(target);
        let mut renders = 1;
        let mut best = start_score;
        let mut best_packs = start_packs.clone();
        let mut checkpoints = Vec::new();
        if nearest_score > start_score {
            best = nearest_score;
            best_packs = single(nearest);
            x = (0..names.len())
                .map(|i| if i == 0 { 0.0 } else { -4.0 })
                .collect();
        }
        let mut seen: Vec<(Vec<KokoroPack>, f32)> = vec![(start_packs.clone(), start_score)];
        let mut trace = vec![(renders, best)];
        let mut rng = Normal::new(seed);
        let mut sigma = 0.8;
        let lambda = self.pool.size().max(1);
        while renders + lambda <= budget.renders && started.elapsed().as_secs_f64() < budget.seconds
        {
            let offspring: Vec<Vec<f64>> = (0..lambda)
                .map(|_| x.iter().map(|v| v + sigma * rng.next()).collect())
                .collect();
            let blends: Vec<Vec<KokoroPack>> = offspring.iter().map(|o| blend(&names, o)).collect();
            let scores: Vec<f32> = self
                .embed(&blends, PROBE_TEXT)
                .await?
                .iter()
                .map(|e| e.cosine(target))
                .collect();
            renders += lambda;
            seen.extend(blends.iter().cloned().zip(scores.iter().copied()));
            let (i, &score) = scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .ok_or(CloneError::NoPacks)?;
            if score > best {
                best = score;
                best_packs = blends[i].clone();
                x.clone_from(&offspring[i]);
                sigma = (sigma * 1.3).min(3.0);
            } else {
                sigma = (sigma * 0.8).max(0.05);
            }
            trace.push((renders, best));
            for c in CHECKPOINTS {
                if renders >= c && renders - lambda < c {
                    checkpoints.push((c, best_packs.clone()));
                }
            }
        }
        // 4. The nearest pack, the start and the best of the search on
        // other words.
        seen.sort_by(|a, b| b.1.total_cmp(&a.1));
        let probe_best = (best_packs, best);
        let mut finalists: Vec<(Vec<KokoroPack>, f32)> = vec![
            (single(nearest), nearest_score),
            (start_packs.clone(), start_score),
        ];
        for (packs, score) in seen {
            if finalists.len() == 2 + VALIDATED {
                break;
            }
            if !finalists.iter().any(|(p, _)| *p == packs) {
                finalists.push((packs, score));
            }
        }
        let blends: Vec<Vec<KokoroPack>> = finalists.iter().map(|(p, _)| p.clone()).collect();
        let validated: Vec<f32> = self
            .embed(&blends, VALIDATION_TEXT)
            .await?
            .iter()
            .map(|e| e.cosine(target))
            .collect();
        renders += blends.len();
        let (chosen, validation) = validated
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, v)| (i, *v))
            .ok_or(CloneError::NoPacks)?;
        let (packs, score) = finalists.swap_remove(chosen);
        Ok(Found {
            packs,
            score,
            validation,
            nearest: (nearest.to_owned(), nearest_score),
            start: (start_packs, start_score),
            probe_best,
            checkpoints,
            renders,
            seconds: started.elapsed().as_secs_f64(),
            trace,
        })
    }
}

fn single(pack: &str) -> Vec<KokoroPack> {
    vec![KokoroPack {
        name: pack.to_owned(),
        weight: 1.0,
    }]
}

/// The blend of `names` with the softmax of `x` as weights, packs below
/// [`MIN_WEIGHT`] left out, normalised again.
fn blend(names: &[&str], x: &[f64]) -> Vec<KokoroPack> {
    let max = x.iter().copied().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    let kept: Vec<(&str, f64)> = names
        .iter()
        .zip(&exp)
        .map(|(n, e)| (*n, e / total))
        .filter(|(_, w)| *w >= f64::from(MIN_WEIGHT))
        .collect();
    let sum: f64 = kept.iter().map(|(_, w)| w).sum();
    kept.into_iter()
        .map(|(n, w)| KokoroPack {
            name: n.to_owned(),
            weight: (w / sum) as f32,
        })
        .collect()
}

/// Standard normal numbers from splitmix64 (Box–Muller): the same seed
/// gives the same search on every build.
struct Normal {
    state: u64,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // (0, 1]: never 0, so the logarithm is finite.
        ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blend_is_the_softmax_of_its_log_weights_without_the_tiny_ones() {
        let b = blend(&["a", "b", "c"], &[0.0, 0.0, -10.0]);
        assert_eq!(b.len(), 2);
        assert!((b[0].weight - 0.5).abs() < 1e-6 && (b[1].weight - 0.5).abs() < 1e-6);
        let two = blend(&["a", "b"], &[0.0, -3.0]);
        assert_eq!(two.len(), 2, "e^-3 / (1 + e^-3) is above 2 %");
        assert_eq!(blend(&["a", "b"], &[0.0, -5.0]).len(), 1);
    }

    #[test]
    fn normal_numbers_are_repeatable_and_about_standard() {
        let mut a = Normal::new(7);
        let mut b = Normal::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| a.next()).collect();
        assert!(
            xs.iter()
                .zip((0..20_000).map(|_| b.next()))
                .all(|(x, y)| *x == y)
        );
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
