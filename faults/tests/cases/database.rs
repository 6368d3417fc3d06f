//! (c) PostgreSQL restarted under load: no generation that got a 202 is
//! lost; while the database is down `POST /v1/generations` answers 503
//! `database_unavailable` quickly (never hangs, never 500); every service
//! reconnects by itself.

use crate::outage_case;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn a_postgres_restart_under_load_loses_nothing_and_answers_503_meanwhile() {
    outage_case("database_restart", "pg", "stop", "database_unavailable").await;
}

/// The same when PostgreSQL stops in immediate mode (crash recovery at the
/// next start).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn a_postgres_crash_under_load_loses_nothing_and_answers_503_meanwhile() {
    outage_case("database_crash", "pg", "kill", "database_unavailable").await;
}
