-- The PostgreSQL schema: the same tables as the SQLite migrations 0001..0006, in one step.
-- Times are Unix milliseconds (BIGINT), ids and documents are text, as in SQLite, so both stores
-- share their row mapping and an installation moves between them without conversion.

CREATE TABLE tickets (
    id          TEXT PRIMARY KEY,
    origin      TEXT NOT NULL,
    external_id TEXT,
    status      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    urgency     TEXT NOT NULL,
    draft       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    caller_hash TEXT,
    purged_at   BIGINT
);
CREATE INDEX tickets_origin_created ON tickets (origin, created_at);
CREATE INDEX tickets_retention ON tickets (updated_at) WHERE purged_at IS NULL;
CREATE INDEX tickets_status ON tickets (status);
CREATE INDEX tickets_caller ON tickets (caller_hash, created_at);

CREATE TABLE ticket_numbers (
    system    TEXT NOT NULL,
    number    TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (system, number)
);
CREATE INDEX ticket_numbers_ticket ON ticket_numbers (ticket_id);
CREATE INDEX ticket_numbers_number ON ticket_numbers (number);

CREATE TABLE events (
    id        TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    kind      TEXT NOT NULL,
    source    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX events_ticket ON events (ticket_id, at);

CREATE TABLE inbound_keys (
    source    TEXT NOT NULL,
    key       TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (source, key)
);

CREATE TABLE deliveries (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    event_id    TEXT NOT NULL REFERENCES events (id),
    partner     TEXT NOT NULL,
    message_id  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    round_base  BIGINT NOT NULL DEFAULT 0,
    due_at      BIGINT NOT NULL,
    lease_token TEXT,
    partner_ref TEXT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    acked_at    BIGINT
);
CREATE INDEX deliveries_due ON deliveries (partner, due_at)
    WHERE status IN ('pending', 'retrying', 'sending', 'awaiting_ack');
CREATE INDEX deliveries_order ON deliveries (ticket_id, partner, seq);
CREATE INDEX deliveries_status ON deliveries (status, partner);
CREATE INDEX deliveries_created ON deliveries (created_at);

CREATE TABLE attempts (
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id),
    number       BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    http_status  BIGINT,
    partner_code TEXT,
    error        TEXT,
    partner_ref  TEXT,
    PRIMARY KEY (delivery_id, number)
);

CREATE TABLE partner_cursors (
    partner    TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE refused_events (
    id        TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    source    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    status    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX refused_events_ticket ON refused_events (ticket_id, at);

CREATE TABLE sla_clocks (
    id            TEXT PRIMARY KEY,
    ticket_id     TEXT NOT NULL REFERENCES tickets (id),
    kind          TEXT NOT NULL,
    party         TEXT NOT NULL,
    urgent        BOOLEAN NOT NULL,
    started_at    BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    urge_at       BIGINT NOT NULL,
    provisional   BOOLEAN NOT NULL,
    extended_days BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL,
    stopped_at    BIGINT,
    urged_at      BIGINT,
    overdue_at    BIGINT
);
CREATE INDEX sla_clocks_ticket ON sla_clocks (ticket_id);
CREATE INDEX sla_clocks_to_urge ON sla_clocks (urge_at) WHERE state = 'running' AND urged_at IS NULL;
CREATE INDEX sla_clocks_to_supervise ON sla_clocks (due_at) WHERE state = 'running' AND overdue_at IS NULL;
CREATE INDEX sla_clocks_provisional ON sla_clocks (provisional) WHERE state = 'running' AND provisional;
CREATE INDEX sla_clocks_started ON sla_clocks (started_at);

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    ticket_id       TEXT,
    party           TEXT,
    message         TEXT NOT NULL,
    detail          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT
);
CREATE INDEX alerts_created ON alerts (created_at);

CREATE TABLE transfers (
    id                 TEXT PRIMARY KEY,
    direction          TEXT NOT NULL,
    partner            TEXT NOT NULL,
    call_id            TEXT NOT NULL,
    partner_ref        TEXT,
    state              TEXT NOT NULL,
    requested_at       BIGINT NOT NULL,
    deadline_at        BIGINT,
    fallback_ticket_id TEXT,
    fallback_due       BOOLEAN NOT NULL DEFAULT FALSE,
    notify_pending     BOOLEAN NOT NULL DEFAULT FALSE,
    version            BIGINT NOT NULL,
    doc                TEXT NOT NULL
);
CREATE UNIQUE INDEX transfers_inbound_ref ON transfers (partner, partner_ref) WHERE direction = 'inbound';
CREATE INDEX transfers_requested ON transfers (requested_at);
CREATE INDEX transfers_due ON transfers (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX transfers_work ON transfers (id) WHERE fallback_due OR notify_pending;

CREATE TABLE transfer_entries (
    seq         BIGSERIAL PRIMARY KEY,
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    source      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    key         TEXT
);
CREATE INDEX transfer_entries_of ON transfer_entries (transfer_id, seq);
CREATE UNIQUE INDEX transfer_entries_key ON transfer_entries (transfer_id, key) WHERE key IS NOT NULL;

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT,
    reason    TEXT,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE FUNCTION audit_log_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries cannot be changed or deleted';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_frozen();

CREATE TABLE partner_pauses (
    partner TEXT PRIMARY KEY,
    since   BIGINT NOT NULL,
    by      TEXT NOT NULL,
    reason  TEXT NOT NULL
);

-- Scheduled jobs (SLA scans, transfer timers, polling a partner) run on one instance at a time:
-- the one holding the job's lease.
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);

-- Nonces of signed partner requests, remembered past the timestamp window: a replayed request
-- is refused, also after a restart.
CREATE TABLE seen_nonces (
    partner    TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (partner, nonce)
);
CREATE INDEX seen_nonces_expiry ON seen_nonces (expires_at);
