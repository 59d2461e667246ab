-- Event webhooks to the organisation's own app (issue 18): endpoints, the outbox of messages
-- (written in the transaction of the change it reports), one delivery per message and endpoint,
-- and the log of every attempt. Same tables as ../sqlite/0006_webhook_outbox.sql.

CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    org_id                uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    url                   text NOT NULL,
    description           text NOT NULL DEFAULT '',
    event_types           jsonb NOT NULL,             -- the event types it receives
    enabled               boolean NOT NULL DEFAULT true,
    secret_enc            text NOT NULL,              -- whsec_..., sealed
    previous_secret_enc   text,                       -- the secret before the last rotation, sealed
    previous_expires_at   timestamptz,                -- until then both secrets sign
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);

CREATE TABLE webhook_messages (
    id           text PRIMARY KEY,                    -- msg_...: the webhook-id header, stable across retries
    org_id       uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    event_type   text NOT NULL,
    order_key    text NOT NULL,                       -- call or campaign id: delivered in order per key
    payload_enc  text NOT NULL,                       -- the JSON body, sealed (transcripts, numbers)
    created_at   timestamptz NOT NULL
);
CREATE INDEX webhook_messages_org ON webhook_messages (org_id, created_at);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,           -- also the order within (endpoint, order_key)
    message_id       text NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    org_id           uuid NOT NULL,
    order_key        text NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_until      timestamptz,
    give_up_at       timestamptz NOT NULL,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, order_key, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_org ON webhook_deliveries (org_id, created_at);
CREATE INDEX webhook_deliveries_message ON webhook_deliveries (message_id);

CREATE TABLE webhook_attempts (
    id            bigserial PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL,
    status_code   integer,                            -- NULL: no HTTP answer (refused, timeout)
    latency_ms    double precision NOT NULL,
    error         text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
