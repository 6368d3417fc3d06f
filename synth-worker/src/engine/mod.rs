//! The synthesis engine: libespeak-ng in child processes, behind the
//! [`Engine`] trait that another engine (a neural one) can implement.
//!
//! libespeak-ng is process-global and not thread-safe (ENGINES.md), so the
//! worker never loads it itself: `server` is the child (`synth-worker
//! engine`), serving any [`Engine`]; `pool` runs N children and hands each
//! request to a free one, `protocol` is the framing between them, `ffi` the
//! C API and the libespeak-ng implementation.

mod ffi;
pub mod pool;
pub mod protocol;
pub mod server;

pub use ffi::{Espeak, RATE_MAX, RATE_MIN};
pub use pool::{EngineError, EnginePool, Rendered};
pub use protocol::{EngineRequest, WordMark};

/// Audio of one request: mono s16 at the engine's rate, and its words.
#[derive(Debug, Clone, Default)]
pub struct Synthesis {
    pub samples: Vec<i16>,
    pub words: Vec<WordMark>,
}

/// The engine refused this input (permanent); `code` is API-stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRefusal {
    pub code: String,
    pub message: String,
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
