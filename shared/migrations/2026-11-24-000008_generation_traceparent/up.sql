-- The W3C traceparent of the request that created the generation, so a job
-- the sweeper re-publishes (after a crash before the first publish) stays in
-- the same trace. Not needed for correctness; NULL for older rows.
ALTER TABLE generations ADD COLUMN traceparent TEXT;
