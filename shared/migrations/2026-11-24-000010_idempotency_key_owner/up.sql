-- Issue 15: a stored Idempotency-Key answer belongs to the API key that
-- made it, and never holds a secret.
--
-- `api_key_id` is the key whose request claimed the Idempotency-Key: only
-- that key gets the stored answer again; another key of the workspace gets
-- 409. NULL marks a row from before this migration that could not be bound
-- to its key: no key may replay it (409 until it expires, within 24 h), so
-- no request is repeated and no answer is shown to a key that did not make it.
ALTER TABLE idempotency_keys
    ADD COLUMN api_key_id UUID REFERENCES api_keys (id) ON DELETE CASCADE;

-- A stored 202 of POST /v1/generations names its generation, and the
-- generation its key: those rows keep replaying to the key that made them.
UPDATE idempotency_keys i
SET api_key_id = g.api_key_id
FROM generations g
WHERE i.route = '/v1/generations'
  AND i.response_status = 202
  AND g.workspace_id = i.workspace_id
  AND g.id = uuid(substring(convert_from(i.response_body, 'UTF8') FROM '"id":"gen_([0-9a-f]{32})"'));

-- Everything else can no longer be replayed, so its stored answer goes: this
-- is where POST /v1/keys and /v1/webhooks kept API key and webhook secrets
-- in plaintext (the `secret` of their 201).
UPDATE idempotency_keys
SET response_body = NULL, response_headers = NULL
WHERE api_key_id IS NULL;
