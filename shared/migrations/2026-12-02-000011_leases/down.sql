DROP TABLE job_queue_progress;
DROP INDEX generations_processing_created;
ALTER TABLE generations
    DROP COLUMN redriven_at,
    DROP COLUMN redrives,
    DROP COLUMN lease_until,
    DROP COLUMN claimed_by;
