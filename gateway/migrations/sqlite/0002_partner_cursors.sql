-- Where polling of each polled partner's outbox resumes.
CREATE TABLE partner_cursors (
    partner    TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
