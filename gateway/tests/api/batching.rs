//! Group commit of creates (`gateway::creates`): concurrent requests are
//! committed together, and each is still decided exactly — credits, key
//! limits, in-flight limits, idempotency — and a database error fails only
//! the request that causes it.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use shared::schema::{generations, usage_events, workspaces};

use crate::helpers::*;

/// A one-credit body whose text is different for every `i`.
fn one_credit(i: usize) -> Value {
    let text = format!("{i:04} {}", "a".repeat(995));
    json!({"text": text, "voiceId": SEED_VOICE, "format": "wav"})
}

/// `one_credit(i)` posted with `key`.
async fn post_credit(app: &TestApp, key: &str, i: usize) -> reqwest::Response {
    app.post_generation_with_key(&one_credit(i), key).await
}

/// `credits_used` of the workspace `id`.
fn used(app: &TestApp, id: &str) -> i64 {
    workspaces::table
        .find(shared::ids::WorkspaceId::parse(id).unwrap().0)
        .select(workspaces::credits_used)
        .first(&mut connect(&app.settings))
        .unwrap()
}

/// Charges in the ledger and generation rows of the workspace `id`.
fn ledger_and_rows(app: &TestApp, id: &str) -> (i64, i64) {
    let ws = shared::ids::WorkspaceId::parse(id).unwrap().0;
    let mut conn = connect(&app.settings);
    let charged: Vec<i64> = usage_events::table
        .filter(usage_events::workspace_id.eq(ws))
        .select(usage_events::credits)
        .load(&mut conn)
        .unwrap();
    let rows: i64 = generations::table
        .filter(generations::workspace_id.eq(ws))
        .count()
        .get_result(&mut conn)
        .unwrap();
    (charged.iter().sum(), rows)
}

/// `(count, sum)` of the create-batch histogram on `/metrics`.
async fn batch_sizes(app: &TestApp) -> (f64, f64) {
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("voiceprod_create_batch_size_count"),
        value("voiceprod_create_batch_size_sum"),
    )
}

#[tokio::test]
async fn concurrent_creates_of_many_workspaces_are_batched_and_each_charged_exactly() {
    let mut settings = settings();
    settings.gateway.metrics_enabled = true;
    for credits in [3, 7, 12, 40] {
        settings
            .plans
            .insert(format!("p{credits}"), plan(Some(credits), None, None));
    }
    let app = spawn_app_with(settings).await;
    let workspaces: Vec<(i64, String, String)> = [3, 7, 12, 40]
        .into_iter()
        .map(|credits| {
            let (id, key) = new_workspace(
                &app.settings,
                &format!("ws{credits}"),
                &format!("p{credits}"),
            );
            (credits, id, key)
        })
        .collect();

    // 20 requests of one credit per workspace, interleaved, all at once.
    let requests = (0..20).flat_map(|i| {
        workspaces
            .iter()
            .map(move |(_, id, key)| (id.clone(), key.clone(), i))
    });
    let answers = join_all(requests.map(|(id, key, i)| {
        let app = &app;
        async move {
            let r = app.post_generation_with_key(&one_credit(i), &key).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (id, status, body)
        }
    }))
    .await;

    let mut accepted: HashMap<String, i64> = HashMap::new();
    let mut ids = HashSet::new();
    for (ws, status, body) in &answers {
        match status {
            202 => {
                *accepted.entry(ws.clone()).or_default() += 1;
                assert!(ids.insert(body["id"].as_str().unwrap().to_owned()));
            }
            402 => assert_eq!(body["error"]["code"], "insufficient_credits", "{body}"),
            _ => panic!("unexpected answer {status}: {body}"),
        }
    }
    for (credits, id, _) in &workspaces {
        let want = (*credits).min(20);
        assert_eq!(
            accepted.get(id).copied().unwrap_or(0),
            want,
            "accepted in {id}"
        );
        assert_eq!(used(&app, id), want, "credits used in {id}");
        assert_eq!(
            ledger_and_rows(&app, id),
            (want, want),
            "ledger and rows of {id}"
        );
    }
    // Those 80 requests were not 80 transactions.
    let (batches, creates) = batch_sizes(&app).await;
    assert_eq!(creates, 80.0);
    assert!(batches < creates, "{batches} batches for {creates} creates");
}

#[tokio::test]
async fn a_batch_decides_a_keys_credit_limit_and_the_plans_in_flight_limit_exactly() {
    let mut settings = settings();
    settings
        .plans
        .insert("ten".into(), plan(Some(10), None, None));
    settings
        .plans
        .insert("three-at-once".into(), plan(Some(100), None, Some(3)));
    let app = spawn_app_with(settings).await;
    let (ten, free_key) = new_workspace(&app.settings, "ten-ws", "ten");
    let capped = create_key_in(&app, &free_key, 4).await;
    let (_, busy_key) = new_workspace(&app.settings, "inflight-ws", "three-at-once");

    let capped_posts = (0..10).map(|i| post_credit(&app, &capped, i));
    let free_posts = (10..20).map(|i| post_credit(&app, &free_key, i));
    let busy_posts = (20..30).map(|i| post_credit(&app, &busy_key, i));
    let (capped, free, busy) = tokio::join!(
        statuses(capped_posts),
        statuses(free_posts),
        statuses(busy_posts)
    );

    let count = |answers: &[(u16, String)], status: u16| {
        answers.iter().filter(|(s, _)| *s == status).count() as i64
    };
    // The capped key: at most its limit; together with the free key
    // exactly the workspace's 10 (20 were asked for).
    let capped_accepted = count(&capped, 202);
    assert!(capped_accepted <= 4, "{capped:?}");
    assert_eq!(
        capped_accepted + count(&free, 202),
        10,
        "{capped:?} {free:?}"
    );
    assert_eq!(used(&app, &ten), 10);
    assert_eq!(ledger_and_rows(&app, &ten), (10, 10));
    for (status, code) in capped.iter().chain(&free) {
        if *status != 202 {
            assert_eq!(*status, 402);
            assert!(
                code == "key_credit_limit" || code == "insufficient_credits",
                "{code}"
            );
        }
    }
    // No worker runs: exactly 3 stay processing, the rest are 429.
    assert_eq!(count(&busy, 202), 3, "{busy:?}");
    assert_eq!(count(&busy, 429), 7, "{busy:?}");
    assert!(busy.iter().all(|(s, c)| *s == 202 || c == "rate_limited"));
}

#[tokio::test]
async fn an_idempotency_race_inside_batches_charges_the_key_once() {
    let app = spawn_app().await;
    let body = one_credit(0);
    let same_key = (0..8).map(|_| {
        app.client
            .post(format!("{}/v1/generations", app.address))
            .bearer_auth(&app.api_key)
            .header("Idempotency-Key", "race-1")
            .json(&body)
            .send()
    });
    let others = (1..9).map(|i| post_credit(&app, &app.api_key, i));
    let (same, others) = tokio::join!(join_all(same_key), join_all(others));

    let mut ids = HashSet::new();
    for r in same {
        let r = r.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        match status {
            202 => {
                ids.insert(body["id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(
                body["error"]["code"], "idempotency_request_in_progress",
                "{body}"
            ),
            _ => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "one generation for the key: {ids:?}");
    for r in others {
        assert_eq!(r.status().as_u16(), 202);
    }
    assert_eq!(ledger_and_rows(&app, &app.workspace_id), (9, 9));
    assert_eq!(used(&app, &app.workspace_id), 9);
}

#[tokio::test]
async fn a_database_error_in_a_batch_fails_only_the_request_that_caused_it() {
    let app = spawn_app().await;
    // A real error from PostgreSQL for every generation whose text says
    // "boom", raised inside the batch's multi-row insert.
    diesel::sql_query(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.text LIKE '%boom%' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$",
    )
    .execute(&mut connect(&app.settings))
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER boom BEFORE INSERT ON generations FOR EACH ROW EXECUTE FUNCTION boom()",
    )
    .execute(&mut connect(&app.settings))
    .unwrap();

    let bodies: Vec<Value> = (0..24)
        .map(|i| {
            if i % 8 == 3 {
                json!({"text": format!("boom {i}"), "voiceId": SEED_VOICE, "format": "wav"})
            } else {
                one_credit(i)
            }
        })
        .collect();
    let answers = join_all(bodies.iter().map(|b| app.post_generation(b))).await;

    let mut accepted = 0;
    for (i, r) in answers.into_iter().enumerate() {
        if i % 8 == 3 {
            assert_error(r, 500, "internal_error").await;
        } else {
            assert_eq!(r.status().as_u16(), 202, "request {i}");
            accepted += 1;
        }
    }
    assert_eq!(accepted, 21);
    assert_eq!(ledger_and_rows(&app, &app.workspace_id), (21, 21));
    assert_eq!(used(&app, &app.workspace_id), 21);
}

/// A key of the workspace of `admin` with a credit limit of `limit`.
async fn create_key_in(app: &TestApp, admin: &str, limit: i64) -> String {
    let r = app
        .client
        .post(format!("{}/v1/keys", app.address))
        .bearer_auth(admin)
        .json(&json!({"name": "capped", "scopes": ["generations:write"], "creditLimit": limit}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    body["secret"].as_str().unwrap().to_owned()
}

/// The status and error code of each answer.
async fn statuses(
    posts: impl Iterator<Item = impl std::future::Future<Output = reqwest::Response>>,
) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for r in join_all(posts).await {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        out.push((
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        ));
    }
    out
}
