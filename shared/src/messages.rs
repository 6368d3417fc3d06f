//! Messages on the broker: serde-only, JSON, each with a `type` tag that
//! carries its version, so a consumer can refuse what it does not know
//! (a poison message) instead of misreading it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{GenerationId, MessageId, WebhookId, WorkspaceId};

/// On `voiceprod.jobs`, routing key `synth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobMessage {
    /// Render one generation. Everything else is read from its row, so a
    /// job is small and a redelivery sees the row's current status.
    ///
    /// `redrive` is the re-drive number the copy was published with (0,
    /// and absent on the wire, for the first publish): a worker drops a
    /// copy older than its generation's `redrives`
    /// (`crate::models::lease`).
    ///
    /// `stream_to` asks the worker to also send the audio as it is
    /// rendered, to this routing key of `voiceprod.streams`
    /// (`crate::streams`): the gateway replica that holds a streaming
    /// request. Absent for everything else, and in a re-drive.
    #[serde(rename = "synthesize.v1", rename_all = "camelCase")]
    SynthesizeV1 {
        generation_id: GenerationId,
        #[serde(default, skip_serializing_if = "is_zero")]
        redrive: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_to: Option<String>,
    },
    /// Help render a long generation split into `parts` parts
    /// (`crate::models::part`): claim its next free part, render and store
    /// it, and go on while there are free parts. The worker that holds the
    /// generation's lease publishes these and joins the parts; a copy that
    /// finds no free part (or a worker that splits differently: `parts`
    /// differs from its own split) does nothing.
    #[serde(rename = "synthesize-parts.v1", rename_all = "camelCase")]
    SynthesizePartsV1 {
        generation_id: GenerationId,
        parts: i32,
    },
    /// Clone a voice onto Kokoro: search the blend of voice packs nearest
    /// its samples (`crate::models::voice_clone`). Only a fast path: the
    /// voice's `voice_clones` row is the job, which the workers' scan finds
    /// when this message is lost.
    #[serde(rename = "clone-voice.v1", rename_all = "camelCase")]
    CloneVoiceV1 { voice_id: String },
    /// Render the preview of `voice` (`crate::previews`): `text` as
    /// `format`, put at `key`. Not a generation: no row, no workspace,
    /// nothing charged; a lost copy is harmless (the next request for the
    /// preview publishes another).
    #[serde(rename = "preview.v1", rename_all = "camelCase")]
    PreviewV1 {
        voice: crate::voices::EngineVoice,
        text: String,
        format: crate::formats::AudioFormat,
        key: String,
    },
}

impl JobMessage {
    /// The first job of a generation.
    pub fn synthesize(generation_id: GenerationId) -> Self {
        Self::SynthesizeV1 {
            generation_id,
            redrive: 0,
            stream_to: None,
        }
    }

    /// The first job of a generation whose audio is streamed to `stream_to`.
    pub fn synthesize_streamed(generation_id: GenerationId, stream_to: Option<String>) -> Self {
        Self::SynthesizeV1 {
            generation_id,
            redrive: 0,
            stream_to,
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The events of docs/api.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "generation.completed")]
    GenerationCompleted,
    #[serde(rename = "generation.failed")]
    GenerationFailed,
    #[serde(rename = "voice.ready")]
    VoiceReady,
    #[serde(rename = "voice.failed")]
    VoiceFailed,
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// The public name, which is also the routing key on `voiceprod.events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenerationCompleted => "generation.completed",
            Self::GenerationFailed => "generation.failed",
            Self::VoiceReady => "voice.ready",
            Self::VoiceFailed => "voice.failed",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::GenerationCompleted,
            Self::GenerationFailed,
            Self::VoiceReady,
            Self::VoiceFailed,
            Self::WebhookTest,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// On `voiceprod.events`, routing key = the event's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventMessage {
    #[serde(rename = "event.v1")]
    V1(Event),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique per event; the `webhook-id` of every delivery of it.
    pub id: MessageId,
    pub event: EventType,
    pub workspace_id: WorkspaceId,
    pub occurred_at: DateTime<Utc>,
    /// The webhook payload's `data`, as docs/api.md shows it, less `audioUrl`.
    pub data: serde_json::Value,
    /// A generation whose audio URL the dispatcher signs into `data.audioUrl`
    /// when it sends, so that every attempt carries a fresh URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_of: Option<GenerationId>,
    /// The one endpoint of the workspace this event goes to, whatever its
    /// subscriptions (`webhook.test`); absent on every other event, and in
    /// messages written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_endpoint: Option<WebhookId>,
}

/// The `data` of each webhook event (docs/api.md "Webhooks"); the body is
/// `{"event": "<type>", "data": {...}}`.
/// `data` of `generation.completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerationCompletedData {
    pub id: GenerationId,
    /// `completed`.
    #[schema(example = "completed")]
    pub status: String,
    #[schema(example = "voice_8f2a1c")]
    pub voice_id: String,
    #[schema(example = "wav")]
    pub format: String,
    pub duration_ms: i64,
    /// A signed, expiring URL of the audio that needs no key, minted for
    /// each attempt by the dispatcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub completed_at: DateTime<Utc>,
    /// The generation's `metadata`, when it had some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// `data` of `generation.failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerationFailedData {
    pub id: GenerationId,
    /// `failed`.
    #[schema(example = "failed")]
    pub status: String,
    pub voice_id: String,
    pub format: String,
    /// Why: `{"code", "message"}`.
    pub error: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// `data` of `voice.ready`: the cloned or designed voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoiceReadyData {
    pub id: String,
    pub name: String,
    /// `cloned` or `designed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub language: String,
    /// `ready`.
    pub status: String,
    /// `kokoro` or `espeak-ng`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "kokoro")]
    pub engine: Option<String>,
    /// A voice cloned onto Kokoro: the speaker encoder's cosine between its
    /// speech and the samples (1 is the same voice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.83)]
    pub similarity: Option<f32>,
}

/// `data` of `voice.failed`: a voice cloned onto Kokoro that could not be
/// made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoiceFailedData {
    pub id: String,
    pub name: String,
    /// `cloned`.
    #[serde(rename = "type")]
    pub kind: String,
    pub language: String,
    /// `failed`.
    pub status: String,
    /// Why: `{"code", "message"}`.
    pub error: serde_json::Value,
}

/// `data` of `webhook.test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTestData {
    pub endpoint_id: WebhookId,
    pub message: String,
}

/// Keys revoked or rotated, on the `voiceprod.keys` fanout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum KeyMessage {
    /// Drop these key hashes (hex SHA-256) from every verification cache.
    #[serde(rename = "key.invalidated.v1", rename_all = "camelCase")]
    InvalidatedV1 { key_hashes: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_wire_format_is_tagged_and_versioned() {
        let id = GenerationId::new();
        let json = serde_json::to_value(JobMessage::synthesize(id)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "synthesize.v1", "generationId": id.to_string()})
        );
        let redriven = JobMessage::SynthesizeV1 {
            generation_id: id,
            redrive: 2,
            stream_to: None,
        };
        let json = serde_json::to_value(&redriven).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "synthesize.v1", "generationId": id.to_string(), "redrive": 2})
        );
        assert_eq!(
            serde_json::from_value::<JobMessage>(json).unwrap(),
            redriven
        );
        assert!(
            serde_json::from_str::<JobMessage>(r#"{"type":"synthesize.v9","generationId":"x"}"#)
                .is_err()
        );
        let streamed = JobMessage::synthesize_streamed(id, Some("gw.1".into()));
        assert_eq!(
            serde_json::to_value(&streamed).unwrap(),
            serde_json::json!({"type": "synthesize.v1", "generationId": id.to_string(), "streamTo": "gw.1"})
        );
        let parts = JobMessage::SynthesizePartsV1 {
            generation_id: id,
            parts: 3,
        };
        assert_eq!(
            serde_json::to_value(&parts).unwrap(),
            serde_json::json!({"type": "synthesize-parts.v1", "generationId": id.to_string(), "parts": 3})
        );
    }

    #[test]
    fn event_round_trips() {
        let e = EventMessage::V1(Event {
            id: MessageId::new(),
            event: EventType::GenerationCompleted,
            workspace_id: WorkspaceId::new(),
            occurred_at: Utc::now(),
            data: serde_json::json!({"id": "gen_1"}),
            audio_of: Some(GenerationId::new()),
            target_endpoint: None,
        });
        let s = serde_json::to_string(&e).unwrap();
        assert!(
            s.contains(r#""type":"event.v1""#) && s.contains(r#""event":"generation.completed""#)
        );
        assert_eq!(serde_json::from_str::<EventMessage>(&s).unwrap(), e);
    }

    #[test]
    fn events_without_a_target_endpoint_still_parse() {
        let old = r#"{"type":"event.v1","id":"msg_0190f5d2a0b47c1e9a3b5d7f0e2c4a6b",
            "event":"generation.failed","workspaceId":"ws_0190f5d2a0b47c1e9a3b5d7f0e2c4a6b",
            "occurredAt":"2026-05-29T12:00:00Z","data":{}}"#;
        let EventMessage::V1(e) = serde_json::from_str::<EventMessage>(old).unwrap();
        assert_eq!(e.target_endpoint, None);
        let target = WebhookId::new();
        let test = Event {
            event: EventType::WebhookTest,
            target_endpoint: Some(target),
            ..e
        };
        let s = serde_json::to_string(&test).unwrap();
        assert!(
            s.contains(&format!(r#""targetEndpoint":"{target}""#)),
            "{s}"
        );
    }
}
