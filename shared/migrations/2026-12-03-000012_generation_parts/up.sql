-- Long texts rendered in parallel (docs/architecture.md, "Parts"): a long
-- generation's chunks are grouped into parts, and every worker that hears
-- of it may claim a part, render it and store its audio; the worker that
-- holds the generation's lease joins the parts once all are done.
--
-- claimed_by, lease_until: who renders the part and until when that claim
--   holds (renewed while it renders); an expired claim may be taken over.
-- attempts: how many times the part was claimed (a part whose worker died
--   is rendered again; no other part is).
-- done_at: its audio is in the object store.
-- error: the part can never render ({code, message}): the generation fails.
CREATE TABLE generation_parts (
    generation_id UUID NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    part INT NOT NULL,
    claimed_by TEXT,
    lease_until TIMESTAMPTZ,
    attempts INT NOT NULL DEFAULT 0,
    done_at TIMESTAMPTZ,
    error JSONB,
    PRIMARY KEY (generation_id, part)
);
