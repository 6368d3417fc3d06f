//! (b) RabbitMQ restarted under load: no generation that got a 202 is lost;
//! while the broker is down `POST /v1/generations` answers 503
//! `broker_unavailable` quickly (never hangs, never 500); every service
//! reconnects by itself.

use crate::outage_case;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn a_rabbitmq_restart_under_load_loses_nothing_and_answers_503_meanwhile() {
    outage_case("broker_restart", "rabbitmq", "stop", "broker_unavailable").await;
}

/// The same when the RabbitMQ node is SIGKILLed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn a_rabbitmq_crash_under_load_loses_nothing_and_answers_503_meanwhile() {
    outage_case("broker_crash", "rabbitmq", "kill", "broker_unavailable").await;
}
