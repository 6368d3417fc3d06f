//! The lease of `delivery::store`, step by step: a claimed delivery is
//! invisible to other claimers until its lease runs out, and a dispatcher
//! that lost its lease cannot record over the new owner.

use diesel::prelude::*;
use shared::db::DbError;
use shared::messages::EventType;
use shared::schema::webhook_deliveries as d;
use webhook_dispatcher::consumer::fan_out;
use webhook_dispatcher::delivery::store::{self, AttemptLog, Claimed, Verdict};

use crate::helpers::{TestEnv, event};

async fn claim(env: &TestEnv, lease_ms: i64) -> Vec<Claimed> {
    env.db
        .run(move |conn| store::claim(conn, lease_ms, 10).map_err(DbError::from))
        .await
        .unwrap()
}

async fn record(env: &TestEnv, claimed: &Claimed, verdict: Verdict) -> bool {
    let claimed = claimed.clone();
    env.db
        .run(move |conn| {
            store::record(conn, &claimed, &AttemptLog::default(), &verdict, 5)
                .map_err(DbError::from)
        })
        .await
        .unwrap()
}

/// What a crash looks like from the database: the lease simply ends.
async fn expire_leases(env: &TestEnv) {
    env.db
        .run(|conn| {
            diesel::update(d::table)
                .set(d::next_attempt_at.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn claimed_delivery_is_invisible_until_its_lease_ends_and_then_reclaimed() {
    let env = TestEnv::new().await;
    let ws = env.workspace().await;
    env.endpoint(ws, "/hooks", &["voice.ready"]).await;
    let e = event(ws, EventType::VoiceReady, serde_json::json!({}));
    assert_eq!(fan_out(&env.state(), e.clone()).await.unwrap(), 1);

    let first = claim(&env, 60_000).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event_id, e.id.0);
    assert!(
        claim(&env, 60_000).await.is_empty(),
        "leased: nobody else claims it"
    );

    // The first owner dies mid-send; after the lease another one takes over.
    expire_leases(&env).await;
    let second = claim(&env, 60_000).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 0, "the lost attempt is made again");

    assert!(
        !record(&env, &first[0], Verdict::Succeeded).await,
        "a stale lease records nothing"
    );
    assert!(record(&env, &second[0], Verdict::Succeeded).await);
    let rows = env.deliveries(e.id).await;
    assert_eq!(
        (rows[0].status.as_str(), rows[0].attempts),
        ("succeeded", 1)
    );
    assert!(claim(&env, 60_000).await.is_empty());
}

/// Group commit: one transaction records several outcomes, each under its
/// own lease; an outcome whose lease was lost writes nothing (no delivery
/// change, no attempt row) while the others in its batch are recorded.
#[tokio::test]
async fn a_batch_records_each_outcome_under_its_own_lease() {
    let env = TestEnv::new().await;
    let ws = env.workspace().await;
    let (endpoint, _) = env.endpoint(ws, "/hooks", &["voice.ready"]).await;
    let events: Vec<_> = (0..3)
        .map(|_| event(ws, EventType::VoiceReady, serde_json::json!({})))
        .collect();
    for e in &events {
        assert_eq!(fan_out(&env.state(), e.clone()).await.unwrap(), 1);
    }
    let claimed = claim(&env, 60_000).await;
    assert_eq!(claimed.len(), 3);
    let claimed: Vec<Claimed> = events
        .iter()
        .map(|e| {
            claimed
                .iter()
                .find(|c| c.event_id == e.id.0)
                .unwrap()
                .clone()
        })
        .collect();
    // The second one's lease is lost: it ran out and another owner took it.
    let lost = claimed[1].clone();
    env.db
        .run(move |conn| {
            diesel::update(d::table.filter(d::id.eq(lost.id)))
                .set(d::next_attempt_at.eq(lost.lease_until + chrono::Duration::seconds(5)))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .unwrap();
    let retry_at = chrono::Utc::now() + chrono::Duration::seconds(300);
    let outcomes: Vec<store::Outcome> = claimed
        .iter()
        .zip([
            Verdict::Succeeded,
            Verdict::Succeeded,
            Verdict::RetryAt(retry_at),
        ])
        .map(|(c, verdict)| store::Outcome {
            claimed: c.clone(),
            log: AttemptLog {
                status_code: Some(if verdict == Verdict::Succeeded {
                    204
                } else {
                    500
                }),
                duration_ms: 3,
                ..AttemptLog::default()
            },
            verdict,
        })
        .collect();
    let done = env
        .db
        .run(move |conn| store::record_batch(conn, &outcomes, 5).map_err(DbError::from))
        .await
        .unwrap();
    assert_eq!(done, vec![true, false, true]);

    let by_event = |i: usize| events[i].id;
    let first = env.deliveries(by_event(0)).await;
    assert_eq!(
        (first[0].status.as_str(), first[0].attempts),
        ("succeeded", 1)
    );
    assert_eq!(env.attempts(by_event(0)).await.len(), 1);
    let second = env.deliveries(by_event(1)).await;
    assert_eq!(
        (second[0].status.as_str(), second[0].attempts),
        ("pending", 0),
        "the lost lease's outcome changed nothing"
    );
    assert!(env.attempts(by_event(1)).await.is_empty());
    let third = env.deliveries(by_event(2)).await;
    assert_eq!(
        (third[0].status.as_str(), third[0].attempts),
        ("pending", 1)
    );
    let attempts = env.attempts(by_event(2)).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(500));
    // The batch's last word on the endpoint was a failure.
    assert!(env.endpoint_row(endpoint).await.failing_since.is_some());
}
