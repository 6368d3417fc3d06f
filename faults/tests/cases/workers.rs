//! (a) SIGKILL synth-workers again and again while 500 generations are in
//! flight: every accepted generation completes exactly once, is announced
//! once and charged once; the killed workers' engine processes go away.

use std::time::{Duration, Instant};

use faults::checks::settle_and_check;
use faults::stack::alive;
use futures_util::StreamExt;

use faults::{Receiver, Service, Stack};

use crate::{CONCURRENCY, summary};

const GENERATIONS: usize = 500;
/// Appended to each sentence: about 370 characters per generation (still
/// one credit), so that the workers have work in flight whenever one dies.
const FILLER: &str = "The committee met again on Thursday to review the budget, \
    the schedule and the list of open questions, and agreed to publish its \
    findings before the end of the month. Every department sent a summary of \
    its work, its costs and its plans for the next quarter, and each summary \
    was read aloud, discussed and then filed with the minutes of the meeting.";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn sigkilled_workers_lose_nothing_and_finish_every_generation_once() {
    let stack = Stack::start("kill_workers", 2, &[]).await;
    let receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;
    let started = Instant::now();

    let load_done = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let posted: Vec<_> = futures_util::stream::iter(0..GENERATIONS)
            .map(|i| {
                let text = format!("{} {FILLER}", faults::load::sentence("kill", i));
                let stack = &stack;
                async move { stack.post_generation(&text).await }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        load_done.store(true, std::sync::atomic::Ordering::Relaxed);
        posted
    };
    let kills = async {
        let mut kills = 0;
        let mut orphans = Vec::new();
        // Kill a worker every second, alternating, and both at once every
        // fourth time, only while generations are processing (a kill of an
        // idle worker proves nothing); at least 6 kills, at most 20.
        while kills < 20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let left = processing(&stack).await;
            let posting = !load_done.load(std::sync::atomic::Ordering::Relaxed);
            if left == 0 && posting {
                continue;
            }
            if left == 0 || (kills >= 6 && left < 20) {
                break;
            }
            let victims = if kills % 4 == 3 {
                vec![Service::Worker(0), Service::Worker(1)]
            } else {
                vec![Service::Worker(kills % 2)]
            };
            for w in &victims {
                let children = stack.sigkill(*w);
                assert!(!children.is_empty(), "{} had no engine process", w.name());
                orphans.extend(children);
            }
            kills += 1;
            eprintln!(
                "[faults] kill {kills}: {victims:?} at {:.1?}, {left} processing",
                started.elapsed()
            );
            // Back after a moment, as a supervisor would bring it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            for w in victims {
                stack.spawn(w);
            }
        }
        (kills, orphans)
    };
    let (posted, (kills, orphans)) = tokio::join!(load, kills);
    assert!(
        kills >= 6,
        "only {kills} kills landed while generations were processing"
    );
    eprintln!(
        "[faults] posted {GENERATIONS} in {:.1?}: {}",
        started.elapsed(),
        summary(&posted)
    );
    assert!(
        posted.iter().all(|p| p.status == 202),
        "every POST is accepted while only workers die: {}",
        summary(&posted)
    );

    let settled =
        settle_and_check(&stack, &receiver, &posted, Duration::from_secs(180), true).await;
    eprintln!(
        "[faults] {kills} kills; all {GENERATIONS} completed, announced and charged once; \
         settled {settled:.1?} after the load, {:.1?} in all",
        started.elapsed()
    );

    // The engine processes of killed workers saw their stdin close and left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while orphans.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "engine processes outlived their worker: {:?}",
            orphans.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Generations of the case still processing.
async fn processing(stack: &Stack) -> i64 {
    use diesel::prelude::*;
    use shared::schema::generations;
    let url = stack.db_url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url).unwrap();
        generations::table
            .filter(generations::status.eq("processing"))
            .count()
            .get_result(&mut conn)
            .unwrap()
    })
    .await
    .unwrap()
}
