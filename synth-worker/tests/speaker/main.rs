#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Voices scored by the speaker encoder on real Kokoro engines: the
//! designed presets and cloning onto Kokoro. A binary of its own, so that
//! its minutes of full-CPU rendering do not run beside the timing-bound
//! tests of `tests/api` (cargo runs test binaries one after another).
//! Needs `deploy/fetch-models`.

mod clone;
mod clone_job;
mod designed;

use std::path::PathBuf;

/// The engine children: the real worker binary.
pub fn engine_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_synth-worker"))
}
