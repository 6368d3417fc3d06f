//! What `deploy/tests/faults` tells the cases, and the `ctl` it offers
//! to stop and start the suite's own PostgreSQL and RabbitMQ.

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Env {
    /// `deploy/tests/faults`, whose `ctl` subcommand stops and starts infrastructure.
    pub ctl: PathBuf,
    /// The service binaries (`target/debug` or `target/release`).
    pub bin_dir: PathBuf,
    /// First port of the suite's range.
    pub port_base: u16,
    /// The suite's PostgreSQL, database `postgres`.
    pub pg_url: String,
    /// The suite's RabbitMQ.
    pub amqp_url: String,
    /// Logs of the services, one folder per case.
    pub log_dir: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the fault suite runs through deploy/tests/faults")
    })
}

impl Env {
    pub fn from_env() -> Self {
        Self {
            ctl: var("FAULTS_CTL").into(),
            bin_dir: var("FAULTS_BIN_DIR").into(),
            port_base: var("FAULTS_PORT_BASE").parse().expect("FAULTS_PORT_BASE"),
            pg_url: var("FAULTS_PG_URL"),
            amqp_url: var("FAULTS_AMQP_URL"),
            log_dir: var("FAULTS_LOG_DIR").into(),
        }
    }

    /// What `deploy/tests/faults ctl <args>` prints (trimmed).
    pub async fn ctl_output(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(&self.ctl)
            .arg("ctl")
            .args(args)
            .output()
            .await
            .expect("run deploy/tests/faults ctl");
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The AMQP URLs of the three-node cluster (`ctl cluster up`), in
    /// `amqp.url`'s form: comma-separated.
    pub fn cluster_urls(&self) -> String {
        (1..=3)
            .map(|n| {
                format!(
                    "amqp://guest:guest@127.0.0.1:{}/%2f",
                    self.port_base + 82 + n
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `deploy/tests/faults ctl <service> <action>`; returns how long it took.
    pub async fn ctl(&self, service: &str, action: &str) -> Duration {
        let started = Instant::now();
        let status = tokio::process::Command::new(&self.ctl)
            .args(["ctl", service, action])
            .status()
            .await
            .expect("run deploy/tests/faults ctl");
        assert!(status.success(), "ctl {service} {action} failed: {status}");
        let took = started.elapsed();
        eprintln!("[faults] {service} {action}: {took:.1?}");
        took
    }
}
