//! `voiceprod-bench audio`: the synth-worker's audio path against raw
//! libespeak-ng, and engine-process scaling.
//!
//! 1. Raw: libespeak-ng in this process (`Espeak::synthesize`, one call on
//!    the whole text) — characters per second.
//! 2. Worker: the worker's own `render::produce` on a pool of one engine
//!    process (chunking, rendering over the pipe, joining, word timestamps,
//!    encoding) for each format at its default rate — characters per second,
//!    and its ratio to raw. Storage and the database are not included.
//! 3. Scaling: 8 WAV jobs at once on N engine processes (N = cores) versus
//!    on one — jobs per second, and the ratio.
//!
//! The engine children are this binary (`voiceprod-bench engine`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use shared::formats::AudioFormat;
use shared::voices;
use synth_worker::engine::{EnginePool, Espeak};
use synth_worker::render::{self, Plan};

use crate::report;

const PARAGRAPH: &str = "The old lighthouse keeper climbed the winding stairs every evening, carrying a lantern and a small notebook. He wrote down the color of the sky, the direction of the wind, and the names of the ships that passed. Over forty years, the notebooks filled three shelves in his kitchen, and nobody ever asked to read them. When he retired, a young historian came by with a box of tea and a question about the storm of 1987. ";
const RUNS: usize = 5;
/// An espeak-ng preset, so raw and worker render the same voice with the
/// same engine (`voice_8f2a1c`, the default, is a neural voice).
const VOICE: &str = "voice_a41d07";

/// The hidden engine subcommand: serve libespeak-ng (and Piper, with
/// `--onnxruntime`) on stdin/stdout.
pub fn serve_engine(args: synth_worker::engine::server::EngineArgs) -> anyhow::Result<()> {
    synth_worker::engine::server::serve_stdio(args)
}

/// The benchmark text (the same for raw and worker runs).
fn text_for_raw() -> String {
    text(10_000)
}

fn text(chars: usize) -> String {
    PARAGRAPH.repeat(chars / PARAGRAPH.len() + 1)[..chars].to_owned()
}

fn plan(text: &str, format: AudioFormat) -> anyhow::Result<Plan> {
    let voice = voices::preset(VOICE).context("no such preset voice")?;
    let row = shared::models::Generation::unsaved(&voice.id, text, format.as_str(), 1.0);
    render::plan(&row, &voice.voice, std::path::Path::new("")).map_err(|e| anyhow::anyhow!("{e}"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    report::percentile(&xs, 50.0)
}

pub async fn run() -> anyhow::Result<()> {
    let program: PathBuf = std::env::current_exe()?;
    let text = text(10_000);
    let chars = text.chars().count() as f64;

    // 1. Raw libespeak-ng, in this process: the baseline, measured again
    //    right before every worker run so each ratio compares like with like
    //    on a noisy machine.
    let mut espeak = Espeak::init().context("libespeak-ng did not initialise")?;
    let v = voices::preset(VOICE)
        .context("no such preset voice")?
        .voice
        .clone();
    let name = v.espeak_name();
    let mut raw_run = move || -> anyhow::Result<f64> {
        let started = Instant::now();
        let s = espeak.synthesize(&text_for_raw(), false, &name, v.rate, v.pitch, v.range)?;
        anyhow::ensure!(!s.samples.is_empty(), "no audio");
        Ok(chars / started.elapsed().as_secs_f64())
    };
    let mut all_raw = Vec::new();

    // 2. The worker's path, one engine process, per format.
    let one = EnginePool::start(program.clone(), 1).await?;
    // Warm-up, not counted: the engine process's first renders pay for
    // loading voice data and growing its buffers, which would land on
    // whichever format is measured first.
    for _ in 0..2 {
        raw_run()?;
        render::produce(&one, &plan(&text, AudioFormat::Pcm)?)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut rows = Vec::new();
    for format in AudioFormat::ALL {
        let plan = plan(&text, format)?;
        let mut cps = Vec::new();
        let mut ratios = Vec::new();
        let mut bytes = 0;
        for _ in 0..RUNS {
            let raw = raw_run()?;
            all_raw.push(raw);
            let started = Instant::now();
            let produced = render::produce(&one, &plan)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let worker = chars / started.elapsed().as_secs_f64();
            cps.push(worker);
            ratios.push(worker / raw);
            bytes = produced.bytes.len();
        }
        let (cps, ratio) = (median(cps), median(ratios));
        println!("worker {format}: {cps:.0} chars/s ({ratio:.2} of raw)");
        rows.push(format!(
            "| {format} | {} Hz | {cps:.0} | {ratio:.2} | {:.0} KiB |",
            plan.sample_rate,
            bytes as f64 / 1024.0
        ));
    }
    let raw_cps = median(all_raw);
    println!("raw libespeak-ng: {raw_cps:.0} chars/s");

    // 3. Throughput with N engine processes versus one.
    let n = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let jobs = 8;
    let job_text = text[..2_000].to_owned();
    let job = plan(&job_text, AudioFormat::Wav)?;
    let throughput = |pool: EnginePool, job: Plan| async move {
        let started = Instant::now();
        let all =
            futures_util::future::join_all((0..jobs).map(|_| render::produce(&pool, &job))).await;
        anyhow::ensure!(all.iter().all(Result::is_ok), "a job failed");
        Ok::<f64, anyhow::Error>(f64::from(jobs) / started.elapsed().as_secs_f64())
    };
    let mut with_one = Vec::new();
    let mut with_n = Vec::new();
    let many = EnginePool::start(program, n).await?;
    for _ in 0..RUNS {
        with_one.push(throughput(one.clone(), job.clone()).await?);
        with_n.push(throughput(many.clone(), job.clone()).await?);
    }
    let (with_one, with_n) = (median(with_one), median(with_n));
    println!(
        "{jobs} jobs: {with_one:.2} jobs/s with 1 engine, {with_n:.2} with {n} ({:.2}×)",
        with_n / with_one
    );
    one.shutdown().await;
    many.shutdown().await;

    let body = format!(
        "Text: {chars:.0} characters of English prose, espeak-ng preset `{VOICE}` (the same engine \
         voice and parameters raw and through the worker; not `voice_8f2a1c`, which is \
         a neural voice); median of {RUNS} runs.\n\n\
         Raw libespeak-ng in-process (one `espeak_Synth` on the whole text): **{raw_cps:.0} chars/s** \
         (median of all baseline runs). Each ratio is the median of per-run ratios, the baseline \
         measured right before each worker run, after two uncounted warm-up runs of each.\n\n\
         Worker path (`render::produce` on one engine process: 800-character chunks over the pipe, \
         join with word timestamps, resample if needed, encode; no storage or database):\n\n\
         | format | rate | chars/s | ÷ raw | size |\n|---|---|---|---|---|\n{}\n\n\
         Engine processes: {jobs} WAV jobs of 2,000 characters at once — {with_one:.2} jobs/s with 1 process, \
         {with_n:.2} jobs/s with {n} ({:.2}×; the machine has {n} cores).\n",
        rows.join("\n"),
        with_n / with_one
    );
    report::write_section(
        "audio",
        "Audio: worker vs raw libespeak-ng, engine scaling",
        "cargo run --release -p bench -- audio",
        &body,
    )?;
    Ok(())
}
