//! The fault suite (issue 8). Every case is `#[ignore]`d: they need the
//! suite's own PostgreSQL and RabbitMQ, which they stop and restart, so they
//! run only through `deploy/tests/faults` (one at a time).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod database;
mod poison;
mod webhooks;
mod workers;

use std::time::Duration;

use faults::Posted;

/// Load comes from this many concurrent clients.
pub const CONCURRENCY: usize = 32;

/// A summary line of answers: status → count, and the slowest of each.
pub fn summary(posted: &[Posted]) -> String {
    let mut by_status: std::collections::BTreeMap<u16, (usize, Duration)> = Default::default();
    for p in posted {
        let e = by_status.entry(p.status).or_default();
        e.0 += 1;
        e.1 = e.1.max(p.elapsed);
    }
    by_status
        .iter()
        .map(|(s, (n, max))| format!("{s}: {n} (slowest {max:.2?})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What clients saw while a dependency went down and came back.
pub struct Outage {
    pub posted: Vec<Posted>,
    /// From the moment the dependency was down to the moment it was being
    /// started again.
    pub down_from: std::time::Instant,
    pub down_until: std::time::Instant,
}

impl Outage {
    /// The answers to requests sent and answered while the dependency was down.
    pub fn while_down(&self) -> Vec<&Posted> {
        self.posted
            .iter()
            .filter(|p| p.started >= self.down_from && p.started + p.elapsed <= self.down_until)
            .collect()
    }
}

/// Clients post without pause (8 at a time) from 2 s before `service`
/// (`pg` or `rabbitmq`) goes down — `stop` (a clean shutdown) or `kill` (a
/// crash) — until 3 s after it was started again, `down_for` later.
pub async fn load_through_outage(
    stack: &faults::Stack,
    service: &str,
    how: &str,
    down_for: Duration,
) -> Outage {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    let poster = |n: usize| {
        let done = &done;
        async move {
            let mut out = Vec::new();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                out.push(
                    stack
                        .post_generation(&faults::load::sentence(service, n * 100_000 + i))
                        .await,
                );
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            out
        }
    };
    let control = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack.env.ctl(service, how).await;
        let down_from = std::time::Instant::now();
        tokio::time::sleep(down_for).await;
        let down_until = std::time::Instant::now();
        stack.env.ctl(service, "start").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        done.store(true, Ordering::Relaxed);
        (down_from, down_until)
    };
    let (posted, (down_from, down_until)) =
        tokio::join!(futures_util::future::join_all((0..8).map(poster)), control);
    Outage {
        posted: posted.into_iter().flatten().collect(),
        down_from,
        down_until,
    }
}

/// The checks (b) and (c) share: no 500 and no hang ever; while the
/// dependency was down, 503 within `bound`; afterwards every service is
/// ready again by itself, new work is accepted, and everything accepted
/// completes exactly once.
pub async fn check_outage(
    stack: &faults::Stack,
    receiver: &faults::Receiver,
    outage: Outage,
    unavailable_code: &str,
    bound: Duration,
) {
    let down = outage.while_down();
    eprintln!(
        "[faults] {} requests in all: {}; {} while down: {}",
        outage.posted.len(),
        summary(&outage.posted),
        down.len(),
        summary(&down.iter().map(|p| (*p).clone()).collect::<Vec<_>>()),
    );
    let odd: Vec<_> = outage
        .posted
        .iter()
        .filter(|p| p.status != 202 && p.status != 503)
        .collect();
    assert!(odd.is_empty(), "answers other than 202 and 503: {odd:?}");
    assert!(
        down.len() >= 10,
        "too few requests while down: {}",
        down.len()
    );
    for p in &down {
        assert_eq!(p.status, 503, "while down: {p:?}");
        assert_eq!(p.error.as_deref(), Some(unavailable_code), "{p:?}");
        assert!(
            p.elapsed < bound,
            "a 503 took {:.2?} (bound {bound:?})",
            p.elapsed
        );
    }
    let slowest = outage
        .posted
        .iter()
        .map(|p| p.elapsed)
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(10),
        "a request hung for {slowest:.2?}"
    );

    // Every service reconnects by itself.
    let ready = stack
        .wait_ready(&stack.running(), Duration::from_secs(60))
        .await;
    eprintln!("[faults] every service ready {ready:.1?} after the outage's load stopped");
    let mut posted = outage.posted;
    let after = faults::post_many(stack, "after", 0..20, 8).await;
    assert!(
        after.iter().all(|p| p.status == 202),
        "after: {}",
        summary(&after)
    );
    posted.extend(after);
    let settled =
        faults::checks::settle_and_check(stack, receiver, &posted, Duration::from_secs(120), true)
            .await;
    eprintln!(
        "[faults] {} accepted, all completed, announced and charged once (settled in {settled:.1?})",
        faults::checks::accepted_ids(&posted).len()
    );
}
