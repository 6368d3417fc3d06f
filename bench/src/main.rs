//! `voiceprod-bench <benchmark>`: each benchmark starts what it measures
//! (the real services, in-process, on the local PostgreSQL and RabbitMQ),
//! prints its figures and writes its section of BENCHMARKS.md. Never part
//! of the test suite. Run with `--release`.

mod audio;
mod keys;
mod piper;
mod report;
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
    /// Synth-worker audio path per format against raw libespeak-ng, and engine scaling.
    Audio,
    /// An engine process for the audio benchmark (started by it, as the
    /// worker starts `synth-worker engine`).
    #[command(hide = true)]
    Engine(synth_worker::engine::server::EngineArgs),
    /// Piper neural voices: real-time factor, first-audio latency and memory, next to raw espeak-ng.
    Piper,
    /// Cached key verification and revocation propagation.
    Keys,
    /// Webhook delivery throughput with 1 and 2 dispatchers, against plain POSTs.
    Webhooks,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.benchmark {
        Benchmark::Audio => audio::run().await,
        Benchmark::Engine(args) => audio::serve_engine(args),
        Benchmark::Piper => piper::run().await,
        Benchmark::Keys => keys::run().await,
        Benchmark::Webhooks => webhooks::run().await,
    }
}
