-- An example migration: dbq.yaml says migrations: {main: jobs/migrations}.
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);  -- a table created in this file: no CONCURRENTLY needed
