-- Set while a dispatcher holds a delivery under its lease, cleared when the
-- attempt is recorded: a manual retry can tell "being sent right now" (leave
-- it alone) from "waiting for its next retry" (send it now).
ALTER TABLE webhook_deliveries ADD COLUMN leased_until TIMESTAMPTZ;
