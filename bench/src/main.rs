//! `voiceprod-bench <benchmark>`: each benchmark starts what it measures
//! (the real services, in-process, on the local PostgreSQL and RabbitMQ),
//! prints its figures and writes its section of BENCHMARKS.md. Never part
//! of the test suite. Run with `--release`.

mod accept;
mod audio;
mod catalog;
mod clone;
mod keys;
mod kokoro;
mod lanes;
mod latency;
mod load;
mod piper;
mod report;
mod rss;
mod split;
mod stack;
mod stream;
mod webhooks;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "voiceprod-bench",
    about = "voiceprod benchmarks; writes BENCHMARKS.md"
)]
struct Cli {
    #[command(subcommand)]
    benchmark: Benchmark,
}

#[derive(Subcommand)]
enum Benchmark {
    /// Accepted generations/s and POST p50/p99 at a fixed concurrency, vs
    /// pgbench running the same create transaction and vs GET /healthz.
    Accept,
    /// POST → webhook received for a 100-character text at light load.
    Latency,
    /// Idle RSS of each service as a real process (needs the release binaries).
    Rss,
    /// Every benchmark, one after the other.
    All,
    /// Synth-worker audio path per format against raw libespeak-ng, and engine scaling.
    Audio,
    /// An engine process for the audio benchmark (started by it, as the
    /// worker starts `synth-worker engine`).
    #[command(hide = true)]
    Engine(synth_worker::engine::server::EngineArgs),
    /// Piper neural voices: real-time factor, first-audio latency and memory, next to raw espeak-ng.
    Piper,
    /// Chooses the designed presets (shared/src/voices/designed.tsv): blends
    /// of English Kokoro packs, distinct by the speaker encoder and
    /// intelligible to Whisper. Run by bench/design-catalog.
    Catalog,
    /// Cloning onto Kokoro: similarity reached by the blend search against
    /// the nearest preset and the plain blend, held-out presets as speakers.
    Clone,
    /// Kokoro: real-time factor of one engine against onnxruntime from Python
    /// on the same token ids, first-audio latency and memory.
    Kokoro,
    /// Cached key verification and revocation propagation.
    Keys,
    /// Webhook delivery throughput with 1 and 2 dispatchers, against plain POSTs.
    Webhooks,
    /// Streamed speech: time to the first audio byte against the whole answer.
    Stream,
    /// A short request unloaded and beside another workspace's backlog of long jobs.
    Lanes,
    /// One 20,000-character generation on 1 and 2 engines, whole and in parts.
    Split,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.benchmark {
        Benchmark::Accept => accept::run().await,
        Benchmark::Latency => latency::run().await,
        Benchmark::Rss => rss::run().await,
        Benchmark::All => {
            accept::run().await?;
            latency::run().await?;
            webhooks::run().await?;
            keys::run().await?;
            audio::run().await?;
            rss::run().await
        }
        Benchmark::Audio => audio::run().await,
        Benchmark::Engine(args) => audio::serve_engine(args),
        Benchmark::Piper => piper::run().await,
        Benchmark::Kokoro => kokoro::run().await,
        Benchmark::Catalog => catalog::run().await,
        Benchmark::Clone => clone::run().await,
        Benchmark::Keys => keys::run().await,
        Benchmark::Webhooks => webhooks::run().await,
        Benchmark::Stream => stream::run().await,
        Benchmark::Lanes => lanes::run().await,
        Benchmark::Split => split::run().await,
    }
}
