//! The `synth-worker engine` process: one libespeak-ng per process (and,
//! with `--onnxruntime`, one ONNX Runtime environment for Piper, or for
//! Kokoro with `--kokoro DIR`), serving
//! requests from stdin and answering on stdout (see `protocol`) until its
//! stdin closes. Errors are answered as `Failed` replies; the process only
//! dies if the library itself crashes, and the worker replaces it then.
//!
//! Before anything else, the protocol's stdout is moved to a private file
//! descriptor and fd 1 is pointed at stderr, so that a stray `printf` of the
//! C library can never corrupt a frame.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::ffi::Espeak;
use super::kokoro::Kokoro;
use super::piper::Piper;
use super::protocol::{
    EngineReply, EngineRequest, MAX_PCM_BYTES, MAX_REQUEST_BYTES, read_frame, samples_to_le_bytes,
    write_frame,
};
use super::{Engine, Engines};

unsafe extern "C" {
    fn dup(fd: std::ffi::c_int) -> std::ffi::c_int;
    fn dup2(old: std::ffi::c_int, new: std::ffi::c_int) -> std::ffi::c_int;
    fn fcntl(fd: std::ffi::c_int, cmd: std::ffi::c_int, ...) -> std::ffi::c_int;
}

/// `F_SETPIPE_SZ` of Linux's `fcntl`.
#[cfg(target_os = "linux")]
const F_SETPIPE_SZ: std::ffi::c_int = 1031;

/// Options of the `engine` subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// ONNX Runtime's shared library: this process also renders Piper voices.
    #[arg(long)]
    pub onnxruntime: Option<PathBuf>,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The Kokoro directory (`kokoro.dir`): this process renders Kokoro
    /// voices (and no Piper ones); needs `--onnxruntime`.
    #[arg(long)]
    pub kokoro: Option<PathBuf>,
    /// Kokoro: sentences packed into one inference up to this many tokens
    /// (default `kokoro::BATCH_TOKENS`; for benchmarks).
    #[arg(long)]
    pub kokoro_batch_tokens: Option<usize>,
}

impl EngineArgs {
    /// The arguments that start a child with these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["engine".to_owned()];
        if let Some(p) = &self.onnxruntime {
            args.push("--onnxruntime".to_owned());
            args.push(p.display().to_string());
            args.push("--threads".to_owned());
            args.push(self.threads.to_string());
        }
        if let Some(dir) = &self.kokoro {
            args.push("--kokoro".to_owned());
            args.push(dir.display().to_string());
        }
        if let Some(n) = self.kokoro_batch_tokens {
            args.push("--kokoro-batch-tokens".to_owned());
            args.push(n.to_string());
        }
        args
    }
}

/// Serves libespeak-ng (and Piper, with `--onnxruntime`) until stdin
/// closes. Called by `main` for the hidden subcommand. A start-up failure
/// is the greeting's `Failed`, so the worker can say what is missing.
pub fn serve_stdio(args: EngineArgs) -> anyhow::Result<()> {
    let out = protocol_stdout().context("Failed to set up the engine's output")?;
    let mut out = BufWriter::new(out);
    let Some(espeak) = Espeak::init() else {
        send(
            &mut out,
            &failed(
                "engine_init_failed",
                "libespeak-ng could not be initialised (is espeak-ng-data installed?)",
            ),
        )?;
        anyhow::bail!("libespeak-ng could not be initialised");
    };
    if let Some(dir) = &args.kokoro {
        let started = match &args.onnxruntime {
            None => Err("a Kokoro engine needs --onnxruntime".to_owned()),
            Some(library) => {
                Kokoro::init(library, args.threads, dir).map(|k| match args.kokoro_batch_tokens {
                    Some(n) => k.with_batch_tokens(n),
                    None => k,
                })
            }
        };
        return match started {
            Ok(kokoro) => serve(
                Engines {
                    espeak,
                    piper: None,
                    kokoro: Some(kokoro),
                },
                out,
            ),
            Err(message) => {
                send(&mut out, &failed("engine_init_failed", &message))?;
                anyhow::bail!("{message}");
            }
        };
    }
    let piper = match &args.onnxruntime {
        None => None,
        Some(library) => match Piper::init(library, args.threads) {
            Ok(p) => Some(p),
            Err(message) => {
                send(&mut out, &failed("engine_init_failed", &message))?;
                anyhow::bail!("{message}");
            }
        },
    };
    serve(
        Engines {
            espeak,
            piper,
            kokoro: None,
        },
        out,
    )
}

/// Serves any [`Engine`] on stdin and `out` until stdin closes.
pub fn serve(mut engine: impl Engine, mut out: impl Write) -> anyhow::Result<()> {
    let mut input = BufReader::new(std::io::stdin().lock());
    let pid = std::process::id();
    send(
        &mut out,
        &EngineReply::Ready {
            sample_rate: engine.sample_rate(),
            pid,
        },
    )?;

    while let Some(frame) =
        read_frame(&mut input, MAX_REQUEST_BYTES).context("Failed to read a request")?
    {
        let request: EngineRequest = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                send(
                    &mut out,
                    &failed("bad_request", &format!("unreadable engine request: {e}")),
                )?;
                continue;
            }
        };
        let started_us = now_us();
        let result = engine.synthesize(&request);
        let finished_us = now_us();
        match result {
            // More than the worker accepts in a frame (and a u32 length
            // can carry): refused, so the worker fails the generation
            // instead of replacing a healthy process and retrying.
            Ok(synthesis) if synthesis.samples.len() as u64 * 2 > u64::from(MAX_PCM_BYTES) => {
                send(
                    &mut out,
                    &failed(
                        "audio_too_long",
                        &format!(
                            "the audio ({} samples) is over the {MAX_PCM_BYTES}-byte frame limit",
                            synthesis.samples.len()
                        ),
                    ),
                )?;
            }
            Ok(synthesis) => {
                let sample_rate = match synthesis.sample_rate {
                    0 => engine.sample_rate(),
                    r => r,
                };
                let reply = EngineReply::Rendered {
                    sample_rate,
                    samples: synthesis.samples.len() as u64,
                    pid,
                    started_us,
                    finished_us,
                    words: synthesis.words,
                };
                write_frame(&mut out, &serde_json::to_vec(&reply)?)?;
                write_frame(&mut out, &samples_to_le_bytes(&synthesis.samples))?;
                out.flush()?;
            }
            Err(e) => send(&mut out, &failed(&e.code, &e.message))?,
        }
    }
    Ok(())
}

fn failed(code: &str, message: &str) -> EngineReply {
    EngineReply::Failed {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

fn send(out: &mut impl Write, reply: &EngineReply) -> anyhow::Result<()> {
    write_frame(out, &serde_json::to_vec(reply)?)?;
    out.flush()?;
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A private duplicate of stdout for the protocol; fd 1 becomes stderr.
fn protocol_stdout() -> std::io::Result<File> {
    std::io::stdout().flush()?;
    // SAFETY: plain fd syscalls on descriptors this process owns; the new
    // descriptor is owned by the returned File alone.
    unsafe {
        let fd = dup(1);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // A 1 MiB pipe (Linux's default maximum) instead of 64 KiB: a chunk's
        // audio crosses in a few writes rather than dozens of wake-ups. Best
        // effort; the default works too.
        #[cfg(target_os = "linux")]
        let _ = fcntl(fd, F_SETPIPE_SZ, 1 << 20);
        Ok(File::from_raw_fd(fd))
    }
}
