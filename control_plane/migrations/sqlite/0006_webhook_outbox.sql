-- Event webhooks to the organisation's own app: same tables as ../postgres/0006_webhook_outbox.sql
-- (uuids text, times ISO-8601 UTC text, JSON text, booleans 0/1).

CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    url                   TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    event_types           TEXT NOT NULL,
    enabled               INTEGER NOT NULL DEFAULT 1,
    secret_enc            TEXT NOT NULL,
    previous_secret_enc   TEXT,
    previous_expires_at   TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);

CREATE TABLE webhook_messages (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    event_type   TEXT NOT NULL,
    order_key    TEXT NOT NULL,
    payload_enc  TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX webhook_messages_org ON webhook_messages (org_id, created_at);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    org_id           TEXT NOT NULL,
    order_key        TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_until      TEXT,
    give_up_at       TEXT NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, order_key, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_org ON webhook_deliveries (org_id, created_at);
CREATE INDEX webhook_deliveries_message ON webhook_deliveries (message_id);

CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  TEXT NOT NULL,
    status_code   INTEGER,
    latency_ms    REAL NOT NULL,
    error         TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
