//! `voiceprod-bench keys`: cached key verification (p50, p99,
//! verifications/s) next to an uncached one through the key service in the
//! same run, and revocation propagation: from the revoking request's answer
//! on gateway A until gateway B refuses the key.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::report::{percentile, write_section};

const CACHED_ROUNDS: usize = 200_000;
const UNCACHED_ROUNDS: usize = 2_000;
const REVOCATIONS: usize = 30;

pub async fn run() -> anyhow::Result<()> {
    let mut settings = testkit::test_settings()?;
    let keys = key_service::Application::build(settings.clone()).await?;
    settings.gateway.key_service_url = format!("http://127.0.0.1:{}", keys.port());
    tokio::spawn(keys.run_until_stopped());
    let a = gateway::Application::build(settings.clone()).await?;
    let a_url = format!("http://127.0.0.1:{}", a.port());
    tokio::spawn(a.run_until_stopped());
    let b = gateway::Application::build(settings.clone()).await?;
    let b_state = b.state();
    tokio::spawn(b.run_until_stopped());
    let boot = crate::stack::bootstrap(&settings, "bench", "enterprise").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b_state.keys.is_listening() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "gateway B never listened for invalidations"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Cached verification: the gateway's own lookup, hit after hit.
    let hash = shared::api_key::hash(&boot.api_key);
    b_state
        .keys
        .verify(hash)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cached = Vec::with_capacity(CACHED_ROUNDS);
    let started = Instant::now();
    for _ in 0..CACHED_ROUNDS {
        let t = Instant::now();
        let _ = b_state.keys.verify(hash).await;
        cached.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let cached_per_sec = CACHED_ROUNDS as f64 / started.elapsed().as_secs_f64();

    // Baseline in the same run: the same lookup when every call misses,
    // i.e. an HTTP call to the key service and its database query.
    let mut uncached = Vec::with_capacity(UNCACHED_ROUNDS);
    let started = Instant::now();
    for _ in 0..UNCACHED_ROUNDS {
        b_state.keys.clear();
        let t = Instant::now();
        let _ = b_state.keys.verify(hash).await;
        uncached.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let uncached_per_sec = UNCACHED_ROUNDS as f64 / started.elapsed().as_secs_f64();
    cached.sort_by(f64::total_cmp);
    uncached.sort_by(f64::total_cmp);

    // Revocation propagation: revoke through A, watch B's cache.
    let client = reqwest::Client::new();
    let mut propagation = Vec::with_capacity(REVOCATIONS);
    for i in 0..REVOCATIONS {
        let created: Value = client
            .post(format!("{a_url}/v1/keys"))
            .bearer_auth(&boot.api_key)
            .json(&json!({"name": format!("victim-{i}"), "scopes": ["generations:read"]}))
            .send()
            .await?
            .json()
            .await?;
        let secret = created["secret"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no secret in {created}"))?;
        let victim = shared::api_key::hash(secret);
        b_state
            .keys
            .verify(victim)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let id = created["id"].as_str().unwrap_or_default();
        let response = client
            .delete(format!("{a_url}/v1/keys/{id}"))
            .bearer_auth(&boot.api_key)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "revoke answered {}",
            response.status()
        );
        let answered = Instant::now();
        loop {
            let key = b_state
                .keys
                .verify(victim)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if key.is_some_and(|k| k.revoked_at.is_some()) {
                break;
            }
            anyhow::ensure!(
                answered.elapsed() < Duration::from_secs(10),
                "revocation never reached gateway B"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        propagation.push(answered.elapsed().as_secs_f64() * 1e3);
    }
    propagation.sort_by(f64::total_cmp);

    let body = format!(
        "| measure | p50 | p99 | per second |\n|---|---|---|---|\n\
         | cached verification (gateway, in-process) | {:.2} µs | {:.2} µs | {:.0} |\n\
         | uncached verification (HTTP to key-service + PostgreSQL), baseline | {:.0} µs | {:.0} µs | {:.0} |\n\
         | ratio cached ÷ uncached throughput | | | {:.0}× |\n\n\
         Revocation propagation over {REVOCATIONS} revocations, from the `DELETE /v1/keys/{{id}}` answer on gateway A \
         until gateway B refuses the key: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (contract: under 1,000 ms).\n",
        percentile(&cached, 50.0),
        percentile(&cached, 99.0),
        cached_per_sec,
        percentile(&uncached, 50.0),
        percentile(&uncached, 99.0),
        uncached_per_sec,
        cached_per_sec / uncached_per_sec,
        percentile(&propagation, 50.0),
        percentile(&propagation, 99.0),
        propagation.last().copied().unwrap_or(f64::NAN),
    );
    println!("{body}");
    write_section(
        "keys",
        "Keys: cached verification and revocation propagation",
        "cargo run --release -p bench -- keys",
        &body,
    )
}
