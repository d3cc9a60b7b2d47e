-- SLA clocks: who must do what by when.
CREATE TABLE sla_clocks (
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
);
CREATE INDEX sla_clocks_ticket ON sla_clocks (ticket_id);
CREATE INDEX sla_clocks_to_urge ON sla_clocks (urge_at) WHERE state = 'running' AND urged_at IS NULL;
CREATE INDEX sla_clocks_to_supervise ON sla_clocks (due_at) WHERE state = 'running' AND overdue_at IS NULL;
CREATE INDEX sla_clocks_provisional ON sla_clocks (provisional) WHERE state = 'running' AND provisional = 1;
CREATE INDEX sla_clocks_started ON sla_clocks (started_at);

-- Alerts for ops; `key` makes raising one idempotent.
CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    ticket_id       TEXT,
    party           TEXT,
    message         TEXT NOT NULL,
    detail          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT
);
CREATE INDEX alerts_created ON alerts (created_at);

-- A keyed hash of the caller's phone number, for repeat-caller matching without the number.
ALTER TABLE tickets ADD COLUMN caller_hash TEXT;
CREATE INDEX tickets_caller ON tickets (caller_hash, created_at);
