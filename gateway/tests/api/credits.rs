//! Plans, charging, refunds, the ledger and monthly periods.

use chrono::{Datelike, Utc};
use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use shared::models::workspace::month_start;
use shared::models::{Generation, Workspace};
use shared::schema::{generations, usage_events, workspaces};

use crate::helpers::*;

fn one_credit() -> Value {
    json!({"text": "a".repeat(1000), "voiceId": SEED_VOICE, "format": "wav"})
}

fn workspace_row(app: &TestApp, name: &str) -> (i64, i64, chrono::DateTime<Utc>) {
    workspaces::table
        .filter(workspaces::name.eq(name))
        .select((
            workspaces::credits_included,
            workspaces::credits_used,
            workspaces::period_start,
        ))
        .first(&mut connect(&app.settings))
        .unwrap()
}

fn ledger_sum(app: &TestApp) -> i64 {
    let credits: Vec<i64> = usage_events::table
        .select(usage_events::credits)
        .load(&mut connect(&app.settings))
        .unwrap();
    credits.iter().sum()
}

#[tokio::test]
async fn parallel_requests_that_would_overspend_accept_exactly_the_affordable_ones() {
    let mut settings = settings();
    settings
        .plans
        .insert("five".into(), plan(Some(5), None, None));
    let app = spawn_app_with(settings).await;
    let (_, key) = new_workspace(&app.settings, "five-ws", "five");
    let body = one_credit();

    let responses = join_all((0..14).map(|_| app.post_generation_with_key(&body, &key))).await;

    let mut accepted = 0;
    for r in responses {
        match r.status().as_u16() {
            202 => accepted += 1,
            _ => {
                assert_error(r, 402, "insufficient_credits").await;
            }
        }
    }
    assert_eq!(accepted, 5);
    let (_, used, _) = workspace_row(&app, "five-ws");
    assert_eq!(used, 5);
    assert_eq!(ledger_sum(&app), 5);
    let rows: i64 = generations::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap();
    assert_eq!(rows, 5);
}

#[tokio::test]
async fn the_accepted_response_carries_its_cost_in_a_header() {
    let app = spawn_app().await;
    let body = json!({"text": "a".repeat(2001), "voiceId": SEED_VOICE, "format": "wav"});

    let response = app.post_generation(&body).await;

    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.headers()["x-credits-charged"], "3");
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["credits"], 3);
}

#[tokio::test]
async fn a_failed_generation_is_refunded_once_and_the_ledger_records_both_with_the_key() {
    let app = spawn_app().await;
    let created: Value = app.create_seed_generation().await;
    let id = shared::ids::GenerationId::parse(created["id"].as_str().unwrap()).unwrap();
    let mut conn = connect(&app.settings);

    assert!(Generation::fail(&mut conn, id.0, json!({"code": "engine_failed"})).unwrap());
    assert!(!Generation::fail(&mut conn, id.0, json!({"code": "engine_failed"})).unwrap());

    let (_, used, _) = workspace_row(&app, "acme");
    assert_eq!(used, 0);
    let rows: Vec<(String, i64, Option<uuid::Uuid>)> = usage_events::table
        .order(usage_events::created_at.asc())
        .select((
            usage_events::kind,
            usage_events::credits,
            usage_events::api_key_id,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("charge", 1));
    assert_eq!((rows[1].0.as_str(), rows[1].1), ("refund", -1));
    assert!(rows[0].2.is_some() && rows[0].2 == rows[1].2);
}

#[tokio::test]
async fn a_new_month_resets_credits_used_once_even_when_requests_race() {
    let app = spawn_app().await;
    let (ws, key) = new_workspace(&app.settings, "small", "tiny");
    let ws = shared::ids::WorkspaceId::parse(&ws).unwrap();
    // Spend the whole allowance, then pretend it was last month.
    for _ in 0..2 {
        let r = app.post_generation_with_key(&one_credit(), &key).await;
        assert_eq!(r.status().as_u16(), 202);
    }
    assert_error(
        app.post_generation_with_key(&one_credit(), &key).await,
        402,
        "insufficient_credits",
    )
    .await;
    let now = Utc::now();
    let last_month = month_start(month_start(now) - chrono::Duration::days(1));
    let mut conn = connect(&app.settings);
    diesel::update(workspaces::table.find(ws.0))
        .set(workspaces::period_start.eq(last_month))
        .execute(&mut conn)
        .unwrap();
    diesel::update(usage_events::table)
        .set(usage_events::created_at.eq(last_month))
        .execute(&mut conn)
        .unwrap();

    let body = one_credit();
    let responses = join_all((0..4).map(|_| app.post_generation_with_key(&body, &key))).await;

    let accepted = responses
        .iter()
        .filter(|r| r.status().as_u16() == 202)
        .count();
    assert_eq!(accepted, 2, "a fresh allowance of 2, reset exactly once");
    let (_, used, period) = workspace_row(&app, "small");
    assert_eq!(used, 2);
    assert_eq!(period, month_start(now));
    assert_eq!((period.day(), period.month()), (1, now.month()));
    assert!(!Workspace::roll_over(&mut conn, ws.0).unwrap());
    // This period's usage, read from the ledger, agrees with the counter.
    let this_period = shared::models::usage::net_credits_since(&mut conn, ws.0, period).unwrap();
    assert_eq!(this_period, 2);
}

#[tokio::test]
async fn roll_over_in_a_later_month_starts_that_month() {
    let app = spawn_app().await;
    let ws = shared::ids::WorkspaceId::parse(&app.workspace_id).unwrap();
    let mut conn = connect(&app.settings);
    diesel::update(workspaces::table.find(ws.0))
        .set(workspaces::credits_used.eq(7))
        .execute(&mut conn)
        .unwrap();
    let next_month =
        shared::models::workspace::period_end(month_start(Utc::now())) + chrono::Duration::days(3);

    assert!(Workspace::roll_over_at(&mut conn, ws.0, next_month).unwrap());
    assert!(!Workspace::roll_over_at(&mut conn, ws.0, next_month).unwrap());

    let w = Workspace::find(&mut conn, ws.0).unwrap();
    assert_eq!(w.credits_used, 0);
    assert_eq!(w.period_start, month_start(next_month));
}

#[tokio::test]
async fn bootstrap_takes_any_configured_plan_and_enterprise_can_be_unlimited() {
    let app = spawn_app().await;
    let (_, key) = new_workspace(&app.settings, "selfhost", "enterprise");
    let (included, _, _) = workspace_row(&app, "selfhost");
    assert_eq!(included, i64::MAX);
    let big = json!({"text": "a".repeat(100_000), "voiceId": SEED_VOICE, "format": "wav"});

    let response = app.post_generation_with_key(&big, &key).await;

    assert_eq!(response.status().as_u16(), 202);
    let view = app.get_json_with_key("/v1/workspace", &key).await;
    assert_eq!(view["plan"], "enterprise");
    assert_eq!(view["creditsIncluded"], Value::Null);
    assert_eq!(view["creditsUsed"], 100);
    // A plan without API access: the workspace exists, its keys get 403.
    let (_, free) = new_workspace(&app.settings, "freebie", "free");
    let refused = app.post_generation_with_key(&app.seed_body(), &free).await;
    assert_error(refused, 403, "plan_required").await;
}
