-- Tables keyed by their primary key alone are stored in it (WITHOUT ROWID): each insert updates
-- one B-tree instead of the table and its key's index. A relayed ticket writes a row to each.
CREATE TABLE inbound_keys_new (
    source    TEXT NOT NULL,
    key       TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
INSERT INTO inbound_keys_new SELECT source, key, ticket_id, event_id FROM inbound_keys;
DROP TABLE inbound_keys;
ALTER TABLE inbound_keys_new RENAME TO inbound_keys;

CREATE TABLE ticket_numbers_new (
    system    TEXT NOT NULL,
    number    TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (system, number)
) WITHOUT ROWID;
INSERT INTO ticket_numbers_new SELECT system, number, ticket_id FROM ticket_numbers;
DROP TABLE ticket_numbers;
ALTER TABLE ticket_numbers_new RENAME TO ticket_numbers;
CREATE INDEX ticket_numbers_ticket ON ticket_numbers (ticket_id);
CREATE INDEX ticket_numbers_number ON ticket_numbers (number);

CREATE TABLE attempts_new (
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
INSERT INTO attempts_new SELECT delivery_id, number, started_at, duration_ms, outcome,
    http_status, partner_code, error, partner_ref FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;

CREATE TABLE seen_nonces_new (
    partner    TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (partner, nonce)
) WITHOUT ROWID;
INSERT INTO seen_nonces_new SELECT partner, nonce, expires_at FROM seen_nonces;
DROP TABLE seen_nonces;
ALTER TABLE seen_nonces_new RENAME TO seen_nonces;
CREATE INDEX seen_nonces_expiry ON seen_nonces (expires_at);
