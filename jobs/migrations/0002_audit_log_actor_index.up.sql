-- Runs statement by statement (CONCURRENTLY cannot run in a transaction); a failed build's
-- INVALID index is dropped by dbq before the retry.
SET lock_timeout = '2s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_actor ON audit_log (actor);
