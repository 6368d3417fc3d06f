//! Settings with this package's engine binary, and the stack of all four
//! services.

use std::path::PathBuf;

use shared::settings::Settings;
use testkit::stack::Stack;

pub use testkit::{SEED_TEXT as SEED, rms};

/// The engine children of the workers: `e2e-engine`, built with this package.
pub fn engine_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_e2e-engine"))
}

/// Test settings (`testkit::test_settings`) with `engines` espeak-ng
/// engine processes per worker.
pub fn settings(engines: usize) -> Settings {
    let mut s = testkit::test_settings().expect("test settings");
    s.worker.engines = engines;
    s.worker.engine_program = Some(engine_program());
    s
}

/// All four services on `settings`, and a `scale` workspace.
pub async fn start_stack(settings: Settings) -> Stack {
    Stack::builder(settings)
        .worker()
        .dispatcher()
        .start()
        .await
        .unwrap()
}
