-- Cloning onto Kokoro (docs/architecture.md, "Cloning"): a voice cloned
-- onto Kokoro is created `processing`, with this row beside it; the row is
-- the clone's durable job (a worker claims it, whatever became of the
-- broker message that announced it) and, once the voice is finished, the
-- outbox of its `voice.ready` / `voice.failed` event.
--
-- samples_key: the prefix of the uploaded samples in the object store
--   (deleted once the voice is finished, or deleted).
-- claimed_until: a worker searches the voice until then; an expired claim
--   (a worker that died) is taken over.
-- attempts: how many times it was claimed; past worker.clone_max_attempts
--   the voice fails.
-- finished_at: the voice is `ready` or `failed`; the event is still to be
--   published (the row is deleted once it is).
CREATE TABLE voice_clones (
    voice_id TEXT PRIMARY KEY REFERENCES voices (id) ON DELETE CASCADE,
    samples_key TEXT NOT NULL,
    samples INT NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    claimed_until TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX voice_clones_created ON voice_clones (created_at);
