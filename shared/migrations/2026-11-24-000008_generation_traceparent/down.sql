ALTER TABLE generations DROP COLUMN traceparent;
