//! The worker's side of leases and re-drive (`shared::models::lease`):
//! each delivery claims its generation under a claim of its own
//! (`{worker}/{uuid}`), so two copies of one job never render at once, not
//! even in one worker; the claim is renewed while the render runs, and a
//! render whose claim was lost (another worker took the generation after
//! the lease expired, or the sweeper timed it out) stops. The worker also
//! records how far it has consumed the jobs queue, which tells the sweeper
//! which jobs no queued copy can still reach.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::db::Db;
use shared::models::{Claim, Generation, GenerationPart, QueueProgress};
use uuid::Uuid;

/// Progress is written at most this often per worker (milliseconds of
/// publish time): enough for the sweeper, one small UPDATE a second.
const PROGRESS_STEP_MS: i64 = 1_000;

pub struct Leases {
    /// This worker process: `{host}-{pid}-{random}`.
    worker: String,
    lease: Duration,
    /// The publish time (ms) of the newest job whose progress was written.
    progress_ms: AtomicI64,
}

/// One delivery's claim on its generation.
#[derive(Debug, Clone)]
pub struct Holder {
    pub generation: Uuid,
    pub claim: String,
}

impl Leases {
    pub fn new(lease: Duration) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".to_owned());
        let worker = format!(
            "{host}-{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            worker,
            lease,
            progress_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// This worker's name, the prefix of its claims.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Notes that a job published at `published_at` was taken from `queue`
    /// (throttled; a failure only delays re-drives, so it is logged).
    pub async fn consumed(&self, db: &Db, queue: &str, published_at: Option<DateTime<Utc>>) {
        let Some(at) = published_at else { return };
        let ms = at.timestamp_millis();
        let before = self.progress_ms.load(Ordering::Relaxed);
        if ms < before.saturating_add(PROGRESS_STEP_MS) {
            return;
        }
        if self
            .progress_ms
            .compare_exchange(before, ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another delivery is writing it
        }
        let queue = queue.to_owned();
        if let Err(e) = db
            .run(move |c| QueueProgress::advance(c, &queue, at).map_err(anyhow::Error::from))
            .await
        {
            self.progress_ms.store(before, Ordering::Relaxed);
            tracing::warn!(
                error = format!("{e:#}"),
                "could not record the jobs queue's progress"
            );
        }
    }

    /// Claims `generation` for one delivery of its job, published with
    /// re-drive number `redrive`.
    pub async fn claim(
        &self,
        db: &Db,
        generation: Uuid,
        redrive: i32,
    ) -> anyhow::Result<(Claim, Holder)> {
        let holder = Holder {
            generation,
            claim: self.claim_name(),
        };
        let (claim, lease_ms) = (holder.claim.clone(), self.lease_ms());
        let outcome = db
            .run(move |c| {
                Generation::claim(c, generation, &claim, lease_ms, redrive)
                    .map_err(anyhow::Error::from)
            })
            .await?;
        Ok((outcome, holder))
    }

    /// A new claim name of this worker: `{worker}/{uuid}`, one per claim.
    pub fn claim_name(&self) -> String {
        format!("{}/{}", self.worker, Uuid::new_v4().simple())
    }

    /// How long a claim holds without renewal, in milliseconds.
    pub fn lease_millis(&self) -> i64 {
        self.lease_ms()
    }

    /// Runs `work` while renewing `holder`'s lease every third of it;
    /// `None` if the lease was lost (then `work` was dropped: stopped).
    /// While the database does not answer, the work goes on: nobody else
    /// can claim the generation without it either.
    pub async fn hold<F: Future>(&self, db: &Db, holder: &Holder, work: F) -> Option<F::Output> {
        self.hold_while(
            || {
                let (id, claim, lease_ms) =
                    (holder.generation, holder.claim.clone(), self.lease_ms());
                db.run(move |c| {
                    Generation::renew_lease(c, id, &claim, lease_ms).map_err(anyhow::Error::from)
                })
            },
            work,
        )
        .await
    }

    /// Runs `work` while `renew` (called every third of the lease) says
    /// the claim still holds; `None` once it says it does not (then `work`
    /// was dropped). A renewal that fails is logged and the work goes on.
    pub async fn hold_while<F, R, RF>(&self, renew: R, work: F) -> Option<F::Output>
    where
        F: Future,
        R: Fn() -> RF,
        RF: Future<Output = anyhow::Result<bool>>,
    {
        let renewing = async {
            let mut tick = tokio::time::interval(self.lease / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match renew().await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "could not renew the lease; rendering on"
                        )
                    }
                }
            }
        };
        tokio::select! {
            out = work => Some(out),
            () = renewing => None,
        }
    }

    /// Gives `holder`'s lease up (its job goes back to the queue).
    pub async fn release(&self, db: &Db, holder: &Holder) {
        let (id, claim) = (holder.generation, holder.claim.clone());
        if let Err(e) = db
            .run(move |c| Generation::release_lease(c, id, &claim).map_err(anyhow::Error::from))
            .await
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not release the lease; it expires by itself"
            );
        }
    }

    /// Gives up every lease this worker still holds (at shutdown), on
    /// generations and on their parts.
    pub async fn release_all(&self, db: &Db) {
        let worker = self.worker.clone();
        match db
            .run(move |c| {
                let generations = Generation::release_leases_of(c, &worker)?;
                let parts = GenerationPart::release_all_of(c, &worker)?;
                Ok::<_, anyhow::Error>(generations + parts)
            })
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "released the leases of unfinished jobs"),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not release the leases; they expire by themselves"
                )
            }
        }
    }
}
