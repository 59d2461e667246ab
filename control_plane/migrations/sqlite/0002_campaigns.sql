-- Outbound campaigns (issue 6): same tables and columns as ../postgres/0002_campaigns.sql
-- (uuids text, times ISO-8601 UTC text, JSON text, booleans 0/1, the cost a decimal string).

CREATE TABLE campaign_dialer (
    campaign_id      TEXT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    org_id           TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    config           TEXT NOT NULL,
    next_from_index  INTEGER NOT NULL DEFAULT 0,
    next_seq         INTEGER NOT NULL DEFAULT 0,
    started_at       TEXT,
    finished_at      TEXT
);
CREATE INDEX campaign_dialer_org ON campaign_dialer (org_id);

ALTER TABLE campaign_contacts ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaign_contacts ADD COLUMN next_attempt_at TEXT;
ALTER TABLE campaign_contacts ADD COLUMN claim_token TEXT;
ALTER TABLE campaign_contacts ADD COLUMN claimed_by TEXT;
ALTER TABLE campaign_contacts ADD COLUMN lease_until TEXT;
ALTER TABLE campaign_contacts ADD COLUMN dial_started_at TEXT;
ALTER TABLE campaign_contacts ADD COLUMN outcome TEXT;
ALTER TABLE campaign_contacts ADD COLUMN success INTEGER;
ALTER TABLE campaign_contacts ADD COLUMN cost TEXT NOT NULL DEFAULT '0';
ALTER TABLE campaign_contacts ADD COLUMN last_error TEXT;
ALTER TABLE campaign_contacts ADD COLUMN finished_at TEXT;

CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, next_attempt_at, seq)
    WHERE status IN ('pending', 'retry_scheduled', 'outside_window');
CREATE INDEX campaign_contacts_active ON campaign_contacts (campaign_id, lease_until)
    WHERE status IN ('claimed', 'dialing', 'in_progress');
CREATE INDEX campaign_contacts_status ON campaign_contacts (campaign_id, status);
CREATE INDEX campaign_contacts_call ON campaign_contacts (last_call_id) WHERE last_call_id IS NOT NULL;
CREATE INDEX campaign_contacts_unscored ON campaign_contacts (campaign_id)
    WHERE status = 'completed' AND success IS NULL;

CREATE INDEX calls_campaign_live ON calls (campaign_id)
    WHERE campaign_id IS NOT NULL AND status IN ('queued', 'initiated', 'answered');
CREATE INDEX calls_from_live ON calls (org_id, from_hash) WHERE status IN ('queued', 'initiated', 'answered');
