//! Captures the log lines of a test binary, as the services write them in
//! JSON, to check what they carry. One global subscriber per process (the
//! first caller installs it); it keeps only the lines that contain a string
//! some test watches (a trace id), so parallel tests cost little.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use shared::settings::LogFormat;

#[derive(Default)]
struct Shared {
    needles: Vec<String>,
    lines: Vec<String>,
}

fn shared() -> &'static Arc<Mutex<Shared>> {
    static SHARED: OnceLock<Arc<Mutex<Shared>>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let shared = Arc::new(Mutex::new(Shared::default()));
        // Info, whatever RUST_LOG says: the lines checked are info lines.
        shared::telemetry::init_with(
            tracing_subscriber::EnvFilter::new("info"),
            LogFormat::Json,
            Capture {
                shared: shared.clone(),
                buffer: Vec::new(),
            },
            false,
        );
        shared
    })
}

/// The JSON log lines containing `needle`, from now on.
pub struct Watch {
    needle: String,
}

impl Watch {
    /// Starts keeping the lines that contain `needle` (installing the
    /// capturing subscriber if this process has none yet).
    pub fn start(needle: &str) -> Self {
        shared().lock().unwrap().needles.push(needle.to_owned());
        Self {
            needle: needle.to_owned(),
        }
    }

    /// The lines kept so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        shared()
            .lock()
            .unwrap()
            .lines
            .iter()
            .filter(|l| l.contains(&self.needle))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// One writer per event: buffers the line, keeps it on drop if watched.
struct Capture {
    shared: Arc<Mutex<Shared>>,
    buffer: Vec<u8>,
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buffer).trim_end().to_owned();
        if let Ok(mut shared) = self.shared.lock()
            && shared.needles.iter().any(|n| line.contains(n.as_str()))
        {
            shared.lines.push(line);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        Capture {
            shared: self.shared.clone(),
            buffer: Vec::new(),
        }
    }
}
