DROP TABLE audit_log; -- dbq:allow drop-table
