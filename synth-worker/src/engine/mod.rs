//! The synthesis engines, in child processes behind the [`Engine`] trait:
//! libespeak-ng (`ffi`) and Piper neural voices (`piper`, ONNX Runtime).
//!
//! libespeak-ng is process-global and not thread-safe (docs/engines.md), so the
//! worker never loads it itself: `server` is the child (`synth-worker
//! engine`), serving any [`Engine`]; `pool` runs N children and hands each
//! request to a free one, `protocol` is the framing between them. Piper
//! needs libespeak-ng too (for phonemes), so it lives in engine children
//! as well: the worker runs a second, small pool of them
//! (`piper.engines`, default 1) whose ONNX Runtime uses every core
//! (`piper.threads`), so a model is in memory once, not once per core.
//! Kokoro (`kokoro`, phonemes by `misaki`) is the same again: its own pool
//! of engine processes started with `--kokoro DIR` (`kokoro.engines`,
//! default 1, `kokoro.threads`).

mod ffi;
pub mod kokoro;
pub mod misaki;
pub mod piper;
pub mod pool;
pub mod protocol;
pub mod server;

pub use ffi::{Espeak, RATE_MAX, RATE_MIN};
pub use pool::{EngineError, EnginePool, Priority, Rendered};
pub use protocol::{EngineRequest, KokoroRequest, PiperRequest, WordMark};

/// Audio of one request: mono s16 at `sample_rate`, and its words.
#[derive(Debug, Clone, Default)]
pub struct Synthesis {
    pub samples: Vec<i16>,
    pub words: Vec<WordMark>,
    /// 0 means the engine's own rate ([`Engine::sample_rate`]).
    pub sample_rate: u32,
}

/// The engine refused this input (permanent); `code` is API-stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRefusal {
    pub code: String,
    pub message: String,
}

/// libespeak-ng, plus Piper when the process was started with ONNX Runtime
/// (or Kokoro, when it was started with `--kokoro`): a request with
/// `kokoro` or `piper` set goes to that engine (phonemised by this
/// process's libespeak-ng), any other to libespeak-ng.
pub struct Engines {
    pub espeak: Espeak,
    pub piper: Option<piper::Piper>,
    pub kokoro: Option<kokoro::Kokoro>,
}

impl Engine for Engines {
    fn sample_rate(&self) -> u32 {
        self.espeak.sample_rate()
    }

    fn synthesize(&mut self, request: &EngineRequest) -> Result<Synthesis, EngineRefusal> {
        if let Some(k) = &request.kokoro {
            return match &mut self.kokoro {
                Some(kokoro) => kokoro.synthesize(&mut self.espeak, request, k),
                None => Err(EngineRefusal {
                    code: "voice_unavailable".to_owned(),
                    message: "this engine process has no Kokoro model".to_owned(),
                }),
            };
        }
        match (&request.piper, &mut self.piper) {
            (None, _) => Engine::synthesize(&mut self.espeak, request),
            (Some(p), Some(piper)) => {
                let (mut synthesis, rate) = piper.synthesize(
                    &mut self.espeak,
                    &request.text,
                    request.ssml,
                    p,
                    request.max_samples,
                )?;
                synthesis.sample_rate = rate;
                Ok(synthesis)
            }
            (Some(_), None) => Err(EngineRefusal {
                code: "voice_unavailable".to_owned(),
                message: "this engine process has no ONNX Runtime for Piper voices".to_owned(),
            }),
        }
    }
}

/// A synthesis engine, used by one thread of one engine process.
/// Implementations report words (start sample and text position) so that
/// every engine gives word timestamps.
pub trait Engine {
    /// The rate of the samples it produces.
    fn sample_rate(&self) -> u32;
    /// Renders one request.
    fn synthesize(&mut self, request: &EngineRequest) -> Result<Synthesis, EngineRefusal>;
}

/// This engine process's ONNX Runtime environment, loaded from `library`
/// (the Piper and Kokoro engines each make one, named `name`).
pub(crate) fn onnx_environment(
    library: &std::path::Path,
    name: &str,
) -> Result<ort::environment::Environment, String> {
    if !library.is_file() {
        return Err(format!(
            "ONNX Runtime is missing at {} (run deploy/fetch-models)",
            library.display()
        ));
    }
    ort::init_from(library)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?
        .with_name(name)
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime ({}): {e}", library.display()))
}

/// An ONNX Runtime session of the model at `path` in `environment`, with
/// `threads` intra-op threads and one inter-op thread.
pub(crate) fn onnx_session(
    environment: &ort::environment::Environment,
    threads: usize,
    path: &std::path::Path,
) -> Result<ort::session::Session, String> {
    ort::session::Session::builder(environment)
        .map_err(|e| e.to_string())?
        .with_intra_threads(threads)
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?
        .commit_from_file(path)
        .map_err(|e| e.to_string())
}
