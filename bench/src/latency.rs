//! `voiceprod-bench latency`: from `POST /v1/generations` until the
//! `generation.completed` webhook reaches the customer's receiver, for a
//! 100-character text at light load (one generation at a time), through
//! the whole real stack: gateway → RabbitMQ → synth-worker (engine process,
//! encoder, object store) → RabbitMQ → webhook-dispatcher → receiver.
//!
//! The split uses the generation's own timestamps (`created_at` in the
//! create transaction, `completed_at` when the worker committed it) against
//! the receiver's clock at arrival: gateway (POST until the row is
//! committed), worker (until the result is committed), delivery (until the
//! webhook arrives).

use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::accept::{TEXT, VOICE};
use crate::report::{percentile, write_section};
use crate::stack::{self, With};

const COMMAND: &str = "cargo run --release -p bench -- latency";
const WARM_UP: usize = 5;
const SAMPLES: usize = 100;
/// Light load: this long between one webhook's arrival and the next POST.
const GAP: Duration = Duration::from_millis(20);
const FORMATS: [&str; 2] = ["mp3", "wav"];

struct Arrival {
    generation: String,
    at: Instant,
    wall: DateTime<Utc>,
}

/// A customer's endpoint: answers 204 and reports each arrival.
async fn receiver() -> anyhow::Result<(String, mpsc::UnboundedReceiver<Arrival>)> {
    let (tx, rx) = mpsc::unbounded_channel::<Arrival>();
    let tx = web::Data::new(tx);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new().app_data(tx.clone()).default_service(web::to(
            |body: web::Bytes, tx: web::Data<mpsc::UnboundedSender<Arrival>>| async move {
                let (at, wall) = (Instant::now(), Utc::now());
                let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                let generation = event["data"]["id"].as_str().unwrap_or_default().to_owned();
                let _ = tx.send(Arrival {
                    generation,
                    at,
                    wall,
                });
                HttpResponse::NoContent().finish()
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok((format!("http://127.0.0.1:{port}/hooks"), rx))
}

#[derive(Default)]
struct Samples {
    total: Vec<f64>,
    gateway: Vec<f64>,
    worker: Vec<f64>,
    delivery: Vec<f64>,
    accepted: Vec<f64>,
}

pub async fn run() -> anyhow::Result<()> {
    let mut settings = stack::settings().await?;
    stack::production_defaults(&mut settings)?;
    let stack = stack::start(
        settings,
        With {
            worker: true,
            dispatcher: true,
        },
        "enterprise",
    )
    .await?;
    let (hook_url, mut arrivals) = receiver().await?;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/webhooks", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&json!({"url": hook_url, "events": ["generation.completed"]}))
        .send()
        .await?;
    anyhow::ensure!(
        created.status().as_u16() == 201,
        "registering the webhook answered {}",
        created.status()
    );
    let db = shared::db::Db::new(&stack.settings.database);

    let mut results = Vec::new();
    for format in FORMATS {
        let mut samples = Samples::default();
        for i in 0..WARM_UP + SAMPLES {
            let sent = Instant::now();
            let sent_wall = Utc::now();
            let response = client
                .post(format!("{}/v1/generations", stack.gateway))
                .bearer_auth(&stack.api_key)
                .json(&json!({"text": TEXT, "voiceId": VOICE, "format": format}))
                .send()
                .await?;
            let accepted = sent.elapsed();
            anyhow::ensure!(
                response.status().as_u16() == 202,
                "POST answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
            let body: Value = response.json().await?;
            let id = body["id"].as_str().context("no id in the 202")?.to_owned();
            let arrival = loop {
                let arrival = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
                    .await
                    .context("no webhook within 30 s")?
                    .context("the receiver stopped")?;
                if arrival.generation == id {
                    break arrival;
                }
            };
            if i >= WARM_UP {
                let (created_at, completed_at) = timestamps(&db, &id).await?;
                let ms = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(0) as f64 / 1e3;
                samples
                    .total
                    .push(arrival.at.duration_since(sent).as_secs_f64() * 1e3);
                samples.accepted.push(accepted.as_secs_f64() * 1e3);
                samples.gateway.push(ms(created_at - sent_wall));
                samples.worker.push(ms(completed_at - created_at));
                samples.delivery.push(ms(arrival.wall - completed_at));
            }
            tokio::time::sleep(GAP).await;
        }
        for s in [
            &mut samples.total,
            &mut samples.accepted,
            &mut samples.gateway,
            &mut samples.worker,
            &mut samples.delivery,
        ] {
            s.sort_by(f64::total_cmp);
        }
        println!(
            "{format}: POST → webhook p50 {:.1} ms p99 {:.1} ms (202 p50 {:.1} ms; worker p50 {:.1} ms; delivery p50 {:.1} ms)",
            percentile(&samples.total, 50.0),
            percentile(&samples.total, 99.0),
            percentile(&samples.accepted, 50.0),
            percentile(&samples.worker, 50.0),
            percentile(&samples.delivery, 50.0),
        );
        results.push((format, samples));
    }

    let w = &stack.settings.worker;
    let d = &stack.settings.dispatcher;
    let mut body = format!(
        "One generation at a time ({SAMPLES} per format after {WARM_UP} uncounted, {} ms \
         between a webhook's arrival and the next POST): a 100-character English text in the \
         espeak-ng preset `{VOICE}` (not `voice_8f2a1c`, which is a neural voice), \
         through the whole stack in the bench process: gateway, key-service (key cached), \
         synth-worker ({} engine process(es), prefetch {} per engine), webhook-dispatcher \
         (poll {} ms, woken by new deliveries), a receiver answering 204; quorum queues, the \
         production defaults. Time from just before the POST until the receiver has the \
         request.\n\n\
         | format | POST → webhook p50 | p99 | max | 202 p50 | gateway p50 | worker p50 | delivery p50 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        GAP.as_millis(),
        stack.settings.engine_count(),
        w.prefetch_per_engine,
        d.poll_interval_ms,
    );
    for (format, s) in &results {
        body.push_str(&format!(
            "| {format} | **{:.1} ms** | **{:.1} ms** | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            percentile(&s.total, 50.0),
            percentile(&s.total, 99.0),
            s.total.last().copied().unwrap_or(f64::NAN),
            percentile(&s.accepted, 50.0),
            percentile(&s.gateway, 50.0),
            percentile(&s.worker, 50.0),
            percentile(&s.delivery, 50.0),
        ));
    }
    body.push_str(
        "\nAim: p50 ≤ 60 ms and p99 ≤ 250 ms. *gateway*: from the POST until the create \
         transaction's `now()` (so it excludes the commit); *worker*: from then until the \
         worker's result (`completed_at`) — the job's publish and confirm, the queue, \
         synthesis, encoding, storage; *delivery*: from then until the webhook arrives — the \
         event's publish, the dispatcher's consumer and fan-out, the claim, signing and the \
         POST. The split mixes the database's clock and ours (one machine).\n",
    );
    println!("{body}");
    write_section(
        "latency",
        "Latency: POST → webhook received",
        COMMAND,
        &body,
    )
}

async fn timestamps(
    db: &shared::db::Db,
    id: &str,
) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let id = shared::ids::GenerationId::parse(id).context("a bad generation id")?;
    let row: (DateTime<Utc>, Option<DateTime<Utc>>) = db
        .run(move |conn| {
            use shared::schema::generations::dsl as g;
            g::generations
                .find(id.0)
                .select((g::created_at, g::completed_at))
                .first(conn)
                .map_err(shared::db::DbError::from)
        })
        .await?;
    Ok((
        row.0,
        row.1
            .context("a delivered generation without completed_at")?,
    ))
}
