-- SLA clocks are stored in their primary key (WITHOUT ROWID), as migration 13 did for other
-- tables: each clock's insert updates one B-tree for the row instead of the table and its key's
-- index. A relayed ticket starts two clocks.
CREATE TABLE sla_clocks_new (
    id            TEXT PRIMARY KEY,
    ticket_id     TEXT NOT NULL REFERENCES tickets (id),
    kind          TEXT NOT NULL,
    party         TEXT NOT NULL,
    urgent        INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    urge_at       INTEGER NOT NULL,
    provisional   INTEGER NOT NULL,
    extended_days INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL,
    stopped_at    INTEGER,
    urged_at      INTEGER,
    overdue_at    INTEGER
) WITHOUT ROWID;
INSERT INTO sla_clocks_new SELECT id, ticket_id, kind, party, urgent, started_at, due_at, urge_at,
    provisional, extended_days, state, stopped_at, urged_at, overdue_at FROM sla_clocks;
DROP TABLE sla_clocks;
ALTER TABLE sla_clocks_new RENAME TO sla_clocks;
CREATE INDEX sla_clocks_ticket ON sla_clocks (ticket_id);
CREATE INDEX sla_clocks_to_urge ON sla_clocks (urge_at) WHERE state = 'running' AND urged_at IS NULL;
CREATE INDEX sla_clocks_to_supervise ON sla_clocks (due_at) WHERE state = 'running' AND overdue_at IS NULL;
CREATE INDEX sla_clocks_provisional ON sla_clocks (provisional) WHERE state = 'running' AND provisional = 1;
CREATE INDEX sla_clocks_started ON sla_clocks (started_at);

-- Deliveries number themselves with a plain rowid instead of AUTOINCREMENT, which reads and
-- writes the `sqlite_sequence` row on every insert. Deliveries are never deleted, so a new
-- row's number is still one more than the highest, as the outbox's order needs. Attempts refer
-- to deliveries: they are set aside while the table is rebuilt, so that no foreign key is ever
-- broken on the way.
CREATE TEMP TABLE attempts_kept AS SELECT * FROM attempts;
DROP TABLE attempts;
CREATE TABLE deliveries_new (
    seq         INTEGER PRIMARY KEY,
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
INSERT INTO deliveries_new SELECT seq, id, ticket_id, event_id, partner, message_id, kind, status,
    attempts, round_base, due_at, lease_token, partner_ref, last_error, created_at, updated_at,
    acked_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_order ON deliveries (ticket_id, partner, seq);
CREATE INDEX deliveries_status ON deliveries (status, partner);
CREATE INDEX deliveries_created ON deliveries (created_at);
CREATE INDEX deliveries_lease ON deliveries (lease_token) WHERE lease_token IS NOT NULL;
CREATE INDEX deliveries_due ON deliveries (partner, due_at)
    WHERE status = 'pending' OR status = 'retrying' OR status = 'sending' OR status = 'awaiting_ack';
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
) WITHOUT ROWID;
INSERT INTO attempts SELECT delivery_id, number, started_at, duration_ms, outcome, http_status,
    partner_code, error, partner_ref FROM attempts_kept;
DROP TABLE attempts_kept;
