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
    assert_eq!(fan_out(&env.context(), e.clone()).await.unwrap(), 1);

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
