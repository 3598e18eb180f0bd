-- Exact mod-sequences (RFC 7162): one space per user, the highestmodseq of
-- the user's own INBOX state row, remembered expunges for QRESYNC (see the
-- PostgreSQL migration of the same name). SQLite has one writer at a time,
-- so the counter needs no lock order.

CREATE TABLE expunged (
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    uid         INTEGER NOT NULL,
    viewer      TEXT,
    modseq      INTEGER NOT NULL,
    expunged_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (owner, name, uid)
);
CREATE INDEX expunged_modseq ON expunged (owner, name, modseq);
CREATE INDEX expunged_age ON expunged (expunged_at);

ALTER TABLE mailbox_state ADD COLUMN forgotten_modseq INTEGER NOT NULL DEFAULT 0;

CREATE INDEX emails_mailbox_modseq ON emails (mailbox_owner, mailbox, modseq);
CREATE INDEX emails_inbox_modseq ON emails (inbox_owner, modseq) WHERE inbox_owner IS NOT NULL;

UPDATE mailbox_state SET highestmodseq = 1 + max(
    highestmodseq,
    coalesce((SELECT max(s.highestmodseq) FROM mailbox_state s
              WHERE s.owner = mailbox_state.owner
                 OR s.owner IN (SELECT lower(i.email_address) FROM inbox i WHERE i.user_id = mailbox_state.owner)), 0)
)
WHERE name = 'INBOX';

-- 0001's trigger, with the mod-sequence taken from the user's counter once
-- the row knows whose mail it is. The row's modseq stays NULL until then,
-- which keeps emails_touch_modseq out of the way while the row is numbered.
DROP TRIGGER emails_assign_uid;
CREATE TRIGGER emails_assign_uid AFTER INSERT ON emails WHEN NEW.uid IS NULL
BEGIN
    UPDATE emails SET modseq = NULL WHERE rowid = NEW.rowid;
    INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES (NEW.mailbox_owner, NEW.mailbox);
    UPDATE mailbox_state SET uidnext = uidnext + 1
        WHERE owner = NEW.mailbox_owner AND name = NEW.mailbox;
    UPDATE emails SET
        uid = (SELECT uidnext - 1 FROM mailbox_state WHERE owner = NEW.mailbox_owner AND name = NEW.mailbox)
        WHERE rowid = NEW.rowid;

    -- The unified INBOX of the address's owner.
    INSERT OR IGNORE INTO mailbox_state (owner, name)
        SELECT user_id, 'INBOX' FROM inbox
        WHERE email_address = NEW.mailbox_owner AND NEW.mailbox = 'INBOX' AND user_id IS NOT NULL;
    UPDATE mailbox_state SET uidnext = uidnext + 1
        WHERE NEW.mailbox = 'INBOX' AND name = 'INBOX'
          AND owner = (SELECT user_id FROM inbox WHERE email_address = NEW.mailbox_owner);
    UPDATE emails SET
        inbox_owner = (SELECT user_id FROM inbox WHERE email_address = NEW.mailbox_owner),
        inbox_uid = (SELECT s.uidnext - 1 FROM mailbox_state s JOIN inbox i ON s.owner = i.user_id
                     WHERE s.name = 'INBOX' AND i.email_address = NEW.mailbox_owner)
        WHERE rowid = NEW.rowid AND NEW.mailbox = 'INBOX'
          AND EXISTS (SELECT 1 FROM inbox WHERE email_address = NEW.mailbox_owner AND user_id IS NOT NULL);

    -- A user's own INBOX is part of its unified view under the same UID.
    UPDATE emails SET inbox_owner = mailbox_owner, inbox_uid = uid
        WHERE rowid = NEW.rowid AND NEW.mailbox = 'INBOX' AND instr(NEW.mailbox_owner, '@') = 0;

    -- The mod-sequence, from the counter of whoever's mail this now is.
    INSERT OR IGNORE INTO mailbox_state (owner, name)
        SELECT coalesce(inbox_owner, mailbox_owner), 'INBOX' FROM emails WHERE rowid = NEW.rowid;
    UPDATE mailbox_state SET highestmodseq = highestmodseq + 1
        WHERE name = 'INBOX'
          AND owner = (SELECT coalesce(inbox_owner, mailbox_owner) FROM emails WHERE rowid = NEW.rowid);
    UPDATE emails SET modseq = (
        SELECT s.highestmodseq FROM mailbox_state s
        WHERE s.name = 'INBOX' AND s.owner = coalesce(emails.inbox_owner, emails.mailbox_owner))
        WHERE rowid = NEW.rowid;
END;

-- A change of flags, or adoption into a new owner's unified INBOX, takes
-- the next mod-sequence unless the writer set one itself.
CREATE TRIGGER emails_touch_modseq AFTER UPDATE OF flags, inbox_owner ON emails
WHEN OLD.modseq IS NOT NULL AND NEW.modseq IS OLD.modseq
     AND (NEW.flags IS NOT OLD.flags OR NEW.inbox_owner IS NOT OLD.inbox_owner)
BEGIN
    INSERT OR IGNORE INTO mailbox_state (owner, name)
        VALUES (coalesce(NEW.inbox_owner, NEW.mailbox_owner), 'INBOX');
    UPDATE mailbox_state SET highestmodseq = highestmodseq + 1
        WHERE owner = coalesce(NEW.inbox_owner, NEW.mailbox_owner) AND name = 'INBOX';
    UPDATE emails SET modseq = (
        SELECT highestmodseq FROM mailbox_state
        WHERE owner = coalesce(NEW.inbox_owner, NEW.mailbox_owner) AND name = 'INBOX')
        WHERE rowid = NEW.rowid;
END;

-- Every deletion is remembered in each view the message was in.
CREATE TRIGGER emails_remember_expunged AFTER DELETE ON emails WHEN OLD.uid IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO mailbox_state (owner, name)
        VALUES (coalesce(OLD.inbox_owner, OLD.mailbox_owner), 'INBOX');
    UPDATE mailbox_state SET highestmodseq = highestmodseq + 1
        WHERE owner = coalesce(OLD.inbox_owner, OLD.mailbox_owner) AND name = 'INBOX';
    INSERT OR REPLACE INTO expunged (owner, name, uid, viewer, modseq)
        SELECT OLD.mailbox_owner, OLD.mailbox, OLD.uid, OLD.inbox_owner, highestmodseq
        FROM mailbox_state WHERE owner = coalesce(OLD.inbox_owner, OLD.mailbox_owner) AND name = 'INBOX';
    INSERT OR REPLACE INTO expunged (owner, name, uid, viewer, modseq)
        SELECT OLD.inbox_owner, 'INBOX', OLD.inbox_uid, OLD.inbox_owner, highestmodseq
        FROM mailbox_state WHERE owner = OLD.inbox_owner AND name = 'INBOX'
          AND OLD.inbox_owner <> OLD.mailbox_owner AND OLD.inbox_uid IS NOT NULL;
END;
