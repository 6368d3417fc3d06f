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

/// The stored audio of generation `id`, once it has completed (within
/// 120 s).
pub async fn completed_audio(stack: &Stack, id: &str) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let got = stack.get_json(&format!("/v1/generations/{id}")).await;
        if got["status"] == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let audio = stack.get(&format!("/v1/generations/{id}/audio")).await;
    assert_eq!(audio.status().as_u16(), 200);
    audio.bytes().await.unwrap().to_vec()
}
