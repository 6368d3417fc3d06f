-- Worker leases and the re-drive of lost jobs (docs/architecture.md,
-- "Leases and re-drive").
--
-- claimed_by, lease_until: the worker that renders a `processing`
--   generation and until when its claim holds (renewed while it renders).
-- redrives: how many times the sweeper re-published the job because no
--   queued copy could still reach it; a job message carries the number it
--   was published with, and a worker drops a copy older than the row's.
-- redriven_at: when the last re-drive was published.
ALTER TABLE generations
    ADD COLUMN claimed_by TEXT,
    ADD COLUMN lease_until TIMESTAMPTZ,
    ADD COLUMN redrives INT NOT NULL DEFAULT 0,
    ADD COLUMN redriven_at TIMESTAMPTZ;

-- The sweeper's re-drive and maximum-age passes read processing
-- generations by age (few rows: what is in flight).
CREATE INDEX generations_processing_created ON generations (created_at) WHERE status = 'processing';

-- How far the workers have consumed a jobs queue: the publish time of the
-- newest job a worker has taken from it. A job published before that was
-- delivered (the queue is FIFO), so a processing generation published
-- before it and under no live lease has no copy left that can reach it.
CREATE TABLE job_queue_progress (
    queue TEXT PRIMARY KEY,
    consumed_through TIMESTAMPTZ NOT NULL
);
