-- Tickets: the canonical draft as JSON, plus the columns we filter and index on.
CREATE TABLE tickets (
    id          TEXT PRIMARY KEY,
    origin      TEXT NOT NULL,
    external_id TEXT,
    status      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    urgency     TEXT NOT NULL,
    draft       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX tickets_origin_created ON tickets (origin, created_at);
CREATE INDEX tickets_status ON tickets (status);

-- Each system's own number for a ticket (工单编号).
CREATE TABLE ticket_numbers (
    system    TEXT NOT NULL,
    number    TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (system, number)
);
CREATE INDEX ticket_numbers_ticket ON ticket_numbers (ticket_id);

-- Every message on a ticket's timeline.
CREATE TABLE events (
    id        TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    kind      TEXT NOT NULL,
    source    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX events_ticket ON events (ticket_id, at);

-- Idempotency: what each source already gave us, and what it became.
CREATE TABLE inbound_keys (
    source    TEXT NOT NULL,
    key       TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (source, key)
);

-- The outbox: one row per (event, target partner).
CREATE TABLE deliveries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    event_id    TEXT NOT NULL REFERENCES events (id),
    partner     TEXT NOT NULL,
    message_id  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    round_base  INTEGER NOT NULL DEFAULT 0,
    due_at      INTEGER NOT NULL,
    lease_token TEXT,
    partner_ref TEXT,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    acked_at    INTEGER
);
CREATE INDEX deliveries_due ON deliveries (partner, due_at)
    WHERE status IN ('pending', 'retrying', 'sending', 'awaiting_ack');
CREATE INDEX deliveries_order ON deliveries (ticket_id, partner, seq);
CREATE INDEX deliveries_status ON deliveries (status, partner);

-- Every delivery attempt.
CREATE TABLE attempts (
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id),
    number       INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    http_status  INTEGER,
    partner_code TEXT,
    error        TEXT,
    partner_ref  TEXT,
    PRIMARY KEY (delivery_id, number)
);
