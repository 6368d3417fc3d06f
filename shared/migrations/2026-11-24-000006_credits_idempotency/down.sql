DROP TABLE idempotency_keys;
DROP INDEX generations_processing;
ALTER TABLE generations DROP COLUMN deleted_at;
