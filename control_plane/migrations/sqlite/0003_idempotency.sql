-- Idempotency-Key on POST /api/calls/start: same columns and index as ../postgres/0003_idempotency.sql.
ALTER TABLE calls ADD COLUMN idempotency_key_hash TEXT;
ALTER TABLE calls ADD COLUMN request_fingerprint TEXT;
CREATE UNIQUE INDEX calls_org_idempotency_key ON calls (org_id, idempotency_key_hash)
    WHERE idempotency_key_hash IS NOT NULL;

-- Starts the process died in the middle of (queued, never dialled as far as we know): the
-- sweeper (control_plane/dialsweep.py) looks for them every 30 s, so only they are indexed.
CREATE INDEX calls_unconfirmed_dials ON calls (created_at)
    WHERE status = 'queued' AND call_control_id IS NULL;
