-- Idempotency-Key on POST /api/calls/start: a client that retries a start (a timeout, a
-- dropped connection) gets the call it already placed instead of dialing the person twice.
-- The key is kept as a keyed hash (a client may put a phone number in it), like to_hash.
ALTER TABLE calls ADD COLUMN idempotency_key_hash text;
ALTER TABLE calls ADD COLUMN request_fingerprint text;
CREATE UNIQUE INDEX calls_org_idempotency_key ON calls (org_id, idempotency_key_hash)
    WHERE idempotency_key_hash IS NOT NULL;
