//! The wire between the worker and its engine processes, over the child's
//! stdin/stdout: frames of a little-endian `u32` length and that many bytes.
//!
//! - The child first sends one [`EngineReply::Ready`] (or `Failed`, then exits).
//! - Then, per request: the worker sends an [`EngineRequest`] frame (JSON);
//!   the child answers with an [`EngineReply`] frame (JSON) and, only after
//!   `Rendered`, one more frame of raw s16le mono PCM.
//!
//! Invariant: exactly one request is outstanding per child, so replies
//! never need ids; anything off-protocol means the child is broken and is
//! replaced.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Requests are small (text ≤ 100,000 characters); more is a broken peer.
pub const MAX_REQUEST_BYTES: u32 = 16 * 1024 * 1024;
/// ~6.7 hours of 22,050 Hz s16 audio, far above what 100,000 characters give.
/// Audio over it is refused as `audio_too_long` (permanent), not sent.
pub const MAX_PCM_BYTES: u32 = 1024 * 1024 * 1024;
/// Headers are JSON with the word events (~40 bytes a word).
pub const MAX_HEADER_BYTES: u32 = 16 * 1024 * 1024;

/// What to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineRequest {
    pub text: String,
    /// Interpret `<…>` as SSML.
    pub ssml: bool,
    /// espeak-ng voice, with `+variant` when the preset has one.
    pub voice: String,
    /// Words per minute, already clamped to espeak-ng's range.
    pub rate: u16,
    /// Base pitch 0–100.
    pub pitch: u8,
    /// Pitch range 0–100 (espeak-ng's default 50; 0 is monotone).
    #[serde(default = "default_range")]
    pub range: u8,
    /// Set for a neural voice: render with this Piper model (espeak-ng, in
    /// `voice`, only phonemises; `rate`, `pitch`, `range` are unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piper: Option<PiperRequest>,
    /// Set for a Kokoro voice: render with Kokoro (espeak-ng, in `voice`,
    /// only phonemises; `rate`, `pitch`, `range` are unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kokoro: Option<KokoroRequest>,
    /// The most samples this request may produce (its share of the
    /// generation's audio ceiling): past it the engine stops and refuses
    /// with `audio_too_long`, so no input makes it buffer unbounded audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples: Option<u64>,
}

/// A Piper model and how to drive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PiperRequest {
    /// The `.onnx` file; its config is the same path plus `.json`.
    pub model: std::path::PathBuf,
    /// Speaker id of a multi-speaker model.
    #[serde(default)]
    pub speaker: Option<u32>,
    /// 1.0 is the model's own pace; 2.0 twice as fast (`length_scale / speed`).
    pub speed: f32,
}

/// A Kokoro voice and its pace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KokoroRequest {
    /// The voice packs and their weights (a preset is one pack).
    pub packs: Vec<shared::voices::KokoroPack>,
    /// 1.0 is the model's own pace; 2.0 twice as fast.
    pub speed: f32,
}

fn default_range() -> u8 {
    50
}

/// A word the engine spoke: where it is in the request's text (characters,
/// from 0), the sample at which it starts and, when the engine knows it
/// (Kokoro, from its durations), the sample at which it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WordMark {
    pub char_start: u32,
    pub char_len: u32,
    pub sample: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

/// The child's answer (and its greeting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EngineReply {
    /// Start-up succeeded.
    Ready { sample_rate: u32, pid: u32 },
    /// A PCM frame of `samples` samples follows. The times (µs since the
    /// Unix epoch, the child's clock) bracket the synthesis itself.
    Rendered {
        sample_rate: u32,
        samples: u64,
        pid: u32,
        started_us: u64,
        finished_us: u64,
        #[serde(default)]
        words: Vec<WordMark>,
    },
    /// The engine refused this request (or could not start): permanent for
    /// this input, the process itself is fine (unless it was the greeting).
    Failed { code: String, message: String },
}

/// Writes one frame (blocking; the child side).
pub fn write_frame(w: &mut impl std::io::Write, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(payload)
}

/// Reads one frame (blocking); `None` on a clean end of input between frames.
pub fn read_frame(r: &mut impl std::io::Read, max: u32) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > max {
        return Err(too_large(len));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Writes one frame (async; the worker side).
pub async fn write_frame_async(
    w: &mut (impl AsyncWrite + Unpin),
    payload: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes()).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame (async); an end of input is an error here, because the
/// worker only reads when the child owes it an answer.
pub async fn read_frame_async(
    r: &mut (impl AsyncRead + Unpin),
    max: u32,
) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32_le().await?;
    if len > max {
        return Err(too_large(len));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

fn too_large(len: u32) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("frame of {len} bytes is over the limit"),
    )
}

/// s16 samples as little-endian bytes (the `pcm` wire and file format).
pub fn samples_to_le_bytes(samples: &[i16]) -> Vec<u8> {
    let mut out = vec![0u8; samples.len() * 2];
    write_le_bytes(samples, &mut out);
    out
}

/// Writes `samples` as little-endian bytes into `out` (`2 × len` bytes);
/// a fixed-size loop the compiler turns into a plain copy.
pub fn write_le_bytes(samples: &[i16], out: &mut [u8]) {
    for (dst, s) in out.chunks_exact_mut(2).zip(samples) {
        dst.copy_from_slice(&s.to_le_bytes());
    }
}

/// The inverse of [`samples_to_le_bytes`]; a trailing odd byte is dropped.
pub fn le_bytes_to_samples(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_between_frames_is_clean() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        write_frame(&mut wire, b"").unwrap();
        let mut r = wire.as_slice();
        assert_eq!(read_frame(&mut r, 100).unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, 100).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 100).unwrap().is_none());
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[0u8; 10]).unwrap();
        assert!(read_frame(&mut wire.as_slice(), 9).is_err());
    }

    #[test]
    fn reply_wire_format_is_tagged() {
        let json = serde_json::to_value(EngineReply::Ready {
            sample_rate: 22050,
            pid: 7,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "ready", "sampleRate": 22050, "pid": 7})
        );
    }

    #[test]
    fn samples_round_trip_through_bytes() {
        let s = [0i16, 1, -1, i16::MAX, i16::MIN];
        assert_eq!(le_bytes_to_samples(&samples_to_le_bytes(&s)), s);
    }
}
