//! `voiceprod-bench lanes`: a one-sentence `POST /v1/audio/speech` of one
//! workspace, unloaded and then while another workspace has a backlog of
//! 1,000 long generations queued, through the whole stack in this process.
//! Both phases run on the same stack in the same run, so the ratio is what
//! the backlog costs a short request (the interactive lane,
//! `shared::amqp::Lane`).

use std::time::Instant;

use serde_json::json;

use crate::report::{percentile, write_section};
use crate::stack::{self, With};

const COMMAND: &str = "cargo run --release -p bench -- lanes";
/// Long generations of the other workspace.
const BACKLOG: usize = 1_000;
/// Short requests per phase, one at a time, after one uncounted.
const SAMPLES: usize = 40;
const SHORT: &str = "Is my short answer ready yet?";
const VOICE: &str = "voice_8f2a1c";

async fn short_requests(stack: &stack::Stack) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::with_capacity(SAMPLES);
    for i in 0..=SAMPLES {
        let sent = Instant::now();
        let response = stack
            .client
            .post(format!("{}/v1/audio/speech", stack.gateway))
            .bearer_auth(&stack.api_key)
            .json(&json!({"model": "tts-1", "voice": VOICE, "input": SHORT, "response_format": "mp3"}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().as_u16() == 200,
            "speech answered {}",
            response.status()
        );
        response.bytes().await?;
        if i > 0 {
            ms.push(sent.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

pub async fn run() -> anyhow::Result<()> {
    let mut settings = stack::settings().await?;
    stack::production_defaults(&mut settings)?;
    let stack = stack::start(
        settings,
        With {
            worker: true,
            dispatcher: false,
        },
        "scale",
    )
    .await?;
    let other = stack::bootstrap(&stack.settings, "backlog", "enterprise").await?;

    let unloaded = short_requests(&stack).await?;
    println!(
        "unloaded: p50 {:.0} ms p99 {:.0} ms",
        percentile(&unloaded, 50.0),
        percentile(&unloaded, 99.0)
    );

    let long: String = (0..20)
        .map(|i| format!("Paragraph {i} of the quarterly report goes on about the figures. "))
        .collect();
    let posted = futures_util::future::join_all((0..BACKLOG).map(|i| {
        let request = stack
            .client
            .post(format!("{}/v1/generations", stack.gateway))
            .bearer_auth(&other.api_key)
            .json(&json!({"text": format!("{i}. {long}"), "voiceId": VOICE, "format": "mp3"}));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    }))
    .await;
    let accepted = posted.iter().filter(|s| matches!(s, Ok(202))).count();
    anyhow::ensure!(
        accepted == BACKLOG,
        "only {accepted} of {BACKLOG} long jobs accepted"
    );
    let backlog_at = Instant::now();

    let loaded = short_requests(&stack).await?;
    let phase_s = backlog_at.elapsed().as_secs_f64();
    let db = shared::db::Db::new(&stack.settings.database);
    let workspace = other.workspace_id.0;
    let waiting: i64 = db
        .run(move |c| {
            use diesel::prelude::*;
            use shared::schema::generations::dsl::*;
            generations
                .filter(workspace_id.eq(workspace))
                .filter(status.eq("processing"))
                .count()
                .get_result(c)
                .map_err(anyhow::Error::from)
        })
        .await?;
    let (p50, p99) = (percentile(&loaded, 50.0), percentile(&loaded, 99.0));
    let (u50, u99) = (percentile(&unloaded, 50.0), percentile(&unloaded, 99.0));
    println!(
        "with {BACKLOG} long jobs queued: p50 {p50:.0} ms p99 {p99:.0} ms ({:.2}x unloaded p99); {waiting} of them still waiting after {phase_s:.1} s",
        p99 / u99
    );
    let body = format!(
        "A one-sentence `POST /v1/audio/speech` ({} characters, Piper `{VOICE}`, mp3), \
         {SAMPLES} one after the other (after one uncounted), through the whole stack in the \
         bench process (gateway, key-service, quorum queues, a synth-worker with the default \
         engines: {}). *Backlog*: first {BACKLOG} generations of another \
         workspace (enterprise plan, no in-flight cap) of {} characters each, all accepted \
         before the short requests start.\n\n\
         | phase | p50 | p99 | max | p99 ÷ unloaded p99 |\n|---|---:|---:|---:|---:|\n\
         | unloaded | {u50:.0} ms | {u99:.0} ms | {:.0} ms | 1 |\n\
         | **{BACKLOG} long jobs of another workspace queued** | {p50:.0} ms | **{p99:.0} ms** | {:.0} ms | **{:.2}** |\n\n\
         When the loaded phase ended ({phase_s:.1} s after the backlog was accepted), {waiting} \
         of the {BACKLOG} long jobs were still waiting. The short requests render on the Piper \
         process kept for interactive work, sharing the 2 cores with the bulk renders, so their \
         p50 rises too. Aim (issue 20): p99 ≤ 2 × unloaded.\n",
        SHORT.chars().count(),
        stack::engines(&stack.settings),
        long.chars().count() + 5,
        unloaded.last().copied().unwrap_or(f64::NAN),
        loaded.last().copied().unwrap_or(f64::NAN),
        p99 / u99,
    );
    write_section(
        "lanes",
        "Lanes: a short request beside another workspace's backlog",
        COMMAND,
        &body,
    )?;
    Ok(())
}
