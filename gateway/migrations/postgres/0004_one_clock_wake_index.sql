-- One index says when each running clock next needs the SLA scan, instead of one for urging and
-- one for escalating: a clock's wake is its urge time while it is not urged (its deadline,
-- should that come first), its deadline after; a clock marked overdue has none. Each clock's
-- insert and marks then update one index entry instead of two. Queries name the wake in the
-- same words (postgres.rs, WAKE), or PostgreSQL does not use the index.
DROP INDEX sla_clocks_to_urge;
DROP INDEX sla_clocks_to_supervise;
CREATE INDEX sla_clocks_wake
    ON sla_clocks ((CASE WHEN urged_at IS NULL THEN LEAST(urge_at, due_at) ELSE due_at END))
    WHERE state = 'running' AND overdue_at IS NULL;
