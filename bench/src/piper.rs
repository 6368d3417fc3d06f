//! `voiceprod-bench piper`: Piper neural voices (the default voice
//! `voice_8f2a1c`) against raw libespeak-ng, on this machine.
//!
//! 1. Raw libespeak-ng in this process: real-time factor (seconds of audio
//!    per second of wall time) on the same text — the baseline.
//! 2. Piper in engine processes, through the worker's own `render::produce`
//!    (sentences, phonemes, inference, join, WAV): one process with 1
//!    intra-op thread; one with every core (the worker's default, so also
//!    the whole worker's figure); and two processes of 1 thread each with
//!    two jobs at once (the alternative layout) — real-time factor, each
//!    with its ratio to the baseline of the same run.
//! 3. First audio for a 100-character text: the first job of a fresh
//!    process (model load included) and a warm one. The worker delivers a
//!    whole file, so first audio is the whole render.
//! 4. Memory of an engine process (`/proc/<pid>/status`): RSS before any
//!    neural job, after one (model loaded), and its peak (VmHWM).
//!
//! Models come from `.cache/models` (run `deploy/fetch-models` first).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use shared::formats::AudioFormat;
use shared::voices;
use synth_worker::engine::server::EngineArgs;
use synth_worker::engine::{EnginePool, Espeak};
use synth_worker::render::{self, Plan};

use crate::report;

const PARAGRAPH: &str = "The old lighthouse keeper climbed the winding stairs every evening, carrying a lantern and a small notebook. He wrote down the color of the sky, the direction of the wind, and the names of the ships that passed. Over forty years, the notebooks filled three shelves in his kitchen, and nobody ever asked to read them. When he retired, a young historian came by with a box of tea and a question about the storm of 1987. ";
const RUNS: usize = 3;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models")
}

fn text(chars: usize) -> String {
    let mut t = PARAGRAPH.repeat(chars / PARAGRAPH.len() + 1)[..chars].to_owned();
    // End on a whole word.
    if let Some(cut) = t.rfind(' ') {
        t.truncate(cut);
    }
    t
}

fn plan(text: &str) -> anyhow::Result<Plan> {
    let voice = voices::preset(voices::DEFAULT_VOICE_ID).context("no default voice")?;
    let row = shared::models::Generation::unsaved(&voice.id, text, AudioFormat::Wav.as_str(), 1.0);
    render::plan(&row, &voice.voice, &models().join("voices")).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn pool(processes: usize, threads: usize) -> anyhow::Result<EnginePool> {
    let args = EngineArgs {
        onnxruntime: Some(
            models()
                .join("onnxruntime")
                .join(shared::settings::ONNXRUNTIME_LIB),
        ),
        threads,
        kokoro: None,
        kokoro_batch_tokens: None,
    };
    Ok(EnginePool::start_with_args(std::env::current_exe()?, args.to_args(), processes).await?)
}

/// (seconds of audio, seconds of wall time) of `jobs` renders at once.
pub(crate) async fn render(
    pool: &EnginePool,
    plan: &Plan,
    jobs: usize,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let all = futures_util::future::join_all((0..jobs).map(|_| render::produce(pool, plan))).await;
    let wall = started.elapsed().as_secs_f64();
    let mut audio = 0.0;
    for p in all {
        audio += p.map_err(|e| anyhow::anyhow!("{e}"))?.duration_ms as f64 / 1000.0;
    }
    Ok((audio, wall))
}

/// kB of `field` (`VmRSS`, `VmHWM`) of a process.
pub(crate) fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

pub(crate) fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    report::percentile(&xs, 50.0)
}

pub async fn run() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let long = text(1_000);
    let long_plan = plan(&long)?;
    let short = text(101);
    let short_plan = plan(&short)?;

    // 1. Raw libespeak-ng.
    let mut espeak = Espeak::init().context("libespeak-ng did not initialise")?;
    let raw_text = long.clone();
    let mut raw = move || -> anyhow::Result<f64> {
        let started = Instant::now();
        let s = espeak.synthesize(&raw_text, false, "en-us", 175, 50, 50)?;
        let audio = s.samples.len() as f64 / f64::from(espeak.sample_rate());
        Ok(audio / started.elapsed().as_secs_f64())
    };
    raw()?;

    // 3 (cold) and 4: a fresh process, one thread per core.
    let full = pool(1, cores).await?;
    let pid = *full.idle_pids().first().context("no engine process")?;
    let rss_idle = status_kb(pid, "VmRSS");
    let started = Instant::now();
    render(&full, &short_plan, 1).await?;
    let cold_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rss_loaded = status_kb(pid, "VmRSS");
    let mut warm_ms = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        render(&full, &short_plan, 1).await?;
        warm_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let warm_ms = median(warm_ms);

    // 2. Real-time factors, each run next to a baseline run.
    let one = pool(1, 1).await?;
    let two = pool(2, 1).await?;
    render(&one, &short_plan, 1).await?;
    render(&two, &short_plan, 2).await?;
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("1 process × 1 intra-op thread, 1 job", vec![], vec![]),
        (
            "1 process × all cores (the worker's default), 1 job",
            vec![],
            vec![],
        ),
        ("2 processes × 1 thread, 2 jobs at once", vec![], vec![]),
    ];
    let mut all_raw = Vec::new();
    for _ in 0..RUNS {
        for (i, (pool, jobs)) in [(&one, 1), (&full, 1), (&two, 2)].into_iter().enumerate() {
            let base = raw()?;
            all_raw.push(base);
            let (audio, wall) = render(pool, &long_plan, jobs).await?;
            rows[i].1.push(audio / wall);
            rows[i].2.push(audio / wall / base);
        }
    }
    let peak_full = status_kb(pid, "VmHWM");
    let two_pids = two.idle_pids();
    let peak_two: u64 = two_pids.iter().map(|&p| status_kb(p, "VmHWM")).sum();
    let raw_rtf = median(all_raw);
    one.shutdown().await;
    two.shutdown().await;
    full.shutdown().await;

    let mut table =
        String::from("| layout | real-time factor | ÷ raw espeak-ng |\n|---|---|---|\n");
    for (name, rtf, ratio) in rows {
        let (rtf, ratio) = (median(rtf), median(ratio));
        println!("{name}: {rtf:.1}× real time ({ratio:.4} of raw)");
        table.push_str(&format!("| {name} | {rtf:.1}× | {ratio:.4} |\n"));
    }
    println!("raw libespeak-ng: {raw_rtf:.0}× real time");
    println!("first audio, 100 chars: cold {cold_ms:.0} ms, warm {warm_ms:.0} ms");
    println!(
        "memory: idle {:.0} MiB, loaded {:.0} MiB, peak {:.0} MiB; two processes peak {:.0} MiB",
        mib(rss_idle),
        mib(rss_loaded),
        mib(peak_full),
        mib(peak_two)
    );
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let build = if cfg!(debug_assertions) {
        "debug profile (our crates unoptimised, dependencies at opt-level 2, ONNX Runtime's release library)"
    } else {
        "release"
    };
    let body = format!(
        "Voice `voice_8f2a1c` (Piper `en_US-joe-medium`, 22,050 Hz) through the worker's \
         `render::produce` in engine processes (`synth-worker engine --onnxruntime …`), WAV; \
         text: {} characters of English prose; median of {RUNS} runs. Real-time factor = seconds \
         of audio per second of wall time. Raw libespeak-ng (one `espeak_Synth` in this process, same \
         text): **{raw_rtf:.0}× real time**, measured before every Piper run.\n\n{table}\n\
         First audio for a {}-character text (the worker delivers whole files, so this is the \
         whole render): **{cold_ms:.0} ms** for the first job of a fresh process (model load \
         included), **{warm_ms:.0} ms** warm.\n\n\
         Memory of one Piper engine process ({cores} intra-op threads): {:.0} MiB RSS before its \
         first neural job, {:.0} MiB with the model loaded, **{:.0} MiB peak** (VmHWM) over these runs. \
         Two processes of one thread each peak at {:.0} MiB together: each holds its own copy of the \
         model, which is why the worker's default is one neural process using every core \
         (`piper.engines = 1`); raise `piper.engines` where memory is plentiful and the \
         two-process row above wins.\n\n\
         Load average when the run ended: {load} (other work on this machine competes for the same \
         cores, and multi-threaded inference suffers most from it); build: {build}.\n",
        long.chars().count(),
        short.chars().count(),
        mib(rss_idle),
        mib(rss_loaded),
        mib(peak_full),
        mib(peak_two),
    );
    report::write_section(
        "piper",
        "Piper neural voices: real-time factor, first audio, memory",
        "deploy/fetch-models && cargo run --release -p bench -- piper",
        &body,
    )?;
    Ok(())
}
