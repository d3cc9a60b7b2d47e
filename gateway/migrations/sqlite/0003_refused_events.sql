-- Messages refused by the lifecycle (e.g. a reply to a withdrawn ticket), kept for the timeline.
CREATE TABLE refused_events (
    id        TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    source    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    status    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX refused_events_ticket ON refused_events (ticket_id, at);
