-- Legal-aid cases and every update the case system sent, by version.
CREATE TABLE legal_aid_cases (
    case_no    TEXT PRIMARY KEY,
    ticket_id  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    open       BOOLEAN NOT NULL,
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX legal_aid_cases_ticket ON legal_aid_cases (ticket_id);
CREATE INDEX legal_aid_cases_open ON legal_aid_cases (open) WHERE open;

CREATE TABLE legal_aid_updates (
    case_no     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (case_no, version)
);
