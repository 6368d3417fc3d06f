//! Audio streamed from a worker to the gateway replica holding a streaming
//! request (`POST /v1/audio/speech`), on the direct exchange
//! `voiceprod.streams`, routing key the replica's own
//! (`JobMessage::SynthesizeV1::stream_to`).
//!
//! A chunk is one message, transient and unacknowledged: the stored file is
//! what is durable, a stream is best effort on top of it. Its body is a
//! 4-byte big-endian length, a JSON [`ChunkHeader`] of that length, then
//! the audio bytes. The chunks of one render (`attempt`) are numbered from
//! 0 and published in order on one channel, so a replica sees them in
//! order, and notices a lost one by its number; the last says so (`last`),
//! or carries the error that ended the render (`error`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::GenerationId;

/// What a chunk is, in front of its audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkHeader {
    pub generation_id: GenerationId,
    /// One render of the generation: a retried job streams again under a
    /// new attempt, from chunk 0.
    pub attempt: Uuid,
    pub seq: u32,
    /// The render's last chunk: the stream is complete after it.
    #[serde(default)]
    pub last: bool,
    /// The render stopped; no more chunks of this attempt will come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ChunkError>,
}

/// Why a render's stream ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkError {
    pub code: String,
    pub message: String,
    /// The job goes back to the queue (a later attempt may stream again);
    /// else the generation failed for good.
    pub retrying: bool,
}

/// The body of a chunk message.
pub fn encode(header: &ChunkHeader, audio: &[u8]) -> Vec<u8> {
    // A header of ids, numbers and strings always serialises; were it not,
    // the empty header would make the chunk unreadable, so it is dropped.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len() + audio.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(audio);
    out
}

/// The header and audio of a chunk message, `None` if it is not one.
pub fn decode(body: &[u8]) -> Option<(ChunkHeader, &[u8])> {
    let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let json = body.get(4..4usize.checked_add(len)?)?;
    let header = serde_json::from_slice(json).ok()?;
    Some((header, &body[4 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_garbage_is_refused() {
        let header = ChunkHeader {
            generation_id: GenerationId::new(),
            attempt: Uuid::new_v4(),
            seq: 3,
            last: true,
            error: None,
        };
        let body = encode(&header, b"\x00\x01audio");
        let (back, audio) = decode(&body).unwrap();
        assert_eq!((back, audio), (header.clone(), &b"\x00\x01audio"[..]));

        let failed = ChunkHeader {
            error: Some(ChunkError {
                code: "synthesis_failed".into(),
                message: "engine crashed".into(),
                retrying: true,
            }),
            ..header
        };
        assert_eq!(decode(&encode(&failed, b"")).unwrap().0, failed);

        for garbage in [
            &b""[..],
            b"\x00\x00",
            b"\x00\x00\x00\x09{}",
            b"\xff\xff\xff\xff{",
        ] {
            assert!(decode(garbage).is_none(), "{garbage:?}");
        }
        assert!(decode(b"\x00\x00\x00\x02{}").is_none(), "fields missing");
    }
}
