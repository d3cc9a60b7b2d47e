-- Three-way call transfers and their logs.
CREATE TABLE transfers (
    id                 TEXT PRIMARY KEY,
    direction          TEXT NOT NULL,
    partner            TEXT NOT NULL,
    call_id            TEXT NOT NULL,
    partner_ref        TEXT,
    state              TEXT NOT NULL,
    requested_at       INTEGER NOT NULL,
    deadline_at        INTEGER,
    fallback_ticket_id TEXT,
    fallback_due       INTEGER NOT NULL DEFAULT 0,
    notify_pending     INTEGER NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL,
    doc                TEXT NOT NULL
);
-- A partner offering the same transfer twice gets the first one.
CREATE UNIQUE INDEX transfers_inbound_ref ON transfers (partner, partner_ref) WHERE direction = 'inbound';
CREATE INDEX transfers_requested ON transfers (requested_at);
CREATE INDEX transfers_due ON transfers (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX transfers_work ON transfers (id) WHERE fallback_due = 1 OR notify_pending = 1;

CREATE TABLE transfer_entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    source      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    key         TEXT
);
CREATE INDEX transfer_entries_of ON transfer_entries (transfer_id, seq);
CREATE UNIQUE INDEX transfer_entries_key ON transfer_entries (transfer_id, key) WHERE key IS NOT NULL;
