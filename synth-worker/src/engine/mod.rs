//! The synthesis engine: libespeak-ng in child processes.
//!
//! libespeak-ng is process-global and not thread-safe (ENGINES.md), so the
//! worker never loads it itself: `server` is the child (`synth-worker
//! engine`), `pool` runs N children and hands each request to a free one,
//! `protocol` is the framing between them, `ffi` the C API.

mod ffi;
pub mod pool;
pub mod protocol;
pub mod server;

pub use ffi::{RATE_MAX, RATE_MIN};
pub use pool::{EngineError, EnginePool, Rendered};
pub use protocol::EngineRequest;
