-- The audit log: every operator action and every unmasked view of personal data. Each entry is
-- chained to the one before it by hash, and the product never updates or deletes one.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
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
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit entries cannot be changed'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit entries cannot be deleted'); END;

-- Partners whose deliveries ops paused (maintenance), with who and why.
CREATE TABLE partner_pauses (
    partner TEXT PRIMARY KEY,
    since   INTEGER NOT NULL,
    by      TEXT NOT NULL,
    reason  TEXT NOT NULL
);

-- Finding a ticket by any system's number.
CREATE INDEX ticket_numbers_number ON ticket_numbers (number);
CREATE INDEX deliveries_created ON deliveries (created_at);
