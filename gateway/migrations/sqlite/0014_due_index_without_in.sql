-- The partial index of deliveries still to be sent or answered says which they are with
-- comparisons instead of an `IN` list: SQLite evaluates an `IN` list of four through a temporary
-- table built for the purpose, on every insert and update of a delivery row (two per relayed
-- ticket). Queries that want the index name the statuses the same way (sqlite.rs, OPEN).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (partner, due_at)
    WHERE status = 'pending' OR status = 'retrying' OR status = 'sending' OR status = 'awaiting_ack';
