-- Outbound campaigns (issue 6): the dialer's configuration per campaign, and the columns that make
-- campaign_contacts the dialer's queue (claims with a lease, attempts, retry times, outcomes).
-- campaigns itself is left as 0001 made it: its status column is the campaign's state.

CREATE TABLE campaign_dialer (
    campaign_id      uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    org_id           uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    config           jsonb NOT NULL,              -- pacing, window, retries, caller numbers, voicemail, rates
    next_from_index  integer NOT NULL DEFAULT 0,  -- caller-ID round robin
    next_seq         bigint NOT NULL DEFAULT 0,   -- upload order of the contacts
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX campaign_dialer_org ON campaign_dialer (org_id);

ALTER TABLE campaign_contacts
    ADD COLUMN seq              bigint NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at  timestamptz,           -- due from then (upload, retry backoff, window opening)
    ADD COLUMN claim_token      uuid,                  -- the worker holding the row (fencing token)
    ADD COLUMN claimed_by       text,
    ADD COLUMN lease_until      timestamptz,           -- claim expires: another worker may take the row
    ADD COLUMN dial_started_at  timestamptz,           -- first send of this attempt's dial (command_id window)
    ADD COLUMN outcome          text,                  -- human, voicemail, machine, busy, no_answer, failed, ...
    ADD COLUMN success          boolean,
    ADD COLUMN cost             numeric NOT NULL DEFAULT 0,
    ADD COLUMN last_error       text,
    ADD COLUMN finished_at      timestamptz;

CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, next_attempt_at, seq)
    WHERE status IN ('pending', 'retry_scheduled', 'outside_window');
CREATE INDEX campaign_contacts_active ON campaign_contacts (campaign_id, lease_until)
    WHERE status IN ('claimed', 'dialing', 'in_progress');
CREATE INDEX campaign_contacts_status ON campaign_contacts (campaign_id, status);
CREATE INDEX campaign_contacts_call ON campaign_contacts (last_call_id) WHERE last_call_id IS NOT NULL;
CREATE INDEX campaign_contacts_unscored ON campaign_contacts (campaign_id)
    WHERE status = 'completed' AND success IS NULL;

-- Live calls: the per-campaign concurrency cap and the per-caller-number cap count these.
CREATE INDEX calls_campaign_live ON calls (campaign_id)
    WHERE campaign_id IS NOT NULL AND status IN ('queued', 'initiated', 'answered');
CREATE INDEX calls_from_live ON calls (org_id, from_hash) WHERE status IN ('queued', 'initiated', 'answered');
