-- Scheduled jobs (SLA scans, transfer timers, polling a partner) run on one instance at a time:
-- the one holding the job's lease.
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
