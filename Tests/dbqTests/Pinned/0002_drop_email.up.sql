ALTER TABLE accounts DROP COLUMN email;
CREATE INDEX accounts_id ON accounts (id);
