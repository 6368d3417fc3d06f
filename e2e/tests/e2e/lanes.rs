//! The interactive lane: a short request of one workspace is served while
//! another workspace's backlog of long generations waits
//! (`shared::amqp::Lane`: short texts have their own queue, and a worker's
//! engines take their chunks before any bulk chunk).

use diesel::Connection as _;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{settings, start_stack};

/// Jobs of the other workspace queued before the short request.
const BACKLOG: usize = 200;

#[tokio::test]
async fn a_short_request_is_served_while_another_workspace_has_200_long_jobs_queued() {
    // One engine: the backlog takes minutes to render.
    let stack = start_stack(settings(1)).await;
    let bulk = testkit::stack::bootstrap(&stack.settings, "bulk", "enterprise")
        .await
        .unwrap();
    let long_text: String = (0..25)
        .map(|i| format!("Line {i} of a long report reads on about the quarterly figures. "))
        .collect();
    assert!(long_text.chars().count() > 1_000);
    let post_long = |i: usize| {
        let request = stack
            .client
            .post(format!("{}/v1/generations", stack.gateway))
            .bearer_auth(&bulk.api_key)
            .json(&json!({"text": format!("{i}. {long_text}"), "voiceId": "voice_3c71e9", "format": "wav"}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let statuses = futures_util::future::join_all((0..BACKLOG).map(post_long)).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");

    // A one-sentence speech request of the stack's own workspace.
    let response = stack
        .post(
            "/v1/audio/speech",
            json!({"model": "tts-1", "voice": "voice_3c71e9", "input": "Is my short answer ready?", "response_format": "wav"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(!response.bytes().await.unwrap().is_empty());

    // The order, not a time: it was answered while most of the backlog
    // still waited (behind it in one queue, it would have come last).
    let mut conn =
        diesel::PgConnection::establish(stack.settings.database.url.expose_secret()).unwrap();
    let waiting: i64 = {
        use diesel::prelude::*;
        use shared::schema::generations::dsl::*;
        generations
            .filter(workspace_id.eq(bulk.workspace_id.0))
            .filter(status.eq("processing"))
            .count()
            .get_result(&mut conn)
            .unwrap()
    };
    assert!(
        waiting >= (BACKLOG * 3 / 4) as i64,
        "only {waiting} of {BACKLOG} long jobs still waited"
    );
}
