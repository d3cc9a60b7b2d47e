-- When a closed ticket's personal data was purged (retention), if it was.
ALTER TABLE tickets ADD COLUMN purged_at INTEGER;
CREATE INDEX tickets_retention ON tickets (updated_at) WHERE purged_at IS NULL;
