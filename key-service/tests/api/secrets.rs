//! A service refuses to start on a secret published with voiceprod, naming
//! the setting, unless dev mode says this is local development.

use std::process::{Command, Output};

fn key_service_migrate(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_key-service"));
    cmd.arg("migrate").env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn published_secrets_stop_the_service_outside_dev_mode() {
    let database = testkit::fresh_database().unwrap();
    let db = ("VOICEPROD__DATABASE__URL", database.as_str());

    // The built-in defaults.
    let out = key_service_migrate(&[db]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with the built-in secrets");
    assert!(
        stderr.contains("audio_urls.signing_key") && stderr.contains("published"),
        "{stderr}"
    );
    assert!(!stderr.contains("dev-audio-url-key-change-me"), "{stderr}");

    // docker-compose's default internal token, with a real signing key.
    let signing = (
        "VOICEPROD__AUDIO_URLS__SIGNING_KEY",
        "9c1f0e7a3b5d42c8a6e4f2b0d8c6a4e2",
    );
    let compose = (
        "VOICEPROD__KEY_SERVICE__INTERNAL_TOKEN",
        "dev-only-internal-token",
    );
    let out = key_service_migrate(&[db, signing, compose]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with compose's token");
    assert!(stderr.contains("key_service.internal_token"), "{stderr}");

    // Dev mode accepts them; random secrets need no dev mode.
    let out = key_service_migrate(&[db, compose, ("VOICEPROD__DEV_MODE", "true")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = (
        "VOICEPROD__KEY_SERVICE__INTERNAL_TOKEN",
        "4d2e9b7c1a0f3e5d6c8b9a7f2e1d0c3b",
    );
    let out = key_service_migrate(&[db, signing, token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
