-- Addresses are unique whatever their case, an address's mailbox exists from
-- the moment its inbox row does (whoever writes the row), and each owner of
-- an address sees only the mail that reached it while it was theirs (see the
-- PostgreSQL migration of the same name). The column's NOCASE collation
-- already made addresses unique in ASCII case, which is all lower() folds
-- here, so the index below cannot meet a conflict the collation allowed.
CREATE UNIQUE INDEX inbox_address_unique ON inbox (lower(email_address));

-- Mail that reached an owned address before its inbox row was written.
INSERT OR IGNORE INTO mailbox_state (owner, name)
SELECT DISTINCT i.user_id, 'INBOX' FROM inbox i
JOIN emails e ON e.mailbox_owner = lower(i.email_address) AND e.mailbox = 'INBOX' AND e.inbox_owner IS NULL
WHERE i.user_id IS NOT NULL;

UPDATE emails SET inbox_owner = o.viewer, inbox_uid = o.first + o.rank - 1
FROM (
    SELECT e.id, i.user_id AS viewer,
           row_number() OVER (PARTITION BY i.user_id ORDER BY e.mailbox_owner, e.uid) AS rank,
           (SELECT uidnext FROM mailbox_state WHERE owner = i.user_id AND name = 'INBOX') AS first
    FROM emails e JOIN inbox i ON e.mailbox_owner = lower(i.email_address)
    WHERE e.mailbox = 'INBOX' AND e.inbox_owner IS NULL AND i.user_id IS NOT NULL
) AS o
WHERE emails.id = o.id;

UPDATE mailbox_state SET
    uidnext = (SELECT max(inbox_uid) + 1 FROM emails WHERE inbox_owner = mailbox_state.owner),
    highestmodseq = highestmodseq + 1
WHERE name = 'INBOX'
  AND uidnext <= (SELECT max(inbox_uid) FROM emails WHERE inbox_owner = mailbox_state.owner);

-- Every address row has its counters, live.
INSERT OR IGNORE INTO mailbox_state (owner, name) SELECT lower(email_address), 'INBOX' FROM inbox;
UPDATE mailbox_state SET deleted = 0
WHERE deleted AND name = 'INBOX' AND owner IN (SELECT lower(email_address) FROM inbox);

-- Keeps an address's mailbox in step with its inbox row, for every writer
-- (the PostgreSQL function imap_address_changed, written out per event since
-- SQLite triggers cannot share a body). SQLite has one writer at a time, so
-- no lock order is needed.
CREATE TRIGGER inbox_address_released AFTER DELETE ON inbox
BEGIN
    UPDATE mailbox_state SET deleted = 1, uidvalidity = uidvalidity + 1
    WHERE owner = lower(OLD.email_address) AND name = 'INBOX';
END;

CREATE TRIGGER inbox_address_claimed AFTER INSERT ON inbox
BEGIN
    INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES (lower(NEW.email_address), 'INBOX');
    UPDATE mailbox_state SET deleted = 0 WHERE owner = lower(NEW.email_address) AND name = 'INBOX';
    INSERT OR IGNORE INTO mailbox_state (owner, name) SELECT NEW.user_id, 'INBOX' WHERE NEW.user_id IS NOT NULL;
    UPDATE emails SET inbox_owner = NEW.user_id, inbox_uid = n.first + n.rank - 1
    FROM (SELECT id, row_number() OVER (ORDER BY uid) AS rank,
                 (SELECT uidnext FROM mailbox_state WHERE owner = NEW.user_id AND name = 'INBOX') AS first
          FROM emails
          WHERE mailbox_owner = lower(NEW.email_address) AND mailbox = 'INBOX' AND inbox_owner IS NULL) AS n
    WHERE emails.id = n.id AND NEW.user_id IS NOT NULL;
    UPDATE mailbox_state SET
        uidnext = (SELECT max(inbox_uid) + 1 FROM emails WHERE inbox_owner = NEW.user_id),
        highestmodseq = highestmodseq + 1
    WHERE owner = NEW.user_id AND name = 'INBOX'
      AND uidnext <= (SELECT max(inbox_uid) FROM emails WHERE inbox_owner = NEW.user_id);
END;

CREATE TRIGGER inbox_address_moved AFTER UPDATE OF email_address, user_id ON inbox
WHEN lower(OLD.email_address) <> lower(NEW.email_address) OR OLD.user_id IS NOT NEW.user_id
BEGIN
    UPDATE mailbox_state SET deleted = 1, uidvalidity = uidvalidity + 1
    WHERE owner = lower(OLD.email_address) AND name = 'INBOX';
    INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES (lower(NEW.email_address), 'INBOX');
    UPDATE mailbox_state SET deleted = 0 WHERE owner = lower(NEW.email_address) AND name = 'INBOX';
    INSERT OR IGNORE INTO mailbox_state (owner, name) SELECT NEW.user_id, 'INBOX' WHERE NEW.user_id IS NOT NULL;
    UPDATE emails SET inbox_owner = NEW.user_id, inbox_uid = n.first + n.rank - 1
    FROM (SELECT id, row_number() OVER (ORDER BY uid) AS rank,
                 (SELECT uidnext FROM mailbox_state WHERE owner = NEW.user_id AND name = 'INBOX') AS first
          FROM emails
          WHERE mailbox_owner = lower(NEW.email_address) AND mailbox = 'INBOX' AND inbox_owner IS NULL) AS n
    WHERE emails.id = n.id AND NEW.user_id IS NOT NULL;
    UPDATE mailbox_state SET
        uidnext = (SELECT max(inbox_uid) + 1 FROM emails WHERE inbox_owner = NEW.user_id),
        highestmodseq = highestmodseq + 1
    WHERE owner = NEW.user_id AND name = 'INBOX'
      AND uidnext <= (SELECT max(inbox_uid) FROM emails WHERE inbox_owner = NEW.user_id);
END;

-- Messages built from the columns now end with a line break, and a body
-- that names another sender than from_addr is no longer served as the whole
-- message: sizes and structures cached for rows without raw bytes are
-- computed again at their next FETCH.
UPDATE emails SET imap_size = NULL, envelope = NULL, bodystructure = NULL, body_basic = NULL
WHERE raw IS NULL;
