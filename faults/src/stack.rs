//! One case's stack: a fresh database on the suite's PostgreSQL, a topology
//! of its own (AMQP prefix = the case's name) on the suite's RabbitMQ, and
//! the four services as real processes, each in its own process group,
//! logging to `FAULTS_LOG_DIR/<case>/<service>.log`. Dropping the stack
//! SIGKILLs every process group it started (engine processes included).
//!
//! Ports: gateway BASE, key-service BASE+1, dispatcher BASE+2, worker n
//! BASE+3+n; the webhook receiver of the cases takes BASE+10.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::Value;

use crate::env::Env;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    KeyService,
    Gateway,
    Dispatcher,
    /// The n-th synth-worker (several may run at once).
    Worker(u16),
}

impl Service {
    fn binary(self) -> &'static str {
        match self {
            Self::KeyService => "key-service",
            Self::Gateway => "gateway",
            Self::Dispatcher => "webhook-dispatcher",
            Self::Worker(_) => "synth-worker",
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::Worker(n) => format!("synth-worker-{n}"),
            other => other.binary().to_owned(),
        }
    }

    fn port(self, base: u16) -> u16 {
        match self {
            Self::Gateway => base,
            Self::KeyService => base + 1,
            Self::Dispatcher => base + 2,
            Self::Worker(n) => base + 3 + n,
        }
    }
}

/// The answer to one `POST /v1/generations`.
#[derive(Debug, Clone)]
pub struct Posted {
    /// HTTP status; 0 when no answer came at all (connection error, timeout).
    pub status: u16,
    /// When the request was sent, and how long the answer took.
    pub started: Instant,
    pub elapsed: Duration,
    /// The generation id of a 202.
    pub id: Option<String>,
    /// `credits` of a 202.
    pub credits: i64,
    /// `error.code` of an error answer, or the transport error.
    pub error: Option<String>,
}

pub struct Stack {
    pub env: Env,
    pub case: String,
    pub db_url: String,
    pub api_key: String,
    pub workspace_id: String,
    pub client: reqwest::Client,
    /// An espeak-ng preset voice (fast) for load.
    pub voice: String,
    /// When every service was first ready: the case's queues (a topology
    /// of its own) were declared just before.
    pub ready_at: Instant,
    log_dir: PathBuf,
    extra_env: Vec<(String, String)>,
    procs: Mutex<BTreeMap<Service, Child>>,
}

impl Stack {
    /// A fresh database and topology, the services (with `workers`
    /// synth-workers) started and ready, and an `enterprise` workspace with
    /// a finite allowance, so every charge shows in `credits_used`.
    /// `extra_env` adds or overrides `VOICEPROD__…` settings.
    pub async fn start(case: &str, workers: u16, extra_env: &[(&str, &str)]) -> Stack {
        let env = Env::from_env();
        let log_dir = env.log_dir.join(case);
        std::fs::create_dir_all(&log_dir).unwrap();
        let db_name = format!("faults_{case}");
        let db_url = fresh_database(&env.pg_url, &db_name).await;
        let mut stack = Stack {
            env,
            case: case.to_owned(),
            db_url,
            api_key: String::new(),
            workspace_id: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // Below the gateway's keep-alive (actix's 5 s): a pooled
                // connection the server is closing just as it is reused
                // fails the request without an answer (the HTTP/1.1
                // keep-alive race, which no server avoids), and a case
                // would count that against the fault it injects.
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            voice: String::new(),
            ready_at: Instant::now(),
            log_dir,
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            procs: Mutex::default(),
        };
        let out = stack.run_cli(&["migrate"]);
        assert!(out.status.success(), "key-service migrate failed");
        let mut services = vec![Service::KeyService, Service::Dispatcher, Service::Gateway];
        services.extend((0..workers).map(Service::Worker));
        for s in &services {
            stack.spawn(*s);
        }
        stack.wait_ready(&services, Duration::from_secs(60)).await;
        stack.ready_at = Instant::now();

        let out = stack.run_cli(&["bootstrap", "--workspace", case, "--plan", "enterprise"]);
        assert!(out.status.success(), "key-service bootstrap failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json: Value = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .expect("bootstrap prints JSON");
        stack.api_key = json["apiKey"].as_str().unwrap().to_owned();
        stack.workspace_id = json["workspaceId"].as_str().unwrap().to_owned();
        stack.voice = stack.espeak_voice().await;
        stack
    }

    pub fn port(&self, service: Service) -> u16 {
        service.port(self.env.port_base)
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port(Service::Gateway))
    }

    fn service_env(&self, service: Service) -> Vec<(String, String)> {
        let port = |s: Service| self.port(s).to_string();
        let mut env: Vec<(String, String)> = [
            ("NO_COLOR", "1".to_owned()),
            ("VOICEPROD__DATABASE__URL", self.db_url.clone()),
            ("VOICEPROD__AMQP__URL", self.env.amqp_url.clone()),
            ("VOICEPROD__AMQP__PREFIX", format!("{}.", self.case)),
            // Production's topology: quorum queues with a delivery limit.
            ("VOICEPROD__AMQP__QUORUM_QUEUES", "true".to_owned()),
            (
                "VOICEPROD__STORAGE__ROOT",
                self.log_dir.join("audio").display().to_string(),
            ),
            (
                "VOICEPROD__WEBHOOKS__ALLOWED_TARGET_CIDRS",
                "127.0.0.0/8,::1/128".to_owned(),
            ),
            ("VOICEPROD__GATEWAY__PUBLIC_BASE_URL", self.gateway_url()),
            (
                "VOICEPROD__GATEWAY__KEY_SERVICE_URL",
                format!("http://127.0.0.1:{}", port(Service::KeyService)),
            ),
            ("VOICEPROD__GATEWAY__PORT", port(Service::Gateway)),
            ("VOICEPROD__KEY_SERVICE__PORT", port(Service::KeyService)),
            ("VOICEPROD__DISPATCHER__PORT", port(Service::Dispatcher)),
            (
                "VOICEPROD__WORKER__PORT",
                match service {
                    Service::Worker(_) => port(service),
                    _ => port(Service::Worker(0)),
                },
            ),
            (
                "VOICEPROD__AUDIO_URLS__SIGNING_KEY",
                "faults-audio-url-signing-key".to_owned(),
            ),
            (
                "VOICEPROD__KEY_SERVICE__INTERNAL_TOKEN",
                "faults-internal-token-0123456789".to_owned(),
            ),
            (
                "VOICEPROD__PLANS__ENTERPRISE__CREDITS_PER_PERIOD",
                "100000000".to_owned(),
            ),
            // The default voice is neural: the models `deploy/fetch-models`
            // put in the repository's .cache (or VOICEPROD_MODELS_DIR).
            (
                "VOICEPROD__PIPER__VOICES_DIR",
                testkit::models_dir().join("voices").display().to_string(),
            ),
            (
                "VOICEPROD__PIPER__ONNXRUNTIME",
                testkit::models_dir()
                    .join("onnxruntime")
                    .join(shared::settings::ONNXRUNTIME_LIB)
                    .display()
                    .to_string(),
            ),
            (
                "VOICEPROD__KOKORO__DIR",
                testkit::models_dir().join("kokoro").display().to_string(),
            ),
            (
                "VOICEPROD__CLONING__ENCODER",
                testkit::models_dir()
                    .join("encoder/embedder.int8.onnx")
                    .display()
                    .to_string(),
            ),
            // Two cores: one engine process per worker and per engine kind.
            ("VOICEPROD__WORKER__ENGINES", "1".to_owned()),
            ("VOICEPROD__KOKORO__ENGINES", "1".to_owned()),
            // Re-publish what a broker outage left unpublished within seconds.
            ("VOICEPROD__GATEWAY__SWEEPER_INTERVAL_MS", "500".to_owned()),
            ("VOICEPROD__GATEWAY__SWEEPER_GRACE_MS", "2000".to_owned()),
            // Re-drive what the broker lost, or what a killed worker held,
            // within seconds too: a lease of 3 s, a re-drive grace of 2 s.
            ("VOICEPROD__GATEWAY__REDRIVE_GRACE_MS", "2000".to_owned()),
            ("VOICEPROD__WORKER__LEASE_MS", "3000".to_owned()),
            ("VOICEPROD__GATEWAY__METRICS_ENABLED", "true".to_owned()),
            // The same for events a broker outage left unpublished.
            (
                "VOICEPROD__WORKER__EVENT_RELAY_INTERVAL_MS",
                "500".to_owned(),
            ),
            ("VOICEPROD__WORKER__EVENT_RELAY_GRACE_MS", "2000".to_owned()),
            ("VOICEPROD__DISPATCHER__POLL_INTERVAL_MS", "250".to_owned()),
            // Retries within seconds, not minutes, and many of them: an
            // outage of a few seconds must not exhaust the schedule.
            (
                "VOICEPROD__DISPATCHER__RETRY_SCHEDULE_SECS",
                "1,1,1,2,2,2,3,3,3,5,5,5,5,5,5,5,5,5,5,5".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in &self.extra_env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    fn command(&self, service: Service) -> Command {
        let mut cmd = Command::new(self.env.bin_dir.join(service.binary()));
        for (k, _) in std::env::vars() {
            if k.starts_with("VOICEPROD") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.service_env(service));
        cmd
    }

    fn log_file(&self, service: Service) -> std::fs::File {
        let path = self.log_dir.join(format!("{}.log", service.name()));
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "==== faults: starting {} ====", service.name()).unwrap();
        f
    }

    fn run_cli(&self, args: &[&str]) -> std::process::Output {
        let log = self.log_file(Service::KeyService);
        self.command(Service::KeyService)
            .args(args)
            .stderr(log)
            .output()
            .unwrap()
    }

    /// Starts `service` (again); it is not waited for.
    pub fn spawn(&self, service: Service) {
        assert!(
            !self.procs.lock().unwrap().contains_key(&service),
            "{} is running",
            service.name()
        );
        let log = self.log_file(service);
        let child = self
            .command(service)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own group, so teardown takes its engine processes too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", service.name()));
        // For the suite script's teardown, should this process die before
        // its Drop runs.
        if let Ok(state) = std::env::var("FAULTS_STATE") {
            let dir = std::path::Path::new(&state).join("pids");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(child.id().to_string()), service.name());
        }
        self.procs.lock().unwrap().insert(service, child);
    }

    pub fn pid(&self, service: Service) -> u32 {
        self.procs.lock().unwrap()[&service].id()
    }

    /// SIGKILLs `service` (that process alone, as the kernel's OOM killer
    /// would) and reaps it; returns the pids its children had.
    pub fn sigkill(&self, service: Service) -> Vec<u32> {
        let mut child = self
            .procs
            .lock()
            .unwrap()
            .remove(&service)
            .expect("service running");
        let children = children_of(child.id());
        // SAFETY: kill(2) on a pid this process spawned and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        children
    }

    /// Polls `/readyz` of each service until it answers 200.
    pub async fn wait_ready(&self, services: &[Service], timeout: Duration) -> Duration {
        let started = Instant::now();
        for s in services {
            let url = format!("http://127.0.0.1:{}/readyz", self.port(*s));
            loop {
                let ok = self
                    .client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ok {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "{} not ready within {timeout:?} (log: {})",
                    s.name(),
                    self.log_dir.display()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        started.elapsed()
    }

    /// Every service this stack runs now.
    pub fn running(&self) -> Vec<Service> {
        self.procs.lock().unwrap().keys().copied().collect()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.gateway_url()))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.gateway_url()))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// `POST /v1/generations` of `text` in the load voice, timed.
    pub async fn post_generation(&self, text: &str) -> Posted {
        let body = serde_json::json!({"text": text, "voiceId": self.voice, "format": "wav"});
        let started = Instant::now();
        let sent = self
            .client
            .post(format!("{}/v1/generations", self.gateway_url()))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Posted {
                    status: 0,
                    started,
                    elapsed: started.elapsed(),
                    id: None,
                    credits: 0,
                    // With its causes: "error sending request" alone does
                    // not say whether the connection was refused or reset.
                    error: Some(format!("{:#}", anyhow::Error::from(e))),
                };
            }
        };
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        Posted {
            status,
            started,
            elapsed: started.elapsed(),
            id: json["id"].as_str().map(str::to_owned),
            credits: json["credits"].as_i64().unwrap_or(0),
            error: json["error"]["code"].as_str().map(str::to_owned),
        }
    }

    /// Registers `url` for `generation.completed` and `generation.failed`.
    pub async fn register_webhook(&self, url: &str) {
        let r = self
            .post_json(
                "/v1/webhooks",
                serde_json::json!({"url": url, "events": ["generation.completed", "generation.failed"]}),
            )
            .await;
        assert_eq!(r.status(), 201, "register webhook");
    }

    /// An espeak-ng preset (not the default voice, which may move to a
    /// slower neural engine): the first other English preset.
    async fn espeak_voice(&self) -> String {
        let voices = self
            .get_json("/v1/voices?engine=espeak-ng&language=en&limit=100")
            .await;
        voices["data"]
            .as_array()
            .expect("voices list")
            .iter()
            .find(|v| {
                v["type"] == "preset"
                    && v["id"] != shared::voices::DEFAULT_VOICE_ID
                    && v["natural"] == false
            })
            .and_then(|v| v["id"].as_str())
            .expect("an espeak-ng English preset")
            .to_owned()
    }

    /// A plain connection to this case's database (for the checks).
    pub fn db(&self) -> PgConnection {
        PgConnection::establish(&self.db_url).unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let procs = std::mem::take(self.procs.get_mut().unwrap_or_else(|e| e.into_inner()));
        for (_, mut child) in procs {
            // SAFETY: kill(2) of the process group this stack started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

/// Creates (after dropping a leftover of an earlier run) database `name`.
async fn fresh_database(admin_url: &str, name: &str) -> String {
    let admin = admin_url.to_owned();
    let db = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&admin).unwrap();
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {db}"))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL");
    format!("{base}/{name}")
}

/// The pids of `pid`'s children (all its threads' children).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `pid` still runs (a zombie waiting for its reaper does not).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}
