-- The secrets scrubbed by up.sql are gone for good; this only drops the binding.
ALTER TABLE idempotency_keys DROP COLUMN api_key_id;
