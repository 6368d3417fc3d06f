-- The delivery log's detail: one row per HTTP attempt of a delivery, written
-- by the dispatcher in the same transaction (and under the same lease) that
-- records the attempt's outcome on webhook_deliveries, so the log and the
-- delivery never disagree.
CREATE TABLE webhook_attempts (
    id             UUID PRIMARY KEY,
    delivery_id    UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    workspace_id   UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- 1 for the first attempt; a manual retry continues the count.
    attempt        INTEGER NOT NULL CHECK (attempt >= 1),
    status_code    INTEGER,
    error          TEXT,
    -- The first 1 KiB of the receiver's answer.
    response_body  TEXT,
    duration_ms    BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (delivery_id, attempt)
);

-- GET /v1/webhooks/{id}/deliveries pages newest first by id (UUIDv7).
CREATE INDEX webhook_deliveries_endpoint_id ON webhook_deliveries (endpoint_id, id DESC);
