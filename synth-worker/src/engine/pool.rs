//! A pool of engine processes. Each request goes to one free child; with N
//! children N requests render at once, so throughput grows with N.
//!
//! Invariants:
//! - a child serves one request at a time (a semaphore of N permits guards
//!   a free list of N slots, so a permit always finds a slot);
//! - a child that fails mid-request (crash, broken pipe, garbage, timeout)
//!   is killed and replaced, and that request fails as *retryable*; audio
//!   over the PCM limit is killed and replaced too but fails as *permanent*
//!   (`audio_too_long`): the same input would only fail again;
//!   a child found dead while idle is replaced before it is used;
//! - children are killed when the pool is dropped (`kill_on_drop`) and
//!   asked to exit (stdin closed) by [`EnginePool::shutdown`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::protocol::{
    EngineReply, EngineRequest, MAX_HEADER_BYTES, MAX_PCM_BYTES, le_bytes_to_samples,
    read_frame_async, write_frame_async,
};

/// A child that does not greet within this is broken.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A child that takes longer than this plus [`RENDER_TIME_PER_CHAR`] per
/// character is stuck (espeak-ng renders 100,000 characters in ~5 s).
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);
/// A character is ~70 ms of speech; Kokoro on a machine loaded 4× past its
/// cores renders slower than real time (measured: an 800-character chunk
/// took over 140 s), so a render may take twice the audio's length before
/// it counts as stuck (SSML is never chunked: a 100,000-character document
/// is one render).
const RENDER_TIME_PER_CHAR: Duration = Duration::from_millis(150);
/// How long shutdown waits for busy children and for exits.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Audio from an engine, with who rendered it and when (the child's clock).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub samples: Vec<i16>,
    pub sample_rate: u32,
    pub pid: u32,
    pub started_us: u64,
    pub finished_us: u64,
    /// Words spoken, with their first sample.
    pub words: Vec<super::WordMark>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine refused this input; the same request will always fail.
    #[error("{message}")]
    Refused { code: String, message: String },
    /// The child died or misbehaved, or none could be started: try again.
    #[error("engine process failed: {0}")]
    Crashed(String),
    /// The pool is shutting down.
    #[error("the engine pool is shut down")]
    Closed,
}

impl EngineError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

struct EngineProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
}

impl EngineProcess {
    async fn spawn(program: &Path, args: &[String]) -> Result<Self, EngineError> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The child logs to our stderr, so its messages are not lost.
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                EngineError::Crashed(format!("cannot start {}: {e}", program.display()))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(EngineError::Crashed("engine process has no pipes".into()));
        };
        let mut stdout = BufReader::new(stdout);
        let greeting = tokio::time::timeout(START_TIMEOUT, read_reply(&mut stdout))
            .await
            .map_err(|_| EngineError::Crashed("engine process did not start in time".into()))??;
        match greeting {
            EngineReply::Ready { pid, sample_rate } => {
                tracing::debug!(pid, sample_rate, "engine process ready");
                Ok(Self {
                    child,
                    stdin,
                    stdout,
                    pid,
                })
            }
            EngineReply::Failed { message, .. } => Err(EngineError::Crashed(message)),
            other => Err(EngineError::Crashed(format!(
                "unexpected greeting {other:?}"
            ))),
        }
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn if_alive(mut self) -> Option<Self> {
        self.is_alive().then_some(self)
    }

    /// `Err` means the process is broken; a refusal is `Ok(Err(..))`.
    async fn render(
        &mut self,
        request: &EngineRequest,
        max_pcm_bytes: u32,
    ) -> Result<Result<Rendered, EngineError>, EngineError> {
        let payload =
            serde_json::to_vec(request).map_err(|e| EngineError::Crashed(e.to_string()))?;
        write_frame_async(&mut self.stdin, &payload)
            .await
            .map_err(broken)?;
        match read_reply(&mut self.stdout).await? {
            EngineReply::Rendered {
                sample_rate,
                samples,
                pid,
                started_us,
                finished_us,
                words,
            } => {
                // Too much audio is this input's fault, not the process's:
                // permanent (`audio_too_long`), never retried. The frame is
                // still in the pipe, so the process is replaced all the same.
                if samples.saturating_mul(2) > u64::from(max_pcm_bytes) {
                    return Err(EngineError::Refused {
                        code: "audio_too_long".to_owned(),
                        message: format!(
                            "the audio ({samples} samples) is over the {max_pcm_bytes}-byte limit of one render"
                        ),
                    });
                }
                let pcm = read_frame_async(&mut self.stdout, max_pcm_bytes)
                    .await
                    .map_err(broken)?;
                if pcm.len() as u64 != samples * 2 {
                    return Err(EngineError::Crashed(
                        "PCM frame does not match its header".into(),
                    ));
                }
                let samples = le_bytes_to_samples(&pcm);
                Ok(Ok(Rendered {
                    samples,
                    sample_rate,
                    pid,
                    started_us,
                    finished_us,
                    words,
                }))
            }
            EngineReply::Failed { code, message } => {
                Ok(Err(EngineError::Refused { code, message }))
            }
            EngineReply::Ready { .. } => Err(EngineError::Crashed(
                "unexpected greeting mid-request".into(),
            )),
        }
    }
}

async fn read_reply(stdout: &mut BufReader<ChildStdout>) -> Result<EngineReply, EngineError> {
    let frame = read_frame_async(stdout, MAX_HEADER_BYTES)
        .await
        .map_err(broken)?;
    serde_json::from_slice(&frame)
        .map_err(|e| EngineError::Crashed(format!("unreadable engine reply: {e}")))
}

fn broken(e: std::io::Error) -> EngineError {
    EngineError::Crashed(format!("engine process went away: {e}"))
}

struct Slot {
    index: usize,
    process: Option<EngineProcess>,
}

struct Inner {
    program: PathBuf,
    /// `engine` and its options.
    args: Vec<String>,
    size: usize,
    permits: Arc<Semaphore>,
    /// Children bulk renders may hold at once: `size` less the ones kept
    /// for interactive renders.
    bulk: usize,
    bulk_permits: Arc<Semaphore>,
    idle: Mutex<Vec<Slot>>,
    /// The largest PCM frame accepted ([`MAX_PCM_BYTES`] unless a test
    /// lowers it).
    max_pcm_bytes: AtomicU32,
    /// Interactive renders waiting for a child: while there are any, a bulk
    /// render that gets a permit hands it on and waits ([`Priority`]).
    interactive_waiting: AtomicUsize,
    no_interactive_waiting: Notify,
}

/// Whose render gets the next free child first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Interactive work (short texts, `shared::amqp::Lane::Interactive`):
    /// served before every bulk render still waiting, so it waits at most
    /// for the renders already running.
    Interactive,
    #[default]
    Bulk,
}

/// Counts an interactive render as waiting until dropped.
struct Waiting<'a>(&'a Inner);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.interactive_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.no_interactive_waiting.notify_waiters();
        }
    }
}

impl Inner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A slot taken for one request; given back on drop, even when the request
/// future is cancelled (then without its process, which was mid-request).
struct Lease {
    inner: Arc<Inner>,
    slot: Option<Slot>,
    _permit: OwnedSemaphorePermit,
    /// A bulk render's share of the children bulk may use.
    _bulk: Option<OwnedSemaphorePermit>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.inner.idle().push(slot);
        }
    }
}

/// N engine processes; cheap to clone.
#[derive(Clone)]
pub struct EnginePool {
    inner: Arc<Inner>,
}

impl EnginePool {
    /// Starts `size` (at least 1) children of `program engine`; fails if
    /// any cannot start, so a broken install is found at start-up.
    pub async fn start(program: PathBuf, size: usize) -> Result<Self, EngineError> {
        Self::start_with_args(program, vec!["engine".to_owned()], size).await
    }

    /// [`EnginePool::start`] with the child's arguments (`engine …`).
    pub async fn start_with_args(
        program: PathBuf,
        args: Vec<String>,
        size: usize,
    ) -> Result<Self, EngineError> {
        Self::start_reserving(program, args, size, 0).await
    }

    /// `size` children for any render and `reserved` more that only
    /// interactive renders use ([`Priority`]): an interactive render then
    /// finds a free child at once even while bulk renders keep the others
    /// busy, and shares the cores with them instead of waiting for one.
    pub async fn start_reserving(
        program: PathBuf,
        args: Vec<String>,
        size: usize,
        reserved: usize,
    ) -> Result<Self, EngineError> {
        let bulk = size.max(1);
        let size = bulk + reserved;
        let mut slots = Vec::with_capacity(size);
        for index in 0..size {
            let process = EngineProcess::spawn(&program, &args).await?;
            slots.push(Slot {
                index,
                process: Some(process),
            });
        }
        tracing::info!(engines = size, program = %program.display(), ?args, "engine processes started");
        Ok(Self {
            inner: Arc::new(Inner {
                program,
                args,
                size,
                permits: Arc::new(Semaphore::new(size)),
                bulk,
                bulk_permits: Arc::new(Semaphore::new(bulk)),
                idle: Mutex::new(slots),
                max_pcm_bytes: AtomicU32::new(MAX_PCM_BYTES),
                interactive_waiting: AtomicUsize::new(0),
                no_interactive_waiting: Notify::new(),
            }),
        })
    }

    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Children bulk renders may hold at once (`size` less the reserve).
    pub fn bulk_size(&self) -> usize {
        self.inner.bulk
    }

    /// Lowers the largest audio a render may return (tests: so that a
    /// render over the limit needs seconds of audio, not hours).
    pub fn set_max_pcm_bytes(&self, bytes: u32) {
        self.inner.max_pcm_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Children alive now: the busy ones and the idle ones still running.
    pub fn alive(&self) -> usize {
        let mut idle = self.inner.idle();
        let busy = self.inner.size - idle.len();
        busy + idle
            .iter_mut()
            .filter_map(|s| s.process.as_mut())
            .map(EngineProcess::is_alive)
            .filter(|&alive| alive)
            .count()
    }

    /// Process ids of the idle children (for tests and diagnostics).
    pub fn idle_pids(&self) -> Vec<u32> {
        self.inner
            .idle()
            .iter()
            .filter_map(|s| s.process.as_ref().map(|p| p.pid))
            .collect()
    }

    /// Renders on a free child, waiting for one if all are busy.
    pub async fn render(&self, request: &EngineRequest) -> Result<Rendered, EngineError> {
        self.render_as(request, Priority::Bulk).await
    }

    /// A free child's permit; interactive renders first. The permits are
    /// first come, first served, so a bulk render that is granted one while
    /// an interactive render waits hands it on (to the next in line, which
    /// is the interactive render once the bulk ones before it did the same)
    /// and waits until no interactive render does.
    async fn permit(
        &self,
        priority: Priority,
    ) -> Result<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>), EngineError> {
        let inner = &self.inner;
        let acquire = || async {
            inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| EngineError::Closed)
        };
        if priority == Priority::Interactive {
            inner.interactive_waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(inner);
            return Ok((acquire().await?, None));
        }
        let bulk = inner
            .bulk_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EngineError::Closed)?;
        loop {
            loop {
                let notified = inner.no_interactive_waiting.notified();
                if inner.interactive_waiting.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
            let permit = acquire().await?;
            if inner.interactive_waiting.load(Ordering::SeqCst) == 0 {
                return Ok((permit, Some(bulk)));
            }
        }
    }

    /// [`EnginePool::render`] with a priority.
    pub async fn render_as(
        &self,
        request: &EngineRequest,
        priority: Priority,
    ) -> Result<Rendered, EngineError> {
        let (permit, bulk) = self.permit(priority).await?;
        let slot = self.inner.idle().pop().ok_or(EngineError::Closed)?;
        let mut lease = Lease {
            inner: self.inner.clone(),
            slot: Some(slot),
            _permit: permit,
            _bulk: bulk,
        };
        let Some(slot) = lease.slot.as_mut() else {
            return Err(EngineError::Closed);
        };
        let mut process = match slot.process.take().and_then(EngineProcess::if_alive) {
            Some(p) => p,
            None => {
                tracing::warn!(
                    slot = slot.index,
                    "engine process is gone; starting a new one"
                );
                EngineProcess::spawn(&self.inner.program, &self.inner.args).await?
            }
        };
        let max_pcm_bytes = self.inner.max_pcm_bytes.load(Ordering::Relaxed);
        let chars = u32::try_from(request.text.chars().count()).unwrap_or(u32::MAX);
        let timeout = RENDER_TIMEOUT + RENDER_TIME_PER_CHAR * chars;
        match tokio::time::timeout(timeout, process.render(request, max_pcm_bytes)).await {
            Ok(Ok(result)) => {
                slot.process = Some(process);
                result
            }
            failure => {
                let error = match failure {
                    Ok(Err(e)) => e,
                    _ => EngineError::Crashed("engine process timed out".into()),
                };
                tracing::warn!(slot = slot.index, pid = process.pid, error = %error, "engine process failed; replacing it");
                let _ = process.child.start_kill();
                // Replace it now rather than on the next request, so that
                // readiness sees a full pool again as soon as possible.
                match EngineProcess::spawn(&self.inner.program, &self.inner.args).await {
                    Ok(p) => slot.process = Some(p),
                    Err(e) => {
                        tracing::error!(slot = slot.index, error = %e, "could not restart the engine process")
                    }
                }
                Err(error)
            }
        }
    }

    /// Replaces idle children that died (readiness calls it, so a pool that
    /// lost a child while idle heals without waiting for a job).
    pub async fn revive(&self) {
        while let Ok(permit) = self.inner.permits.clone().try_acquire_owned() {
            let dead = {
                let mut idle = self.inner.idle();
                let pos = idle
                    .iter_mut()
                    .position(|s| !s.process.as_mut().is_some_and(|p| p.is_alive()));
                pos.map(|i| idle.swap_remove(i))
            };
            let Some(slot) = dead else { return };
            let mut lease = Lease {
                inner: self.inner.clone(),
                slot: Some(slot),
                _permit: permit,
                _bulk: None,
            };
            let Some(slot) = lease.slot.as_mut() else {
                return;
            };
            tracing::warn!(
                slot = slot.index,
                "engine process is gone; starting a new one"
            );
            match EngineProcess::spawn(&self.inner.program, &self.inner.args).await {
                Ok(p) => slot.process = Some(p),
                Err(e) => {
                    tracing::error!(slot = slot.index, error = %e, "could not restart the engine process");
                    return;
                }
            }
        }
    }

    /// Waits for busy children, then closes their stdin so they exit, and
    /// kills those that do not. Later requests fail with `Closed`.
    pub async fn shutdown(&self) {
        let size = u32::try_from(self.inner.size).unwrap_or(u32::MAX);
        let all =
            tokio::time::timeout(SHUTDOWN_TIMEOUT, self.inner.permits.acquire_many(size)).await;
        self.inner.permits.close();
        self.inner.bulk_permits.close();
        drop(all);
        let slots = std::mem::take(&mut *self.inner.idle());
        for slot in slots {
            let Some(EngineProcess {
                mut child, stdin, ..
            }) = slot.process
            else {
                continue;
            };
            drop(stdin);
            if tokio::time::timeout(SHUTDOWN_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        tracing::info!("engine processes stopped");
    }
}
