//! `voiceprod-bench kokoro`: one Kokoro engine process against the
//! reference, onnxruntime 1.32.0 from Python with the same model, voice
//! pack and token ids, on the same text, in the same run.
//!
//! 1. Our engine through the worker's own `render::produce` (phonemes,
//!    inference, word timestamps, join, WAV) with the worker's default
//!    threads (`Settings::kokoro_threads`): real-time factor (seconds of
//!    audio per second of wall time), alternating with the reference so
//!    both see the same load; the ratio is taken per pair.
//! 2. The reference (`bench/kokoro_reference.py`, in the venv
//!    `.cache/venv-bench`: onnxruntime 1.32.0 and numpy from PyPI): the
//!    token ids of our own phonemiser for the same text, one inference
//!    per batch, the same intra-op threads. It does no phonemisation and
//!    no encoding, so the ratio is our whole path against the bare model.
//! 3. Variants tried to beat it (with `VOICEPROD_BENCH_KOKORO_VARIANTS=1`):
//!    one sentence per inference (no packing), full 510-token batches, and
//!    two processes of one thread with two jobs at once. The model comes as int8 only (no fp32 export ships in
//!    a package), so int8 against fp32 is not measured.
//! 4. First audio for a 100-character text, cold (a fresh process: model
//!    load included) and warm; memory (RSS idle, loaded, peak VmHWM).
//!
//! Needs `deploy/fetch-models` and `bench/kokoro-reference-venv` first.

use crate::piper::{median, mib, render, status_kb};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use shared::formats::AudioFormat;
use shared::voices::{EngineVoice, KokoroPack};
use synth_worker::engine::server::EngineArgs;
use synth_worker::engine::{EnginePool, Espeak, kokoro};
use synth_worker::render::{self, Plan};

use crate::report;

const PARAGRAPH: &str = "The old lighthouse keeper climbed the winding stairs every evening, carrying a lantern and a small notebook. He wrote down the color of the sky, the direction of the wind, and the names of the ships that passed. Over forty years, the notebooks filled three shelves in his kitchen, and nobody ever asked to read them. When he retired, a young historian came by with a box of tea and a question about the storm of 1987. ";
const PACK: &str = "af_heart";
const RUNS: usize = 2;
/// The text of the real-time factor runs, in characters.
const LONG_CHARS: usize = 400;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models() -> PathBuf {
    root().join(".cache/models")
}

fn text(chars: usize) -> String {
    let mut t = PARAGRAPH.repeat(chars / PARAGRAPH.len() + 1)[..chars].to_owned();
    if let Some(cut) = t.rfind(' ') {
        t.truncate(cut);
    }
    t
}

fn voice() -> EngineVoice {
    EngineVoice::kokoro(
        "en-us",
        vec![KokoroPack {
            name: PACK.to_owned(),
            weight: 1.0,
        }],
    )
}

fn plan(text: &str) -> anyhow::Result<Plan> {
    let row =
        shared::models::Generation::unsaved("voice_bench", text, AudioFormat::Wav.as_str(), 1.0);
    render::plan(&row, &voice(), &models().join("voices")).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn pool(
    processes: usize,
    threads: usize,
    batch: Option<usize>,
) -> anyhow::Result<EnginePool> {
    let args = EngineArgs {
        onnxruntime: Some(models().join("onnxruntime/libonnxruntime.so.1.32.0")),
        threads,
        kokoro: Some(models().join("kokoro")),
        kokoro_batch_tokens: batch,
    };
    Ok(EnginePool::start_with_args(std::env::current_exe()?, args.to_args(), processes).await?)
}

/// The token ids of every inference our engine makes for `plan` (the same
/// chunks, sentences, phonemes and packing), for the reference.
fn token_batches(plan: &Plan, batch: usize) -> anyhow::Result<Vec<Vec<i64>>> {
    let mut espeak = Espeak::init().context("libespeak-ng did not initialise")?;
    let vocab = kokoro::load_vocab(&models().join("kokoro")).map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for (request, _) in &plan.chunks {
        let units = kokoro::batches(&mut espeak, &vocab, &request.voice, &request.text, batch)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        out.extend(units.into_iter().map(|u| u.ids));
    }
    Ok(out)
}

/// One reference run: (seconds of audio, seconds of wall time).
fn reference(batches: &Path, threads: usize) -> anyhow::Result<(f64, f64)> {
    let python = root().join(".cache/venv-bench/bin/python");
    let output = std::process::Command::new(&python)
        .arg(root().join("bench/kokoro_reference.py"))
        .arg(models().join("kokoro"))
        .arg(PACK)
        .arg(batches)
        .arg(threads.to_string())
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (run bench/kokoro-reference-venv)",
                python.display()
            )
        })?;
    anyhow::ensure!(
        output.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let audio = v["audio_s"].as_f64().context("audio_s")?;
    let wall = v["wall_s"].as_f64().context("wall_s")?;
    Ok((audio, wall))
}

pub async fn run() -> anyhow::Result<()> {
    let threads = shared::settings::Settings::defaults()?.kokoro_threads();
    let long = text(LONG_CHARS);
    let long_plan = plan(&long)?;
    let short = text(101);
    let short_plan = plan(&short)?;
    let ids = token_batches(&long_plan, kokoro::BATCH_TOKENS)?;
    let ids_file = std::env::temp_dir().join(format!("kokoro-ids-{}.json", std::process::id()));
    std::fs::write(&ids_file, serde_json::to_vec(&ids)?)?;
    let tokens: usize = ids.iter().map(Vec::len).sum();

    // 4. Cold and warm first audio, memory: a fresh default process.
    let ours = pool(1, threads, None).await?;
    let pid = *ours.idle_pids().first().context("no engine process")?;
    let rss_idle = status_kb(pid, "VmRSS");
    let started = Instant::now();
    render(&ours, &short_plan, 1).await?;
    let cold_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rss_loaded = status_kb(pid, "VmRSS");
    let mut warm = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        render(&ours, &short_plan, 1).await?;
        warm.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let warm_ms = median(warm);

    // 1–3. Each layout next to a reference run.
    // The variants only with VOICEPROD_BENCH_KOKORO_VARIANTS=1: on a busy
    // shared machine each costs minutes.
    let variants = std::env::var("VOICEPROD_BENCH_KOKORO_VARIANTS").is_ok_and(|v| v == "1");
    let single = pool(1, threads, Some(1)).await?;
    let full = pool(1, threads, Some(kokoro::MAX_TOKENS)).await?;
    let two = pool(2, 1, None).await?;
    let mut layouts: Vec<(&str, &EnginePool, usize)> =
        vec![("ours: 1 process, default packing (400 tokens)", &ours, 1)];
    if variants {
        layouts.push(("ours: 1 process, one sentence per inference", &single, 1));
        layouts.push(("ours: 1 process, packing up to 510 tokens", &full, 1));
        layouts.push(("ours: 2 processes × 1 thread, 2 jobs at once", &two, 2));
        for p in [&single, &full, &two] {
            render(p, &short_plan, 1).await?;
        }
    }
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = layouts
        .iter()
        .map(|(name, _, _)| ((*name).to_owned(), vec![], vec![]))
        .collect();
    let mut refs = Vec::new();
    for _ in 0..RUNS {
        for (i, (_, pool, jobs)) in layouts.iter().enumerate() {
            let (ra, rw) = reference(&ids_file, threads)?;
            let base = ra / rw;
            refs.push(base);
            let (audio, wall) = render(pool, &long_plan, *jobs).await?;
            rows[i].1.push(audio / wall);
            rows[i].2.push(audio / wall / base);
        }
    }
    let peak = status_kb(pid, "VmHWM");
    let peak_two: u64 = two.idle_pids().iter().map(|&p| status_kb(p, "VmHWM")).sum();
    for p in [&ours, &single, &full, &two] {
        p.shutdown().await;
    }
    let _ = std::fs::remove_file(&ids_file);
    let ref_rtf = median(refs);

    let mut table = String::from("| layout | real-time factor | ÷ reference |\n|---|---|---|\n");
    table.push_str(&format!(
        "| reference: onnxruntime 1.32.0 from Python, {threads} threads, same token ids | {ref_rtf:.2}× | 1 |\n"
    ));
    for (name, rtf, ratio) in rows {
        let (rtf, ratio) = (median(rtf), median(ratio));
        println!("{name}: {rtf:.2}× real time ({ratio:.2}× the reference)");
        table.push_str(&format!("| {name} | {rtf:.2}× | {ratio:.2} |\n"));
    }
    println!("reference: {ref_rtf:.2}× real time");
    println!("first audio, 100 chars: cold {cold_ms:.0} ms, warm {warm_ms:.0} ms");
    println!(
        "memory: idle {:.0} MiB, loaded {:.0} MiB, peak {:.0} MiB; two processes peak {:.0} MiB",
        mib(rss_idle),
        mib(rss_loaded),
        mib(peak),
        mib(peak_two)
    );
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let build = if cfg!(debug_assertions) {
        "debug profile"
    } else {
        "release"
    };
    let body = format!(
        "Kokoro `{PACK}` (en-us, 24 kHz) through the worker's `render::produce` in engine \
         processes (`synth-worker engine --onnxruntime … --kokoro …`), WAV, against the \
         reference: onnxruntime 1.32.0 from Python (`bench/kokoro_reference.py`) with the same \
         model file, voice pack and **the same token ids** ({} inferences, {tokens} tokens, made by \
         our phonemiser), inference only. Text: {} characters of English prose; each figure is the \
         median of {RUNS} runs, every run of ours right after a reference run (the ratio is taken \
         per pair, so both saw the same load). Real-time factor = seconds of audio per second of \
         wall time; {threads} intra-op threads (the worker's default, `kokoro.threads = 0`).\n\n\
         {table}\n\
         First audio for a {}-character text (the worker delivers whole files, so this is the \
         whole render): **{cold_ms:.0} ms** for the first job of a fresh process (model load \
         included), **{warm_ms:.0} ms** warm.\n\n\
         Memory of one Kokoro engine process: {:.0} MiB RSS before its first job, {:.0} MiB with \
         the model loaded, **{:.0} MiB peak** (VmHWM) over these runs; two processes of one thread \
         peak at {:.0} MiB together (when the variants ran). int8 against fp32: not measured — only the int8 export ships \
         in a package.\n\n\
         Load average when the run ended: {load} (the machine is shared; multi-threaded inference \
         suffers most from competing work); build: {build}.\n",
        ids.len(),
        long.chars().count(),
        short.chars().count(),
        mib(rss_idle),
        mib(rss_loaded),
        mib(peak),
        mib(peak_two),
    );
    let command = if variants {
        "deploy/fetch-models && bench/kokoro-reference-venv && VOICEPROD_BENCH_KOKORO_VARIANTS=1 cargo run --release -p bench -- kokoro"
    } else {
        "deploy/fetch-models && bench/kokoro-reference-venv && cargo run --release -p bench -- kokoro"
    };
    report::write_section(
        "kokoro",
        "Kokoro: real-time factor against the reference, first audio, memory",
        command,
        &body,
    )?;
    Ok(())
}
