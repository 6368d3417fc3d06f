-- The foundation schema of docs/architecture.md. Every table that holds customer
-- data carries workspace_id so that every query can be scoped by it.

CREATE TABLE workspaces (
    id                 UUID PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    plan               TEXT NOT NULL,
    credits_included   BIGINT NOT NULL CHECK (credits_included >= 0),
    credits_used       BIGINT NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    period_start       TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The reservation UPDATE relies on this to never overspend.
    CONSTRAINT credits_within_allowance CHECK (credits_used <= credits_included)
);

CREATE TABLE api_keys (
    id             UUID PRIMARY KEY,
    workspace_id   UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    -- SHA-256 of the whole secret; the secret itself is never stored.
    secret_sha256  BYTEA NOT NULL UNIQUE,
    -- What the console shows: "vp_" and the first characters of the secret.
    prefix         TEXT NOT NULL,
    scopes         TEXT[] NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    last_used_at   TIMESTAMPTZ,
    rotated_from   UUID REFERENCES api_keys (id) ON DELETE SET NULL,
    credit_limit   BIGINT
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at DESC);

CREATE TABLE generations (
    id                  UUID PRIMARY KEY,
    workspace_id        UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    api_key_id          UUID REFERENCES api_keys (id) ON DELETE SET NULL,
    text                TEXT NOT NULL,
    text_type           TEXT NOT NULL DEFAULT 'text',
    voice_id            TEXT NOT NULL,
    format              TEXT NOT NULL,
    sample_rate         INTEGER,
    speed               REAL NOT NULL DEFAULT 1.0,
    status              TEXT NOT NULL CHECK (status IN ('processing', 'completed', 'failed')),
    credits             BIGINT NOT NULL,
    characters          BIGINT NOT NULL,
    duration_ms         BIGINT,
    storage_key         TEXT,
    error               JSONB,
    metadata            JSONB,
    idempotency_key     TEXT,
    request_hash        BYTEA,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set once the broker confirmed the job; the sweeper re-publishes rows
    -- that stay NULL (a crash between commit and publish).
    published_at        TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    -- Set once generation.completed/failed was confirmed by the broker, so a
    -- redelivered job re-emits an event that a crash swallowed.
    event_published_at  TIMESTAMPTZ
);
CREATE INDEX generations_workspace_created ON generations (workspace_id, created_at DESC, id DESC);
CREATE INDEX generations_unpublished ON generations (created_at) WHERE published_at IS NULL AND status = 'processing';
CREATE UNIQUE INDEX generations_idempotency ON generations (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The credit ledger: one row per charge (positive) or refund (negative).
CREATE TABLE usage_events (
    id             UUID PRIMARY KEY,
    workspace_id   UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    api_key_id     UUID REFERENCES api_keys (id) ON DELETE SET NULL,
    generation_id  UUID REFERENCES generations (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    credits        BIGINT NOT NULL,
    characters     BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_workspace_time ON usage_events (workspace_id, created_at);
-- A generation is charged once and refunded at most once.
CREATE UNIQUE INDEX usage_events_once ON usage_events (generation_id, kind) WHERE generation_id IS NOT NULL;

CREATE TABLE voices (
    id             TEXT PRIMARY KEY,
    workspace_id   UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    language       TEXT NOT NULL,
    gender         TEXT,
    description    TEXT,
    status         TEXT NOT NULL DEFAULT 'ready',
    params         JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX voices_workspace ON voices (workspace_id, created_at DESC);

CREATE TABLE webhook_endpoints (
    id                 UUID PRIMARY KEY,
    workspace_id       UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url                TEXT NOT NULL,
    description        TEXT,
    events             TEXT[] NOT NULL,
    secret             TEXT NOT NULL,
    -- After a rotation the old secret keeps signing until this time.
    previous_secret    TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason    TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_success_at    TIMESTAMPTZ,
    failing_since      TIMESTAMPTZ
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, created_at DESC);

CREATE TABLE webhook_deliveries (
    id                 UUID PRIMARY KEY,
    -- The event's id: webhook-id is "msg_" + this, the same on every retry.
    event_id           UUID NOT NULL,
    endpoint_id        UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id       UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event_type         TEXT NOT NULL,
    payload            JSONB NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at    TIMESTAMPTZ,
    last_status_code   INTEGER,
    last_error         TEXT,
    last_response_body TEXT,
    last_duration_ms   BIGINT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);
