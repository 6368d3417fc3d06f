-- Issue 6: credits, plans, usage analytics, idempotency and rate limits.

-- DELETE /v1/generations/{id} (data retention): the audio, alignment and
-- text go, the row stays for accounting (credits, characters, timestamps).
ALTER TABLE generations ADD COLUMN deleted_at TIMESTAMPTZ;

-- Generations in flight per workspace (the plan's concurrency limit) and in
-- the whole system (the overload guard) are counted on this small index.
CREATE INDEX generations_processing ON generations (workspace_id) WHERE status = 'processing';

-- Idempotency-Key on POST /v1/generations, /v1/keys and /v1/webhooks. The
-- primary key is what makes a race resolve to one effect: the first request
-- inserts the claim, every other one finds it. `owner` identifies the request
-- holding an unfinished claim; a claim without a response older than a
-- minute is abandoned (a crash) and may be taken over. The response is kept
-- for 24 h; expired rows are deleted lazily.
CREATE TABLE idempotency_keys (
    workspace_id     UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    idempotency_key  TEXT NOT NULL,
    -- SHA-256 of method, path and the canonical JSON body.
    request_hash     BYTEA NOT NULL,
    route            TEXT NOT NULL,
    owner            UUID NOT NULL,
    response_status  SMALLINT,
    response_headers JSONB,
    response_body    BYTEA,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at     TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
