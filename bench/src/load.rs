//! A closed-loop HTTP load: `concurrency` clients, each sending its next
//! request when the previous one is answered, for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::percentile;

/// What a load run saw.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Answers with the expected status per second.
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
}

impl Figures {
    pub fn from_samples(mut latencies_ms: Vec<f64>, errors: usize, elapsed: Duration) -> Self {
        latencies_ms.sort_by(f64::total_cmp);
        Self {
            per_sec: latencies_ms.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(&latencies_ms, 50.0),
            p99_ms: percentile(&latencies_ms, 99.0),
            ok: latencies_ms.len(),
            errors,
            first_error: None,
        }
    }
}

type Make = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs `make`'s request from `concurrency` clients for `warm_up` (not
/// counted) and then `duration`; counts answers with status `expect`.
pub async fn run(
    concurrency: usize,
    warm_up: Duration,
    duration: Duration,
    expect: u16,
    make: Make,
) -> anyhow::Result<Figures> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let start = Instant::now();
    let counted_from = start + warm_up;
    let end = counted_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, make) = (client.clone(), make.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = make(&client).send().await;
                let took = sent.elapsed();
                let counted = sent >= counted_from;
                match outcome {
                    Ok(r) if r.status().as_u16() == expect => {
                        // The body is part of the answer.
                        let _ = r.bytes().await;
                        if counted {
                            latencies.push(took.as_secs_f64() * 1e3);
                        }
                    }
                    other => {
                        if counted {
                            errors += 1;
                        }
                        if first_error.is_none() {
                            first_error = Some(match other {
                                Ok(r) => format!(
                                    "HTTP {}: {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                ),
                                Err(e) => e.to_string(),
                            });
                        }
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let (l, e, f) = done?;
        all.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let elapsed = Instant::now().saturating_duration_since(counted_from);
    let mut figures = Figures::from_samples(all, errors, elapsed.max(duration));
    figures.first_error = first_error;
    Ok(figures)
}
