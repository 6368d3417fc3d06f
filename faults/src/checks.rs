//! The exact end state every case demands once the stack has settled:
//! each accepted (202) generation `completed` exactly once and announced
//! exactly once, charged exactly once, nothing left `processing`, nothing
//! created that was not accepted, and the workspace's `credits_used` equal
//! to the sum of the 202s' credits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use shared::ids::{GenerationId, WorkspaceId};
use shared::schema::{generations, usage_events, webhook_deliveries, workspaces};
use uuid::Uuid;

use crate::receiver::Receiver;
use crate::stack::{Posted, Stack};

/// The generation ids of the 202s.
pub fn accepted_ids(posted: &[Posted]) -> Vec<String> {
    posted
        .iter()
        .filter(|p| p.status == 202)
        .map(|p| p.id.clone().expect("a 202 has an id"))
        .collect()
}

#[derive(Debug, Default)]
struct DbState {
    /// status per generation of the workspace.
    status: BTreeMap<Uuid, String>,
    /// generations whose event the broker confirmed.
    announced: BTreeSet<Uuid>,
    /// (charges, refunds) per generation in the ledger.
    ledger: BTreeMap<Uuid, (usize, usize)>,
    charged: i64,
    credits_used: i64,
    /// webhook_deliveries rows by status.
    deliveries: BTreeMap<String, i64>,
}

fn read_state(db_url: &str, workspace: Uuid) -> DbState {
    let mut conn = PgConnection::establish(db_url).unwrap();
    let mut s = DbState::default();
    let rows: Vec<(Uuid, String, bool)> = generations::table
        .filter(generations::workspace_id.eq(workspace))
        .select((
            generations::id,
            generations::status,
            generations::event_published_at.is_not_null(),
        ))
        .load(&mut conn)
        .unwrap();
    for (id, status, announced) in rows {
        if announced {
            s.announced.insert(id);
        }
        s.status.insert(id, status);
    }
    let ledger: Vec<(Option<Uuid>, String, i64)> = usage_events::table
        .filter(usage_events::workspace_id.eq(workspace))
        .select((
            usage_events::generation_id,
            usage_events::kind,
            usage_events::credits,
        ))
        .load(&mut conn)
        .unwrap();
    for (id, kind, credits) in ledger {
        let entry = s.ledger.entry(id.unwrap_or_default()).or_default();
        if kind == "charge" {
            entry.0 += 1;
            s.charged += credits;
        } else {
            entry.1 += 1;
        }
    }
    s.credits_used = workspaces::table
        .find(workspace)
        .select(workspaces::credits_used)
        .first(&mut conn)
        .unwrap();
    let deliveries: Vec<String> = webhook_deliveries::table
        .filter(webhook_deliveries::workspace_id.eq(workspace))
        .select(webhook_deliveries::status)
        .load(&mut conn)
        .unwrap();
    for d in deliveries {
        *s.deliveries.entry(d).or_default() += 1;
    }
    s
}

async fn state(stack: &Stack) -> DbState {
    let url = stack.db_url.clone();
    let ws = WorkspaceId::parse(&stack.workspace_id)
        .expect("workspace id")
        .0;
    tokio::task::spawn_blocking(move || read_state(&url, ws))
        .await
        .unwrap()
}

/// Waits until nothing of the workspace is processing, every generation's
/// event is confirmed, and the receiver has heard of every accepted id;
/// then checks the exact end state (see the module docs). With `exact`,
/// each generation was delivered exactly once; without it (a receiver that
/// went down mid-request may have seen an attempt whose answer was lost),
/// repeats must carry the same `webhook-id`. Returns how long settling took.
pub async fn settle_and_check(
    stack: &Stack,
    receiver: &Receiver,
    posted: &[Posted],
    timeout: Duration,
    exact: bool,
) -> Duration {
    let started = Instant::now();
    let accepted = accepted_ids(posted);
    let credits: i64 = posted
        .iter()
        .filter(|p| p.status == 202)
        .map(|p| p.credits)
        .sum();
    let ids: BTreeSet<Uuid> = accepted
        .iter()
        .map(|id| GenerationId::parse(id).expect("gen id").0)
        .collect();
    assert_eq!(ids.len(), accepted.len(), "a generation id was given twice");
    let state = loop {
        let s = state(stack).await;
        let heard = receiver.per_generation();
        let processing = s.status.values().filter(|x| *x == "processing").count();
        let unheard = accepted
            .iter()
            .filter(|id| !heard.contains_key(*id))
            .count();
        let pending = s.deliveries.get("pending").copied().unwrap_or(0);
        if processing == 0 && unheard == 0 && pending == 0 && s.announced.len() == s.status.len() {
            break s;
        }
        assert!(
            started.elapsed() < timeout,
            "not settled after {timeout:?}: {processing} processing, {unheard} of {} accepted \
             not delivered, {pending} deliveries pending, {} of {} announced",
            accepted.len(),
            s.announced.len(),
            s.status.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Nothing that was not accepted exists; everything accepted completed.
    let rows: BTreeSet<Uuid> = state.status.keys().copied().collect();
    assert_eq!(
        rows.difference(&ids).count(),
        0,
        "generations exist that no 202 announced"
    );
    assert_eq!(
        ids.difference(&rows).count(),
        0,
        "accepted generations are missing from the database"
    );
    let not_completed: Vec<_> = state
        .status
        .iter()
        .filter(|(_, s)| *s != "completed")
        .collect();
    assert!(not_completed.is_empty(), "not completed: {not_completed:?}");
    // Charged exactly once, never refunded; the workspace agrees.
    for id in &ids {
        assert_eq!(
            state.ledger.get(id),
            Some(&(1, 0)),
            "ledger of {id}: (charges, refunds)"
        );
    }
    assert_eq!(state.ledger.len(), ids.len(), "ledger rows of other ids");
    assert_eq!(state.charged, credits, "ledger charges vs 202 credits");
    assert_eq!(state.credits_used, credits, "credits_used vs 202 credits");
    // Announced and delivered once per generation.
    assert_eq!(
        state.deliveries.get("succeeded").copied().unwrap_or(0),
        ids.len() as i64,
        "webhook_deliveries: {:?}",
        state.deliveries
    );
    let heard = receiver.per_generation();
    for id in &accepted {
        let (count, webhook_ids) = &heard[id];
        assert_eq!(
            webhook_ids.len(),
            1,
            "{id} announced under several webhook-ids: {webhook_ids:?}"
        );
        if exact {
            assert_eq!(*count, 1, "{id} delivered {count} times");
        }
    }
    assert_eq!(
        heard.len(),
        accepted.len(),
        "deliveries for generations that were not accepted"
    );
    assert!(
        receiver
            .deliveries()
            .iter()
            .all(|d| d.event == "generation.completed"),
        "an event other than generation.completed"
    );
    started.elapsed()
}
