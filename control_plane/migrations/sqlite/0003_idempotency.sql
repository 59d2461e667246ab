-- Idempotency-Key on POST /api/calls/start: same columns and index as ../postgres/0003_idempotency.sql.
ALTER TABLE calls ADD COLUMN idempotency_key_hash TEXT;
ALTER TABLE calls ADD COLUMN request_fingerprint TEXT;
CREATE UNIQUE INDEX calls_org_idempotency_key ON calls (org_id, idempotency_key_hash)
    WHERE idempotency_key_hash IS NOT NULL;
