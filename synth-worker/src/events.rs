//! The `generation.completed` / `generation.failed` events of a finished
//! generation, built from its row alone so that a redelivered job can emit
//! them again after a crash.
//!
//! Invariant: an event's id is derived from (generation, event type)
//! (UUIDv5), so a re-emitted event carries the same `webhook-id` and the
//! dispatcher's unique (event, endpoint) delivery row deduplicates it.

use shared::ids::{GenerationId, MessageId, WorkspaceId};
use shared::messages::{Event, EventType, GenerationCompletedData, GenerationFailedData};
use shared::models::{Generation, GenerationStatus};
use uuid::Uuid;

/// Namespace of voiceprod event ids (fixed forever: ids depend on it).
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x125f_f161_4553_44e8_a2a3_86c8_5230_68a6);

/// The id of the `kind` event of generation `id`.
pub fn event_id(id: Uuid, kind: EventType) -> MessageId {
    MessageId(Uuid::new_v5(
        &EVENT_NAMESPACE,
        format!("{id}:{}", kind.as_str()).as_bytes(),
    ))
}

/// The event a finished generation announces; `None` while it is processing.
pub fn terminal_event(g: &Generation) -> Option<Event> {
    let generation_id = GenerationId(g.id);
    let completed_at = g.completed_at.unwrap_or(g.created_at);
    let (kind, mut data) = match g.status() {
        GenerationStatus::Processing => return None,
        GenerationStatus::Completed => (
            EventType::GenerationCompleted,
            serde_json::json!(GenerationCompletedData {
                id: generation_id,
                status: "completed".to_owned(),
                voice_id: g.voice_id.clone(),
                format: g.format.clone(),
                duration_ms: g.duration_ms.unwrap_or(0),
                audio_url: None,
                completed_at,
                metadata: None,
            }),
        ),
        GenerationStatus::Failed => (
            EventType::GenerationFailed,
            serde_json::json!(GenerationFailedData {
                id: generation_id,
                status: "failed".to_owned(),
                voice_id: g.voice_id.clone(),
                format: g.format.clone(),
                error: g.error.clone().unwrap_or_else(|| serde_json::json!({
                    "code": "synthesis_failed", "message": "the generation failed"
                })),
                metadata: None,
            }),
        ),
    };
    // docs/api.md: metadata is "echoed in webhooks", whichever the outcome.
    if let (Some(metadata), Some(obj)) = (&g.metadata, data.as_object_mut()) {
        obj.insert("metadata".to_owned(), metadata.clone());
    }
    Some(Event {
        id: event_id(g.id, kind),
        event: kind,
        workspace_id: WorkspaceId(g.workspace_id),
        occurred_at: completed_at,
        data,
        // Only completed audio has a URL for the dispatcher to sign.
        audio_of: (kind == EventType::GenerationCompleted).then_some(generation_id),
        target_endpoint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_per_generation_and_kind() {
        let g = Uuid::now_v7();
        assert_eq!(
            event_id(g, EventType::GenerationCompleted),
            event_id(g, EventType::GenerationCompleted)
        );
        assert_ne!(
            event_id(g, EventType::GenerationCompleted),
            event_id(g, EventType::GenerationFailed)
        );
        assert_ne!(
            event_id(g, EventType::GenerationCompleted),
            event_id(Uuid::now_v7(), EventType::GenerationCompleted)
        );
    }
}
