//! `voiceprod-bench split`: the wall time of one 20,000-character
//! generation (Piper `voice_8f2a1c`, WAV), from `POST /v1/generations` to
//! `completed`, through the whole stack in this process: on one engine
//! (the baseline), on two engines of one worker (its chunks in parallel),
//! on one engine with the text in parts (what splitting costs), and on two
//! workers of one engine each with the text in parts (`synth_worker::parts`).
//! Every engine has one ONNX Runtime thread, so an engine is a core.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::write_section;
use crate::stack::{self, With};

const COMMAND: &str = "cargo run --release -p bench -- split";
const VOICE: &str = "voice_8f2a1c";
const CHARACTERS: usize = 20_000;

/// About `CHARACTERS` characters of varied sentences.
fn text() -> String {
    testkit::long_prose(CHARACTERS)
}

struct Setup {
    name: &'static str,
    workers: usize,
    engines: usize,
    split: bool,
}

struct Measured {
    seconds: f64,
    audio_s: f64,
    parts: i64,
    workers: i64,
}

async fn measure(setup: &Setup, text: &str) -> anyhow::Result<Measured> {
    let mut settings = stack::settings().await?;
    stack::production_defaults(&mut settings)?;
    settings.piper.engines = setup.engines;
    settings.piper.threads = 1;
    settings.worker.interactive_engines = 0;
    if !setup.split {
        settings.worker.split_min_chars = 0;
    }
    let stack = stack::start(
        settings,
        With {
            worker: true,
            dispatcher: false,
        },
        "scale",
    )
    .await?;
    for _ in 1..setup.workers {
        let worker = synth_worker::Application::build(stack.settings.clone()).await?;
        tokio::spawn(worker.run_until_stopped());
    }
    // Every engine loads its model on its first job: warm them all.
    let warm: Vec<_> = (0..setup.workers * setup.engines * 2)
        .map(|i| generate(&stack, format!("Warming up engine number {i}.")))
        .collect();
    for result in futures_util::future::join_all(warm).await {
        result?;
    }
    let started = Instant::now();
    let (id, duration_ms) = generate(&stack, text.to_owned()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let db = shared::db::Db::new(&stack.settings.database);
    let gid = shared::ids::GenerationId::parse(&id)
        .ok_or_else(|| anyhow::anyhow!("not a generation id: {id}"))?
        .0;
    let (parts, workers): (i64, i64) = db
        .run(move |c| {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                parts: i64,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                workers: i64,
            }
            let row: Row = diesel::sql_query(
                "SELECT count(*) AS parts, \
                        count(DISTINCT split_part(claimed_by, '/', 1)) AS workers \
                 FROM generation_parts WHERE generation_id = $1",
            )
            .bind::<diesel::sql_types::Uuid, _>(gid)
            .get_result(c)?;
            Ok::<_, anyhow::Error>((row.parts, row.workers))
        })
        .await?;
    stack.shutdown();
    Ok(Measured {
        seconds,
        audio_s: duration_ms as f64 / 1e3,
        parts,
        workers,
    })
}

/// Creates a generation and waits until it completed: its id and duration.
async fn generate(stack: &stack::Stack, text: String) -> anyhow::Result<(String, i64)> {
    let response = stack
        .post(
            "/v1/generations",
            json!({"text": text, "voiceId": VOICE, "format": "wav"}),
        )
        .await;
    anyhow::ensure!(
        response.status().as_u16() == 202,
        "create answered {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    let until = Instant::now() + Duration::from_secs(900);
    loop {
        let answer = stack.get(&format!("/v1/generations/{id}")).await;
        if answer.status().as_u16() == 429 {
            // The plan's request rate, with the warm-ups polling at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let row: serde_json::Value = answer.json().await?;
        match row["status"].as_str() {
            Some("completed") => return Ok((id, row["durationMs"].as_i64().unwrap_or(0))),
            Some("processing") => {}
            other => anyhow::bail!("generation {id} ended {other:?}: {}", row["error"]),
        }
        anyhow::ensure!(Instant::now() < until, "generation {id} took over 900 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run() -> anyhow::Result<()> {
    let text = text();
    let setups = [
        Setup {
            name: "1 worker, 1 engine, whole",
            workers: 1,
            engines: 1,
            split: false,
        },
        Setup {
            name: "1 worker, 2 engines, whole",
            workers: 1,
            engines: 2,
            split: false,
        },
        Setup {
            name: "1 worker, 1 engine, in parts",
            workers: 1,
            engines: 1,
            split: true,
        },
        Setup {
            name: "2 workers, 1 engine each, in parts",
            workers: 2,
            engines: 1,
            split: true,
        },
    ];
    let mut rows = Vec::new();
    for setup in &setups {
        let m = measure(setup, &text).await?;
        println!(
            "{}: {:.1} s for {:.0} s of audio ({} parts, rendered by {} worker(s))",
            setup.name, m.seconds, m.audio_s, m.parts, m.workers
        );
        rows.push((setup, m));
    }
    let base = rows[0].1.seconds;
    let mut table = String::from(
        "| setup | wall time | ÷ 1 engine | parts | workers that rendered parts |\n|---|---:|---:|---:|---:|\n",
    );
    for (setup, m) in &rows {
        table.push_str(&format!(
            "| {} | {:.1} s | **{:.2}** | {} | {} |\n",
            setup.name,
            m.seconds,
            m.seconds / base,
            m.parts,
            m.workers
        ));
    }
    let body = format!(
        "One generation of {} characters (Piper `{VOICE}`, WAV, {:.0} s of audio), from \
         `POST /v1/generations` to `completed` (polled every 100 ms), through the whole stack in \
         the bench process, each setup on a fresh stack after every engine has rendered a \
         sentence. Every Piper engine has one ONNX Runtime thread (an engine is a core; the \
         machine has {} cores). *In parts*: the worker defaults, texts of at least 4,000 \
         characters split into parts of about 1,600 that every worker may render.\n\n{table}\n\
         Two workers of one engine each stand for two machines; here they share the cores, as \
         the two engines of one worker do.\n",
        text.chars().count(),
        rows[0].1.audio_s,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    write_section(
        "split",
        "Long texts in parts: one generation on 1 and 2 engines",
        COMMAND,
        &body,
    )?;
    Ok(())
}
