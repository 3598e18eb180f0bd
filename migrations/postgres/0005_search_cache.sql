-- The header section of each message (the bytes up to and including the
-- blank line), kept so that SEARCH on SUBJECT, FROM, TO, CC, BCC, HEADER and
-- the sent dates reads a few hundred bytes per message, not the message.
-- Filled in on the first such SEARCH; NULL means "not computed yet".
ALTER TABLE emails ADD COLUMN IF NOT EXISTS header_block bytea;
