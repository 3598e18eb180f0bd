-- Parse results kept so that FETCH does not parse a message every time (see
-- the PostgreSQL migration of the same name).
ALTER TABLE emails ADD COLUMN imap_size INTEGER;
ALTER TABLE emails ADD COLUMN envelope TEXT;
ALTER TABLE emails ADD COLUMN bodystructure TEXT;
ALTER TABLE emails ADD COLUMN body_basic TEXT;
