//! Load: many `POST /v1/generations` at once, each answer kept with its
//! latency, so a case can say exactly what was accepted and what not.

use futures_util::StreamExt;

use crate::stack::{Posted, Stack};

/// Posts one short, distinct sentence per index of `range`, `concurrency`
/// at a time; the answers come back in index order.
pub async fn post_many(
    stack: &Stack,
    tag: &str,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Vec<Posted> {
    futures_util::stream::iter(range)
        .map(|i| async move { stack.post_generation(&sentence(tag, i)).await })
        .buffered(concurrency)
        .collect()
        .await
}

/// A short sentence (one credit), different for every index.
pub fn sentence(tag: &str, i: usize) -> String {
    format!("Fault {tag} number {i}.")
}
