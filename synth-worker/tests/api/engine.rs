//! The engine pool on real `synth-worker engine` children.

use synth_worker::engine::{EngineError, EnginePool, EngineRequest, Priority};

use crate::helpers::{SEED, engine_program, eventually, rms};

fn request(text: &str) -> EngineRequest {
    EngineRequest {
        text: text.to_owned(),
        ssml: false,
        voice: "en-us".to_owned(),
        rate: 175,
        pitch: 50,
        range: 50,
        piper: None,
        kokoro: None,
        max_samples: None,
    }
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the ")" they are at 11 and 12.
    fields
        .get(11)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn engine_renders_the_seed_sentence_into_audible_speech_of_plausible_length() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();

    let audio = pool.render(&request(SEED)).await.unwrap();

    assert_eq!(audio.sample_rate, 22_050);
    let seconds = audio.samples.len() as f64 / f64::from(audio.sample_rate);
    assert!((2.0..8.0).contains(&seconds), "{seconds} s");
    let rms = rms(&audio.samples);
    assert!(rms > 500.0, "rms {rms}");
}

#[tokio::test]
async fn engine_refuses_a_voice_it_does_not_have_without_dying() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    let mut bad = request(SEED);
    bad.voice = "no-such-voice".to_owned();

    let err = pool.render(&bad).await.unwrap_err();

    assert!(err.is_permanent(), "{err:?}");
    assert!(matches!(&err, EngineError::Refused { code, .. } if code == "voice_unavailable"));
    assert!(pool.render(&request(SEED)).await.is_ok());
}

#[tokio::test]
async fn pool_of_two_renders_two_requests_at_once_in_two_processes() {
    let pool = EnginePool::start(engine_program(), 2).await.unwrap();
    let text = [SEED; 40].join(" ");
    let req = request(&text);

    let (a, b) = tokio::join!(pool.render(&req), pool.render(&req));

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.pid, b.pid, "both went to one process");
    // Each child timed its own synthesis: the intervals overlap, so the
    // two renders really ran at the same time.
    assert!(
        a.started_us < b.finished_us && b.started_us < a.finished_us,
        "renders did not overlap"
    );
}

#[tokio::test]
async fn a_killed_idle_engine_is_respawned_and_the_next_request_works() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    let old = pool.idle_pids()[0];

    kill(old);
    eventually("the pool to see the death", || async {
        (pool.alive() == 0).then_some(())
    })
    .await;
    let audio = pool.render(&request(SEED)).await.unwrap();

    assert_ne!(audio.pid, old);
    assert!(rms(&audio.samples) > 500.0);
    assert_eq!(pool.alive(), 1);
}

#[tokio::test]
async fn revive_replaces_idle_engines_that_died() {
    let pool = EnginePool::start(engine_program(), 2).await.unwrap();
    let before = pool.idle_pids();

    kill(before[0]);
    eventually("the pool to see the death", || async {
        (pool.alive() == 1).then_some(())
    })
    .await;
    pool.revive().await;

    assert_eq!(pool.alive(), 2);
    let after = pool.idle_pids();
    assert!(
        after.contains(&before[1]) && !after.contains(&before[0]),
        "{before:?} → {after:?}"
    );
}

#[tokio::test]
async fn an_engine_killed_mid_request_fails_it_as_retryable_and_is_replaced() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    let pid = pool.idle_pids()[0];
    let cpu_before = cpu_ticks(pid);
    let long = [SEED; 1500].join(" ");
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.render(&request(&long)).await })
    };

    // The child is rendering once it burns CPU (a 90,000-character text
    // takes seconds), so the kill lands mid-request, not before it.
    eventually("the child to be rendering", || async {
        (cpu_ticks(pid) > cpu_before + 2).then_some(())
    })
    .await;
    kill(pid);
    let err = busy.await.unwrap().unwrap_err();

    assert!(!err.is_permanent(), "{err:?}");
    let audio = pool.render(&request(SEED)).await.unwrap();
    assert_ne!(audio.pid, pid);
}

#[tokio::test]
async fn a_render_over_the_pcm_limit_is_refused_as_audio_too_long_not_retried_as_a_crash() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    // The seed sentence is ~4 s (~180 KB): over a 64 KiB limit.
    pool.set_max_pcm_bytes(64 * 1024);

    let err = pool.render(&request(SEED)).await.unwrap_err();

    assert!(err.is_permanent(), "retryable: {err:?}");
    assert!(
        matches!(&err, EngineError::Refused { code, .. } if code == "audio_too_long"),
        "{err:?}"
    );
    assert_eq!(pool.alive(), 1);
    assert!(pool.render(&request("Hi.")).await.is_ok());
}

#[tokio::test]
async fn an_interactive_render_takes_the_next_free_engine_before_waiting_bulk_renders() {
    let pool = EnginePool::start(engine_program(), 1).await.unwrap();
    let (long, short) = (request(&SEED.repeat(400)), request(SEED));
    // One bulk render holds the only engine, four more wait for it.
    let busy = pool.render(&long);
    let bulk = futures_util::future::join_all((0..4).map(|_| pool.render(&short)));
    let interactive = async {
        // Queued after all of them.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        pool.render_as(&short, Priority::Interactive).await
    };
    let (busy, bulk, interactive) = tokio::join!(busy, bulk, interactive);
    let (busy, interactive) = (busy.unwrap(), interactive.unwrap());
    assert!(
        interactive.started_us >= busy.finished_us,
        "one engine: one render at a time"
    );
    for b in bulk {
        let b = b.unwrap();
        assert!(
            interactive.started_us < b.started_us,
            "the interactive render waited behind a bulk one queued before it"
        );
    }
}

#[tokio::test]
async fn a_reserved_engine_renders_interactive_work_while_bulk_work_keeps_the_others_busy() {
    let pool = EnginePool::start_reserving(engine_program(), vec!["engine".into()], 1, 1)
        .await
        .unwrap();
    assert_eq!(pool.size(), 2);
    let (long, short) = (request(&SEED.repeat(400)), request(SEED));
    // Bulk work never takes the reserved engine: the second bulk render
    // waits for the first, though an engine is idle. (Each child has its
    // own clock: what happens when is measured here.)
    let done = |r| (r, std::time::Instant::now());
    let bulk =
        futures_util::future::join_all((0..2).map(|_| async { done(pool.render(&long).await) }));
    let interactive = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        done(pool.render_as(&short, Priority::Interactive).await)
    };
    let (bulk, (interactive, interactive_done)) = tokio::join!(bulk, interactive);
    let (first, first_done) = (bulk[0].0.as_ref().unwrap(), bulk[0].1);
    let second = bulk[1].0.as_ref().unwrap();
    let interactive = interactive.unwrap();
    assert_eq!(first.pid, second.pid, "bulk renders used one engine");
    assert!(second.started_us >= first.finished_us);
    assert_ne!(interactive.pid, first.pid, "the reserved engine");
    assert!(
        interactive_done < first_done,
        "the interactive render waited for the bulk one"
    );
}
