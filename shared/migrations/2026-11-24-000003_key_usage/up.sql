-- Per-key usage this period (GET /v1/keys, a key's credit limit) reads the
-- ledger by key and time.
CREATE INDEX usage_events_key_time ON usage_events (api_key_id, created_at);
