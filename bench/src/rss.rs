//! `voiceprod-bench rss`: the resident memory of each service as a real
//! process (the release binaries next to this one, configured by
//! environment as deploy/dev does), idle after start-up, then idle again
//! after a little traffic (generations through the whole stack, with their
//! webhooks), read from `/proc/<pid>/status` (`VmRSS`, and `VmHWM`, the
//! peak). The worker's engine processes are counted separately.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::accept::{TEXT, VOICE};
use crate::report::write_section;

const COMMAND: &str = "cargo build --release -p gateway -p key-service -p synth-worker -p webhook-dispatcher && cargo run --release -p bench -- rss";
const SERVICES: [&str; 4] = [
    "key-service",
    "gateway",
    "synth-worker",
    "webhook-dispatcher",
];
/// Ports of this benchmark's stack (the bench's range, away from 8080–8083).
const BASE_PORT: u16 = 9510;
const TRAFFIC: usize = 20;
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
    })
}

/// The children of `pid` (the worker's engine processes).
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

struct Service {
    name: &'static str,
    port: u16,
    child: tokio::process::Child,
}

impl Service {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

fn binaries() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("the bench binary has no directory")?
        .to_owned();
    for name in SERVICES {
        anyhow::ensure!(
            dir.join(name).is_file(),
            "{} is missing: run `cargo build --release -p gateway -p key-service -p synth-worker -p webhook-dispatcher` first",
            dir.join(name).display()
        );
    }
    Ok(dir)
}

pub async fn run() -> anyhow::Result<()> {
    let bin = binaries()?;
    let settings = crate::stack::settings().await?;
    let ports: HashMap<&str, u16> = SERVICES
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, BASE_PORT + i as u16))
        .collect();
    let storage =
        std::env::temp_dir().join(format!("voiceprod-bench-rss-{}", uuid::Uuid::new_v4()));
    let logs = storage.join("logs");
    std::fs::create_dir_all(&logs)?;
    let env: Vec<(String, String)> = vec![
        // A local benchmark on the built-in secrets.
        ("VOICEPROD__DEV_MODE".into(), "true".into()),
        (
            "VOICEPROD__DATABASE__URL".into(),
            settings.database.url.expose_secret().to_owned(),
        ),
        (
            "VOICEPROD__AMQP__URL".into(),
            settings.amqp.url.expose_secret().to_owned(),
        ),
        (
            "VOICEPROD__AMQP__PREFIX".into(),
            settings.amqp.prefix.clone(),
        ),
        ("VOICEPROD__AMQP__QUEUE_EXPIRES_MS".into(), "60000".into()),
        (
            "VOICEPROD__STORAGE__ROOT".into(),
            storage.join("audio").display().to_string(),
        ),
        (
            "VOICEPROD__WEBHOOKS__ALLOWED_TARGET_CIDRS".into(),
            "127.0.0.0/8,::1/128".into(),
        ),
        (
            "VOICEPROD__GATEWAY__PUBLIC_BASE_URL".into(),
            format!("http://127.0.0.1:{}", ports["gateway"]),
        ),
        (
            "VOICEPROD__GATEWAY__KEY_SERVICE_URL".into(),
            format!("http://127.0.0.1:{}", ports["key-service"]),
        ),
        (
            "VOICEPROD__GATEWAY__PORT".into(),
            ports["gateway"].to_string(),
        ),
        (
            "VOICEPROD__KEY_SERVICE__PORT".into(),
            ports["key-service"].to_string(),
        ),
        (
            "VOICEPROD__WORKER__PORT".into(),
            ports["synth-worker"].to_string(),
        ),
        (
            "VOICEPROD__DISPATCHER__PORT".into(),
            ports["webhook-dispatcher"].to_string(),
        ),
        ("NO_COLOR".into(), "1".into()),
    ];
    let mut services = Vec::new();
    for name in SERVICES {
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let child = tokio::process::Command::new(bin.join(name))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("Failed to start {name}"))?;
        services.push(Service {
            name,
            port: ports[name],
            child,
        });
    }
    let result = measure(&bin, &env, &services).await;
    for s in &mut services {
        if let Some(pid) = s.child.id() {
            // SIGTERM: a graceful stop (the worker stops its engines).
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for s in &mut services {
        let _ = tokio::time::timeout(Duration::from_secs(15), s.child.wait()).await;
    }
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&storage);
    } else {
        eprintln!("service logs are in {}", logs.display());
    }
    result
}

async fn measure(bin: &Path, env: &[(String, String)], services: &[Service]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for s in services {
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{}/readyz", s.port))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} was not ready within 60 s",
                s.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(SETTLE).await;
    let idle = snapshot(services)?;

    // A little traffic: a key, a webhook endpoint, generations and their webhooks.
    let out = tokio::process::Command::new(bin.join("key-service"))
        .args(["bootstrap", "--workspace", "bench", "--plan", "enterprise"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Value = serde_json::from_slice(&out.stdout)?;
    let key = boot["apiKey"]
        .as_str()
        .context("no apiKey from bootstrap")?
        .to_owned();
    let receiver = testkit::receiver::Receiver::start().await;
    let gateway = format!("http://127.0.0.1:{}", services[1].port);
    let r = client
        .post(format!("{gateway}/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "webhook registration answered {}",
        r.status()
    );
    for i in 0..TRAFFIC {
        let format = ["mp3", "wav", "ogg", "flac"][i % 4];
        let r = client
            .post(format!("{gateway}/v1/generations"))
            .bearer_auth(&key)
            .json(&json!({"text": TEXT, "voiceId": VOICE, "format": format}))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 202, "POST answered {}", r.status());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.requests().len() < TRAFFIC {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {TRAFFIC} webhooks arrived",
            receiver.requests().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let after = snapshot(services)?;

    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut body = format!(
        "The four release binaries started as deploy/dev starts them (production defaults, \
         configured by environment; a fresh database and AMQP prefix), each on its own. *idle*: \
         {} s after every service answered `/readyz`; *after traffic*: {} s after {TRAFFIC} \
         generations of 100 characters (mp3, wav, ogg, flac in turn) went through the whole \
         stack and their webhooks arrived. From `/proc/<pid>/status`: `VmRSS` (resident now) \
         and `VmHWM` (peak resident). The worker's engine processes (one per core) are \
         separate processes and are shown apart.\n\n\
         | process | idle RSS | after traffic RSS | peak (HWM) | threads | aim |\n\
         |---|---:|---:|---:|---:|---:|\n",
        SETTLE.as_secs(),
        SETTLE.as_secs(),
    );
    for (s, (i, a)) in services.iter().zip(idle.iter().zip(after.iter())) {
        let aim = if s.name == "synth-worker" { 80 } else { 40 };
        body.push_str(&format!(
            "| {} | {:.1} MiB | **{:.1} MiB** | {:.1} MiB | {} | ≤ {aim} MB |\n",
            s.name,
            mib(i.0.rss_kib),
            mib(a.0.rss_kib),
            mib(a.0.hwm_kib),
            a.0.threads
        ));
        for (n, (ci, ca)) in i.1.iter().zip(a.1.iter()).enumerate() {
            body.push_str(&format!(
                "| └ engine process {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | |\n",
                n + 1,
                mib(ci.rss_kib),
                mib(ca.rss_kib),
                mib(ca.hwm_kib),
                ca.threads
            ));
        }
        if !a.1.is_empty() {
            let total = a.0.rss_kib + a.1.iter().map(|c| c.rss_kib).sum::<u64>();
            body.push_str(&format!(
                "| synth-worker with its engines | | {:.1} MiB | | | |\n",
                mib(total)
            ));
        }
    }
    if let Ok(arenas) = std::env::var("MALLOC_ARENA_MAX") {
        body.push_str(&format!(
            "\nRun with `MALLOC_ARENA_MAX={arenas}` in the services' environment.\n"
        ));
    }
    println!("{body}");
    write_section("rss", "Idle memory of each service", COMMAND, &body)
}

/// Each service's memory and its children's.
fn snapshot(services: &[Service]) -> anyhow::Result<Vec<(Memory, Vec<Memory>)>> {
    services
        .iter()
        .map(|s| {
            let own = memory(s.pid())?;
            let mut kids: Vec<u32> = children(s.pid());
            kids.sort_unstable();
            let kids = kids.into_iter().filter_map(|p| memory(p).ok()).collect();
            Ok((own, kids))
        })
        .collect()
}
