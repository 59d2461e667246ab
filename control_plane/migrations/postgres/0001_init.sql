-- callagent control plane, initial schema (PostgreSQL >= 13; plain SQL, no extensions: runs on Supabase).
-- Personal data is sealed by the application (AES-256-GCM, columns ending in _enc) and looked up
-- through keyed hashes (columns ending in _hash). Times are timestamptz, UTC.

CREATE TABLE organisations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name        text NOT NULL,
    prefix      text NOT NULL UNIQUE,          -- first characters of the key, to find the row
    key_hash    text NOT NULL,                 -- sha256 of the whole key; the key is never stored
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

CREATE TABLE phone_numbers (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    number        text NOT NULL UNIQUE,        -- the organisation's own E.164 number (not personal data)
    agent_config  jsonb NOT NULL,              -- how inbound calls to it are answered
    created_at    timestamptz NOT NULL
);
CREATE INDEX phone_numbers_org ON phone_numbers (org_id);

CREATE TABLE campaigns (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name          text NOT NULL,
    status        text NOT NULL,
    agent_config  jsonb NOT NULL DEFAULT '{}'::jsonb,
    from_number   text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX campaigns_org ON campaigns (org_id, created_at);

CREATE TABLE campaign_contacts (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    campaign_id   uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone_enc     text,
    phone_hash    text NOT NULL,
    data_enc      text,
    status        text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    last_call_id  uuid,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (campaign_id, phone_hash)
);
CREATE INDEX campaign_contacts_phone ON campaign_contacts (org_id, phone_hash);

CREATE TABLE calls (
    id                   uuid PRIMARY KEY,
    org_id               uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    direction            text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    to_enc               text,
    to_hash              text NOT NULL,
    from_enc             text,
    from_hash            text NOT NULL,
    status               text NOT NULL,
    status_history       jsonb NOT NULL DEFAULT '[]'::jsonb,
    campaign_id          uuid REFERENCES campaigns (id) ON DELETE SET NULL,
    call_control_id      text UNIQUE,
    call_leg_id          text,
    call_session_id      text,
    agent_config_enc     text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    answered_at          timestamptz,
    ended_at             timestamptz,
    hangup_requested_at  timestamptz,
    hangup_cause         text,
    hangup_source        text,
    sip_hangup_cause     text,
    quality              jsonb,
    summary_enc          text,
    outcome_enc          text,
    recording_id         text,
    recording_url_enc    text,
    cost_amount          numeric,
    cost_currency        text,
    amd_result           text,
    stream_state         text,
    error                jsonb,
    erased_at            timestamptz
);
CREATE INDEX calls_org_created ON calls (org_id, created_at DESC, id DESC);
CREATE INDEX calls_org_status ON calls (org_id, status, created_at DESC, id DESC);
CREATE INDEX calls_org_campaign ON calls (org_id, campaign_id, created_at DESC, id DESC) WHERE campaign_id IS NOT NULL;
CREATE INDEX calls_to_hash ON calls (org_id, to_hash);
CREATE INDEX calls_from_hash ON calls (org_id, from_hash);

CREATE TABLE turns (
    call_id          uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx              integer NOT NULL,
    org_id           uuid NOT NULL,
    caller_text_enc  text,
    agent_text_enc   text,
    interrupted      boolean NOT NULL DEFAULT false,
    latency          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (call_id, idx)
);

CREATE TABLE call_events (
    event_id         text PRIMARY KEY,        -- Telnyx data.id: a redelivery is the same row
    event_type       text NOT NULL,
    occurred_at      timestamptz,
    call_control_id  text,
    org_id           uuid REFERENCES organisations (id) ON DELETE CASCADE,
    call_id          uuid REFERENCES calls (id) ON DELETE SET NULL,
    payload_enc      text NOT NULL,           -- the event's payload (JSON), sealed: it carries phone numbers
    from_hash        text,
    to_hash          text,
    received_at      timestamptz NOT NULL,
    claimed_at       timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    processed_at     timestamptz
);
CREATE INDEX call_events_pending ON call_events (received_at) WHERE processed_at IS NULL;
CREATE INDEX call_events_call ON call_events (call_id, occurred_at);
CREATE INDEX call_events_control_id ON call_events (call_control_id);
CREATE INDEX call_events_from_hash ON call_events (from_hash);
CREATE INDEX call_events_to_hash ON call_events (to_hash);

CREATE TABLE dnc_entries (
    org_id      uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    phone_hash  text NOT NULL,
    reason      text,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, phone_hash)
);

CREATE TABLE erasures (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    phone_hash  text NOT NULL,
    counts      jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX erasures_org ON erasures (org_id, created_at);
