-- Idempotency-Key on POST /api/calls/start: a client that retries a start (a timeout, a
-- dropped connection) gets the call it already placed instead of dialing the person twice.
-- The key is kept as a keyed hash (a client may put a phone number in it), like to_hash.
ALTER TABLE calls ADD COLUMN idempotency_key_hash text;
ALTER TABLE calls ADD COLUMN request_fingerprint text;
CREATE UNIQUE INDEX calls_org_idempotency_key ON calls (org_id, idempotency_key_hash)
    WHERE idempotency_key_hash IS NOT NULL;

-- Starts the process died in the middle of (queued, never dialled as far as we know): the
-- sweeper (control_plane/dialsweep.py) looks for them every 30 s, so only they are indexed.
CREATE INDEX calls_unconfirmed_dials ON calls (created_at)
    WHERE status = 'queued' AND call_control_id IS NULL;
