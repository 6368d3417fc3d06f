//! `voiceprod-bench accept`: accepted generations per second and the p50/p99
//! of `POST /v1/generations` at a fixed concurrency, against a real gateway
//! and key-service (the key cached in the gateway), in the same run as
//! pgbench running the same create transaction on the same database and as
//! `GET /healthz` on the same gateway.
//!
//! The pgbench scripts repeat, statement for statement, what the gateway
//! sends to PostgreSQL for one accepted generation on the `enterprise` plan
//! (no key credit limit, no in-flight limit, so no advisory lock and no
//! count): `create` is the create transaction alone (outer transaction,
//! Diesel's savepoint for `create_within_limits`, the period roll-over
//! twice — once in `create_within_limits`, once in `reserve_credits` —, the
//! credit reservation, the generation insert returning the row, the usage
//! ledger row); `request` adds the rest of the request's own SQL: r2d2's
//! `SELECT 1` check-out test before its one pooled use. (The system-busy
//! count runs in that use at most every 500 ms while the backlog is far
//! below the cap, and `published_at` is written for many requests in one
//! UPDATE by a background task; neither is in the script.)
//!
//! No worker runs, so accepted generations stay `processing`; between phases
//! they are marked completed, so every phase starts with the same backlog
//! (none) for the system-busy guard to read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use diesel::RunQueryDsl;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::load::{self, Figures};
use crate::report::{median, write_section};
use crate::stack::{self, With};

const COMMAND: &str = "cargo run --release -p bench -- accept";
/// Clients at once: HTTP clients, and pgbench clients (connections).
const CONCURRENCY: usize = 16;
const WARM_UP: Duration = Duration::from_secs(1);
const PHASE: Duration = Duration::from_secs(6);
const ROUNDS: usize = 3;
/// An espeak-ng preset (voice_8f2a1c is a neural voice).
pub const VOICE: &str = "voice_3c71e9";
/// 100 characters.
pub const TEXT: &str = "The quarterly report is ready. Revenue grew by twelve percent, and costs fell in every one of those.";

struct Round {
    healthz: Figures,
    accept: Figures,
    create: Figures,
    request: Figures,
}

pub async fn run() -> anyhow::Result<()> {
    anyhow::ensure!(
        TEXT.chars().count() == 100,
        "the text must be 100 characters"
    );
    let pgbench = which_pgbench()?;
    let mut settings = stack::settings().await?;
    stack::production_defaults(&mut settings)?;
    let stack = stack::start(
        settings,
        With {
            worker: false,
            dispatcher: false,
        },
        "enterprise",
    )
    .await?;
    let db_url = stack.settings.database.url.expose_secret().to_owned();
    let dir = std::env::temp_dir().join(format!("voiceprod-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    prepare_database(&db_url).await?;
    let scripts = write_scripts(&dir)?;

    let client_headers = {
        let key = stack.api_key.clone();
        let url = format!("{}/v1/generations", stack.gateway);
        let body = json!({"text": TEXT, "voiceId": VOICE, "format": "mp3"});
        Arc::new(move |c: &reqwest::Client| c.post(&url).bearer_auth(&key).json(&body))
    };
    let healthz = {
        let url = format!("{}/healthz", stack.gateway);
        Arc::new(move |c: &reqwest::Client| c.get(&url))
    };
    let vars = [
        ("ws", stack.workspace_id.0.to_string()),
        ("key", stack.key_id.0.to_string()),
        ("text", TEXT.to_owned()),
        ("voice", VOICE.to_owned()),
        ("credits", "100".to_owned()),
    ];

    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        let healthz = load::run(CONCURRENCY, WARM_UP, PHASE, 200, healthz.clone()).await?;
        println!("round {round}: GET /healthz {}", show(&healthz));
        complete_backlog(&db_url).await?;
        let accept = load::run(CONCURRENCY, WARM_UP, PHASE, 202, client_headers.clone()).await?;
        println!("round {round}: POST /v1/generations {}", show(&accept));
        anyhow::ensure!(
            accept.errors == 0,
            "{} POSTs were not accepted; first: {:?}",
            accept.errors,
            accept.first_error
        );
        complete_backlog(&db_url).await?;
        let create = run_pgbench(&pgbench, &db_url, &scripts.0, &vars, &dir).await?;
        println!(
            "round {round}: pgbench create transaction {}",
            show(&create)
        );
        complete_backlog(&db_url).await?;
        let request = run_pgbench(&pgbench, &db_url, &scripts.1, &vars, &dir).await?;
        println!("round {round}: pgbench request's SQL {}", show(&request));
        complete_backlog(&db_url).await?;
        rounds.push(Round {
            healthz,
            accept,
            create,
            request,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);

    let ratio = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let med = |f: &dyn Fn(&Round) -> &Figures| {
        (
            median(rounds.iter().map(|r| f(r).per_sec).collect()),
            median(rounds.iter().map(|r| f(r).p50_ms).collect()),
            median(rounds.iter().map(|r| f(r).p99_ms).collect()),
        )
    };
    let accept_vs_create = ratio(&|r| r.accept.per_sec / r.create.per_sec);
    let accept_vs_request = ratio(&|r| r.accept.per_sec / r.request.per_sec);
    let accept_vs_healthz = ratio(&|r| r.accept.per_sec / r.healthz.per_sec);
    let row = |name: &str, (rate, p50, p99): (f64, f64, f64), vs: String| {
        format!("| {name} | {rate:.0} | {p50:.2} ms | {p99:.2} ms | {vs} |\n")
    };
    let mut body = format!(
        "{CONCURRENCY} clients at once in every phase; {ROUNDS} rounds of {} s phases (after {} s \
         of uncounted warm-up each), medians over the rounds. The gateway and key-service run in \
         the bench process (gateway: actix's default workers, one per core; database pool \
         {}); the key is cached in the gateway. Each POST is `{{\"text\": <100 characters>, \
         \"voiceId\": \"{VOICE}\", \"format\": \"mp3\"}}` on the `enterprise` plan (no rate, \
         credit or in-flight limit, as a load test runs); no worker runs, and the backlog of \
         `processing` generations is cleared between phases.\n\n\
         pgbench ({CONCURRENCY} clients, 2 threads, prepared statements) runs on the same \
         database: *create transaction* is the SQL of the create transaction, statement for \
         statement (`BEGIN`, Diesel's savepoint, the period roll-over twice, the credit \
         reservation, the generation insert returning the row, the usage-ledger insert, \
         `RELEASE`, `COMMIT`); *request's SQL* adds everything else one POST sends to \
         PostgreSQL (the pool's `SELECT 1` check-out test; the system-busy count, at most every \
         500 ms, and the batched `published_at` UPDATE are left out).\n\n\
         | phase | per second | p50 | p99 | accepted/s ÷ this |\n|---|---:|---:|---:|---:|\n",
        PHASE.as_secs(),
        WARM_UP.as_secs(),
        stack.settings.database.pool_max_size,
    );
    body.push_str(&row(
        "`GET /healthz` (same gateway)",
        med(&|r| &r.healthz),
        format!("{accept_vs_healthz:.2}"),
    ));
    body.push_str(&row(
        "pgbench: create transaction",
        med(&|r| &r.create),
        format!("**{accept_vs_create:.2}**"),
    ));
    body.push_str(&row(
        "pgbench: the request's SQL",
        med(&|r| &r.request),
        format!("{accept_vs_request:.2}"),
    ));
    body.push_str(&row(
        "**`POST /v1/generations` → 202**",
        med(&|r| &r.accept),
        "1.00".to_owned(),
    ));
    body.push_str(&format!(
        "\nAim: accepted/s ≥ 0.70 × the pgbench create transaction's; measured **{accept_vs_create:.2}**. \
         Per round (accepted/s ÷ pgbench create/s): {}.\n",
        rounds
            .iter()
            .map(|r| format!("{:.0}/{:.0}", r.accept.per_sec, r.create.per_sec))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    println!("{body}");
    write_section(
        "accept",
        "Accepting generations: POST /v1/generations vs pgbench vs /healthz",
        COMMAND,
        &body,
    )
}

fn show(f: &Figures) -> String {
    format!(
        "{:.0}/s p50 {:.2} ms p99 {:.2} ms ({} ok, {} errors)",
        f.per_sec, f.p50_ms, f.p99_ms, f.ok, f.errors
    )
}

fn which_pgbench() -> anyhow::Result<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .map(|d| d.join("pgbench"))
        .find(|p| p.is_file())
        .context("pgbench is not installed (Debian 12: apt-get install postgresql)")
}

/// A UUIDv7 in SQL (PostgreSQL 15 has no `uuidv7()`), as the gateway's ids
/// are: time-ordered, so inserts land at the end of the index as theirs do.
async fn prepare_database(url: &str) -> anyhow::Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = <diesel::PgConnection as diesel::Connection>::establish(&url)?;
        diesel::sql_query(
            "CREATE OR REPLACE FUNCTION bench_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
               SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
             $$",
        )
        .execute(&mut conn)?;
        Ok::<_, anyhow::Error>(())
    })
    .await?
}

/// Marks every `processing` generation completed: no backlog for the
/// system-busy guard to read in the next phase.
async fn complete_backlog(url: &str) -> anyhow::Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = <diesel::PgConnection as diesel::Connection>::establish(&url)?;
        diesel::sql_query(
            "UPDATE generations SET status = 'completed', completed_at = now() WHERE status = 'processing'",
        )
        .execute(&mut conn)?;
        diesel::sql_query("VACUUM ANALYZE generations, workspaces, usage_events")
            .execute(&mut conn)?;
        Ok::<_, anyhow::Error>(())
    })
    .await?
}

const CREATE_TRANSACTION: &str = r"BEGIN;
SAVEPOINT diesel_savepoint_1;
UPDATE workspaces SET credits_used = 0, period_start = date_trunc('month', now()) WHERE id = :ws AND period_start < date_trunc('month', now());
UPDATE workspaces SET credits_used = 0, period_start = date_trunc('month', now()) WHERE id = :ws AND period_start < date_trunc('month', now());
UPDATE workspaces SET credits_used = credits_used + :credits WHERE id = :ws AND credits_used + :credits <= credits_included;
INSERT INTO generations (id, workspace_id, api_key_id, text, text_type, voice_id, format, sample_rate, speed, status, credits, characters, metadata, idempotency_key, request_hash) VALUES (bench_uuid_v7(), :ws, :key, :text, 'text', :voice, 'mp3', NULL, 1.0, 'processing', :credits, :credits, NULL, NULL, NULL) RETURNING id, workspace_id, api_key_id, text, text_type, voice_id, format, sample_rate, speed, status, credits, characters, duration_ms, storage_key, error, metadata, idempotency_key, request_hash, created_at, published_at, completed_at, event_published_at \gset g_
INSERT INTO usage_events (id, workspace_id, api_key_id, generation_id, kind, credits, characters) VALUES (bench_uuid_v7(), :ws, :key, :g_id, 'charge', :credits, :credits) ON CONFLICT DO NOTHING;
RELEASE SAVEPOINT diesel_savepoint_1;
COMMIT;
";

/// Writes the two pgbench scripts; returns (create, request).
fn write_scripts(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let create = dir.join("create.sql");
    std::fs::write(&create, CREATE_TRANSACTION)?;
    let request = dir.join("request.sql");
    std::fs::write(
        &request,
        format!(
            "SELECT 1;\n\
             {CREATE_TRANSACTION}"
        ),
    )?;
    Ok((create, request))
}

/// Runs pgbench with `script` for a phase; latencies from its per-transaction log.
async fn run_pgbench(
    pgbench: &Path,
    url: &str,
    script: &Path,
    vars: &[(&str, String)],
    dir: &Path,
) -> anyhow::Result<Figures> {
    let logs = dir.join(format!("log-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs)?;
    let mut command = tokio::process::Command::new(pgbench);
    command
        .arg("--no-vacuum")
        .arg("--protocol=prepared")
        .arg(format!("--client={CONCURRENCY}"))
        .arg("--jobs=2")
        .arg(format!(
            "--time={}",
            (PHASE + WARM_UP).as_secs().max(PHASE.as_secs() + 1)
        ))
        .arg("--log")
        .arg(format!("--log-prefix={}", logs.join("tx").display()))
        .arg(format!("--file={}", script.display()));
    for (name, value) in vars {
        command.arg(format!("--define={name}={value}"));
    }
    command.arg(url);
    let out = command.output().await.context("Failed to run pgbench")?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The per-transaction log: client, transaction number, latency (µs),
    // script number, end time (s), end time (µs).
    let mut samples: Vec<(f64, f64)> = Vec::new();
    for entry in std::fs::read_dir(&logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let (Some(lat), Some(s), Some(us)) = (fields.get(2), fields.get(4), fields.get(5))
                && let (Ok(lat), Ok(s), Ok(us)) =
                    (lat.parse::<f64>(), s.parse::<f64>(), us.parse::<f64>())
            {
                samples.push((s + us / 1e6, lat / 1e3));
            }
        }
    }
    anyhow::ensure!(!samples.is_empty(), "pgbench logged no transactions");
    // Skip the warm-up, as the HTTP phases do.
    let first = samples.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let last = samples
        .iter()
        .map(|s| s.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let from = first + WARM_UP.as_secs_f64();
    let counted: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 >= from)
        .map(|s| s.1)
        .collect();
    let span = Duration::from_secs_f64((last - from).max(1e-3));
    Ok(Figures::from_samples(counted, 0, span))
}
