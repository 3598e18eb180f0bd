-- The header section of each message, kept for SEARCH (see the PostgreSQL
-- migration of the same name).
ALTER TABLE emails ADD COLUMN header_block BLOB;

-- The SQL core looks users and domains up by lower(...), as PostgreSQL does
-- (its indexes are in 0001); these let SQLite use an index for it too.
CREATE INDEX IF NOT EXISTS users_email_lower ON users (lower(email));
CREATE INDEX IF NOT EXISTS domains_domain_lower ON domains (lower(domain));
