//! `e2e-engine engine [--onnxruntime PATH] [--threads N]`: one engine
//! process, exactly `synth-worker engine` (`synth_worker::engine::server`).
//! The end-to-end tests set it as `worker.engine_program` of the workers
//! they start: a test can only name a binary of its own package.

use clap::{Parser, Subcommand};
use synth_worker::engine::server::{EngineArgs, serve_stdio};

#[derive(Parser)]
#[command(
    name = "e2e-engine",
    about = "synth-worker's engine process, for the end-to-end tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve synthesis requests on stdin/stdout (started by the worker).
    Engine(EngineArgs),
}

fn main() -> anyhow::Result<()> {
    let Command::Engine(args) = Cli::parse().command;
    serve_stdio(args)
}
