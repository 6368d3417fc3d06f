use diesel::prelude::*;
use serde_json::{Value, json};

use shared::schema::{generations, usage_events, workspaces};

use crate::helpers::*;

#[tokio::test]
async fn seed_request_is_accepted_with_the_seed_response_shape() {
    let app = spawn_app().await;

    let response = app.post_generation(&app.seed_body()).await;

    assert_eq!(response.status().as_u16(), 202);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("gen_"));
    assert_eq!(body["status"], "processing");
    assert_eq!(body["voiceId"], SEED_VOICE);
    assert_eq!(body["credits"], 1);
    let created =
        chrono::DateTime::parse_from_rfc3339(body["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!(created.offset().local_minus_utc(), 0);
    // RFC 3339 to the second with Z, as in docs/api.md: 2026-05-29T12:00:00Z.
    assert_eq!(body["createdAt"].as_str().unwrap().len(), 20);
}

#[tokio::test]
async fn create_reserves_credits_records_the_charge_and_publishes_the_job() {
    let app = spawn_app().await;

    let body: Value = app.create_seed_generation().await;
    let id = body["id"].as_str().unwrap().to_owned();

    let job = app.next_job().await;
    assert_eq!(job, json!({"type": "synthesize.v1", "generationId": id}));
    let mut conn = connect(&app.settings);
    let used: i64 = workspaces::table
        .select(workspaces::credits_used)
        .first(&mut conn)
        .unwrap();
    assert_eq!(used, 1);
    let charges: Vec<(String, i64, i64)> = usage_events::table
        .select((
            usage_events::kind,
            usage_events::credits,
            usage_events::characters,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        charges,
        vec![("charge".to_owned(), 1, SEED_TEXT.chars().count() as i64)]
    );
    let published = eventually("the job to be marked published", || async {
        let p: Option<chrono::DateTime<chrono::Utc>> = generations::table
            .select(generations::published_at)
            .first(&mut connect(&app.settings))
            .unwrap();
        p
    })
    .await;
    assert!(published <= chrono::Utc::now());
}

#[tokio::test]
async fn get_returns_the_generation_while_it_is_processing() {
    let app = spawn_app().await;
    let created: Value = app.create_seed_generation().await;

    let response = app
        .get(&format!(
            "/v1/generations/{}",
            created["id"].as_str().unwrap()
        ))
        .await;

    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], created["id"]);
    assert_eq!(body["status"], "processing");
    assert_eq!(body["format"], "wav");
    assert_eq!(body["characters"], SEED_TEXT.chars().count());
    assert!(body.get("audioUrl").is_none());
}

#[tokio::test]
async fn another_workspaces_generation_is_404_like_a_missing_one() {
    let app = spawn_app().await;
    let created: Value = app.create_seed_generation().await;
    let (_, other_key) = new_workspace(&app.settings, "other", "scale");
    let id = created["id"].as_str().unwrap();

    for path in [
        format!("/v1/generations/{id}"),
        format!("/v1/generations/{id}/audio"),
    ] {
        let theirs = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&other_key)
            .send()
            .await
            .unwrap();
        assert_error(theirs, 404, "not_found").await;
    }
    let missing = app
        .get(&format!(
            "/v1/generations/gen_{}",
            uuid::Uuid::now_v7().simple()
        ))
        .await;
    assert_error(missing, 404, "not_found").await;
    let garbage = app.get("/v1/generations/gen_..%2F..%2Fetc").await;
    assert_error(garbage, 404, "not_found").await;
}

#[tokio::test]
async fn create_returns_402_when_credits_run_out_and_charges_nothing() {
    let app = spawn_app().await;
    let (_, key) = new_workspace(&app.settings, "small", "tiny");
    let one_credit = json!({"text": "a".repeat(1000), "voiceId": SEED_VOICE, "format": "wav"});
    let two_credits = json!({"text": "a".repeat(1001), "voiceId": SEED_VOICE, "format": "wav"});

    assert_eq!(
        app.post_generation_with_key(&one_credit, &key)
            .await
            .status()
            .as_u16(),
        202
    );
    let refused = app.post_generation_with_key(&two_credits, &key).await;
    assert_error(refused, 402, "insufficient_credits").await;
    assert_eq!(
        app.post_generation_with_key(&one_credit, &key)
            .await
            .status()
            .as_u16(),
        202
    );
    assert_error(
        app.post_generation_with_key(&one_credit, &key).await,
        402,
        "insufficient_credits",
    )
    .await;

    let mut conn = connect(&app.settings);
    let used: i64 = workspaces::table
        .filter(workspaces::name.eq("small"))
        .select(workspaces::credits_used)
        .first(&mut conn)
        .unwrap();
    assert_eq!(used, 2);
    let rows: i64 = generations::table.count().get_result(&mut conn).unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn create_returns_503_and_changes_nothing_when_the_broker_is_down() {
    let mut settings = settings();
    // Nothing listens on port 1.
    settings.amqp.url = secrecy::SecretString::from("amqp://guest:guest@127.0.0.1:1/%2f");
    let app = spawn_app_with(settings).await;

    let started = std::time::Instant::now();
    let response = app.post_generation(&app.seed_body()).await;

    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "broker_unavailable").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let mut conn = connect(&app.settings);
    let rows: i64 = generations::table.count().get_result(&mut conn).unwrap();
    assert_eq!(rows, 0);
    let used: i64 = workspaces::table
        .select(workspaces::credits_used)
        .first(&mut conn)
        .unwrap();
    assert_eq!(used, 0);
}

#[tokio::test]
async fn create_returns_503_without_waiting_for_a_broker_that_accepts_but_never_answers() {
    // A broker still booting (or hung): it accepts TCP connections and
    // says nothing. A connection attempt would wait its full 10 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let mut settings = settings();
    settings.amqp.url =
        secrecy::SecretString::from(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"));
    let app = spawn_app_with(settings).await;

    let started = std::time::Instant::now();
    let response = app.post_generation(&app.seed_body()).await;

    assert_error(response, 503, "broker_unavailable").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut conn = connect(&app.settings);
    let rows: i64 = generations::table.count().get_result(&mut conn).unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn sweeper_publishes_a_generation_that_a_crash_left_unpublished() {
    let app = spawn_app().await;
    let created: Value = app.create_seed_generation().await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = app.next_job().await;
    assert_eq!(first["generationId"], id.as_str());
    published_at_of_all(&app).await;
    // As if the gateway had crashed between the commit and the publish.
    let mut conn = connect(&app.settings);
    diesel::update(generations::table)
        .set(generations::published_at.eq(None::<chrono::DateTime<chrono::Utc>>))
        .execute(&mut conn)
        .unwrap();

    let again = app.next_job().await;

    assert_eq!(again["generationId"], id.as_str());
    published_at_of_all(&app).await;
}

#[tokio::test]
async fn every_generation_is_marked_published_once_the_broker_confirmed_its_job() {
    let app = spawn_app().await;
    let body = app.seed_body();
    let posts = (0..20).map(|_| app.post_generation(&body));
    for response in futures_util::future::join_all(posts).await {
        assert_eq!(response.status().as_u16(), 202);
    }

    let marks = published_at_of_all(&app).await;

    assert_eq!(marks.len(), 20);
    // Every generation's job is on the queue.
    let mut jobs = Vec::new();
    for _ in 0..20 {
        jobs.push(
            app.next_job().await["generationId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    jobs.sort();
    jobs.dedup();
    assert_eq!(jobs.len(), 20);
}
