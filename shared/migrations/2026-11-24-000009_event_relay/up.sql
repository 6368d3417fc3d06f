-- Finished generations whose event no worker has published yet: what the
-- worker's event relay reads (few rows, usually none).
CREATE INDEX generations_unannounced ON generations (completed_at)
    WHERE event_published_at IS NULL AND status <> 'processing';
