-- callagent control plane, initial schema (SQLite >= 3.35: RETURNING, row values).
-- Same tables and columns as ../postgres/0001_init.sql: uuids are text, times ISO-8601 UTC text
-- (fixed width, so they sort), JSON is text, booleans 0/1, the cost a decimal string.
-- Personal data is sealed by the application (AES-256-GCM, columns ending in _enc) and looked up
-- through keyed hashes (columns ending in _hash).

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL UNIQUE,          -- first characters of the key, to find the row
    key_hash    TEXT NOT NULL,                 -- sha256 of the whole key; the key is never stored
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

CREATE TABLE phone_numbers (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    number        TEXT NOT NULL UNIQUE,        -- the organisation's own E.164 number (not personal data)
    agent_config  TEXT NOT NULL,              -- how inbound calls to it are answered
    created_at    TEXT NOT NULL
);
CREATE INDEX phone_numbers_org ON phone_numbers (org_id);

CREATE TABLE campaigns (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    agent_config  TEXT NOT NULL DEFAULT '{}',
    from_number   TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX campaigns_org ON campaigns (org_id, created_at);

CREATE TABLE campaign_contacts (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    campaign_id   TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone_enc     TEXT,
    phone_hash    TEXT NOT NULL,
    data_enc      TEXT,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_call_id  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (campaign_id, phone_hash)
);
CREATE INDEX campaign_contacts_phone ON campaign_contacts (org_id, phone_hash);

CREATE TABLE calls (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    direction            TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    to_enc               TEXT,
    to_hash              TEXT NOT NULL,
    from_enc             TEXT,
    from_hash            TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_history       TEXT NOT NULL DEFAULT '[]',
    campaign_id          TEXT REFERENCES campaigns (id) ON DELETE SET NULL,
    call_control_id      TEXT UNIQUE,
    call_leg_id          TEXT,
    call_session_id      TEXT,
    agent_config_enc     TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    answered_at          TEXT,
    ended_at             TEXT,
    hangup_requested_at  TEXT,
    hangup_cause         TEXT,
    hangup_source        TEXT,
    sip_hangup_cause     TEXT,
    quality              TEXT,
    summary_enc          TEXT,
    outcome_enc          TEXT,
    recording_id         TEXT,
    recording_url_enc    TEXT,
    cost_amount          TEXT,
    cost_currency        TEXT,
    amd_result           TEXT,
    stream_state         TEXT,
    error                TEXT,
    erased_at            TEXT
);
CREATE INDEX calls_org_created ON calls (org_id, created_at DESC, id DESC);
CREATE INDEX calls_org_status ON calls (org_id, status, created_at DESC, id DESC);
CREATE INDEX calls_org_campaign ON calls (org_id, campaign_id, created_at DESC, id DESC) WHERE campaign_id IS NOT NULL;
CREATE INDEX calls_to_hash ON calls (org_id, to_hash);
CREATE INDEX calls_from_hash ON calls (org_id, from_hash);

CREATE TABLE turns (
    call_id          TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL,
    org_id           TEXT NOT NULL,
    caller_text_enc  TEXT,
    agent_text_enc   TEXT,
    interrupted      INTEGER NOT NULL DEFAULT 0,
    latency          TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    PRIMARY KEY (call_id, idx)
);

CREATE TABLE call_events (
    event_id         TEXT PRIMARY KEY,        -- Telnyx data.id: a redelivery is the same row
    event_type       TEXT NOT NULL,
    occurred_at      TEXT,
    call_control_id  TEXT,
    org_id           TEXT REFERENCES organisations (id) ON DELETE CASCADE,
    call_id          TEXT REFERENCES calls (id) ON DELETE SET NULL,
    payload_enc      TEXT NOT NULL,           -- the event's payload (JSON), sealed: it carries phone numbers
    from_hash        TEXT,
    to_hash          TEXT,
    received_at      TEXT NOT NULL,
    claimed_at       TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    processed_at     TEXT
);
CREATE INDEX call_events_pending ON call_events (received_at) WHERE processed_at IS NULL;
CREATE INDEX call_events_call ON call_events (call_id, occurred_at);
CREATE INDEX call_events_control_id ON call_events (call_control_id);
CREATE INDEX call_events_from_hash ON call_events (from_hash);
CREATE INDEX call_events_to_hash ON call_events (to_hash);

CREATE TABLE dnc_entries (
    org_id      TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    phone_hash  TEXT NOT NULL,
    reason      TEXT,
    source      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, phone_hash)
);

CREATE TABLE erasures (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    phone_hash  TEXT NOT NULL,
    counts      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX erasures_org ON erasures (org_id, created_at);
