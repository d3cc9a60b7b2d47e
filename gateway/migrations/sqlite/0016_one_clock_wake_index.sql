-- One index says when each running clock next needs the SLA scan, instead of one for urging and
-- one for escalating: a clock's wake is its urge time while it is not urged (its deadline,
-- should that come first), its deadline after; a clock marked overdue has none. Each clock's
-- insert and marks then update one index entry instead of two. Queries name the wake in the
-- same words (sqlite.rs, WAKE), or SQLite does not use the index.
DROP INDEX sla_clocks_to_urge;
DROP INDEX sla_clocks_to_supervise;
CREATE INDEX sla_clocks_wake
    ON sla_clocks ((CASE WHEN urged_at IS NULL THEN min(urge_at, due_at) ELSE due_at END))
    WHERE state = 'running' AND overdue_at IS NULL;

-- A ticket's numbers are stored in the key (ticket, system, number), which lists a ticket's
-- numbers, and one unique index (number, system) keeps a system's number to one ticket and
-- finds a number with or without its system: two B-trees per number instead of three (the
-- key (system, number), an index by ticket and one by number). A relayed ticket stores two.
CREATE TABLE ticket_numbers_new (
    system    TEXT NOT NULL,
    number    TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (ticket_id, system, number)
) WITHOUT ROWID;
INSERT INTO ticket_numbers_new SELECT system, number, ticket_id FROM ticket_numbers;
DROP TABLE ticket_numbers;
ALTER TABLE ticket_numbers_new RENAME TO ticket_numbers;
CREATE UNIQUE INDEX ticket_numbers_number ON ticket_numbers (number, system);
