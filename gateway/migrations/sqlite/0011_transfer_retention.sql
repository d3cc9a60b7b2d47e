-- When an ended transfer's caller data (in the offer) was purged (retention), if it was.
ALTER TABLE transfers ADD COLUMN purged_at INTEGER;
