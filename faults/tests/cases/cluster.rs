//! (g) The production topology: a three-node RabbitMQ cluster (`ctl
//! cluster up`), quorum queues with replicas on all three, every service
//! given all three nodes (`amqp.url` comma-separated). Under continuous
//! load the node that leads `synth.jobs` is SIGKILLed, stopped for 30 s,
//! or paused (SIGSTOP: cut off from the others and from its clients) for
//! 20 s. Demands: no 500 and no answer over 3 s; every service stays or
//! becomes ready by itself; every 202 completes exactly once, charged and
//! announced once.

use std::time::Duration;

use diesel::prelude::*;
use faults::checks::accepted_ids;
use faults::{Env, Receiver, Stack};
use shared::schema::generations;

use crate::{check_answers, check_recovery, load_through_outage};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn sigkilling_the_node_that_leads_synth_jobs_under_load_loses_nothing() {
    cluster_case("cluster_kill", "kill", "start", Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn stopping_the_node_that_leads_synth_jobs_for_30_s_under_load_loses_nothing() {
    cluster_case("cluster_stop", "stop", "start", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by deploy/tests/faults"]
async fn pausing_the_node_that_leads_synth_jobs_for_20_s_under_load_loses_nothing() {
    cluster_case("cluster_pause", "pause", "resume", Duration::from_secs(20)).await;
}

async fn cluster_case(case: &str, fault: &str, back: &str, down_for: Duration) {
    let env = Env::from_env();
    env.ctl("cluster", "up").await;
    let urls = env.cluster_urls();
    let stack = Stack::start(case, 2, &[("VOICEPROD__AMQP__URL", &urls)]).await;
    let receiver = Receiver::start(stack.env.port_base + 10).await;
    stack.register_webhook(&receiver.url()).await;
    let queue = format!("{case}.synth.jobs");
    let leader = stack.env.ctl_output(&["cluster", "leader", &queue]).await;
    let node = format!("rabbit{leader}");
    eprintln!("[faults] {queue} is led by node {leader}: {fault} it for {down_for:?}");

    let outage = load_through_outage(&stack, &node, fault, back, down_for).await;

    let down = check_answers(&outage);
    let accepted_while_down = down.iter().filter(|p| p.status == 202).count();
    // Two of three nodes serve: the cluster keeps accepting meanwhile.
    assert!(
        accepted_while_down > 0,
        "nothing accepted while node {leader} was down"
    );
    let (posted, settled) = check_recovery(&stack, &receiver, outage.posted).await;
    let mut db = stack.db();
    let rows: Vec<(
        i32,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> = generations::table
        .select((
            generations::redrives,
            generations::created_at,
            generations::completed_at,
        ))
        .load(&mut db)
        .unwrap();
    let redriven = rows.iter().filter(|r| r.0 > 0).count();
    let slowest_completion = rows
        .iter()
        .filter_map(|(_, created, completed)| Some(*completed.as_ref()? - *created))
        .max()
        .unwrap_or_default();
    let new_leader = stack.env.ctl_output(&["cluster", "leader", &queue]).await;
    eprintln!(
        "[faults] node {leader} ({fault}, {down_for:?}): {} accepted ({accepted_while_down} while it was down), \
         {redriven} re-driven, slowest completion {:.1} s, all completed, announced and charged once \
         (settled in {settled:.1?}), 0 lost; {queue} now led by node {new_leader}",
        accepted_ids(&posted).len(),
        slowest_completion.num_milliseconds() as f64 / 1000.0,
    );
    drop(stack);
    env.ctl("cluster", "down").await;
}
