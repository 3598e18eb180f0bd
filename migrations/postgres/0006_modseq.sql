-- Exact mod-sequences (RFC 7162, CONDSTORE and QRESYNC).
--
-- One mod-sequence space per user: every change to any of a user's messages
-- (arrival, flag change, expunge, adoption into the unified INBOX) takes the
-- next value of one counter, the highestmodseq of the user's own INBOX state
-- row. The counter is raised with that row locked until commit, so a user's
-- values are handed out in commit order: a session that has read value n
-- will see every later change with a value above n. Each mailbox's
-- HIGHESTMODSEQ is the highest value among its own messages and expunges
-- (docs/ARCHITECTURE.md, Mod-sequences), so it only moves when that mailbox
-- changes. Mail of an address nobody owns counts on the address's own row.
--
-- Lock order (docs/ARCHITECTURE.md, Storage): an address's or folder's state
-- row, then the user's INBOX row (the counter), then messages.

-- Expunged messages, remembered for QRESYNC's VANISHED (EARLIER): the UID
-- in each view the message was in, and the mod-sequence of its expunge.
-- `viewer` is the user whose mail it was, so that a later owner of an
-- address never hears of its predecessor's expunges.
CREATE TABLE IF NOT EXISTS expunged (
    owner      text NOT NULL,
    name       text NOT NULL,
    uid        bigint NOT NULL,
    viewer     text,
    modseq     bigint NOT NULL,
    expunged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name, uid)
);
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged (owner, name, modseq);
CREATE INDEX IF NOT EXISTS expunged_age ON expunged (expunged_at);

-- The highest mod-sequence of the expunges of this mailbox that were
-- forgotten: a client that knows less than this must resynchronise fully.
ALTER TABLE mailbox_state ADD COLUMN IF NOT EXISTS forgotten_modseq bigint NOT NULL DEFAULT 0;

-- CHANGEDSINCE and a view's refresh read by mod-sequence.
CREATE INDEX IF NOT EXISTS emails_mailbox_modseq ON emails (mailbox_owner, mailbox, modseq);
CREATE INDEX IF NOT EXISTS emails_inbox_modseq ON emails (inbox_owner, modseq) WHERE inbox_owner IS NOT NULL;

-- Each user's counter starts past every value any of their mailboxes used
-- before, so that no mailbox's HIGHESTMODSEQ goes down.
UPDATE mailbox_state u SET highestmodseq = greatest(
    u.highestmodseq,
    (SELECT max(s.highestmodseq) FROM mailbox_state s
     WHERE s.owner = u.owner
        OR s.owner IN (SELECT lower(i.email_address) FROM inbox i WHERE i.user_id::text = u.owner))
) + 1
WHERE u.name = 'INBOX';

-- The next value of the counter of `counter_owner` (a user id, or an
-- address nobody owns).
CREATE OR REPLACE FUNCTION imap_next_modseq(counter_owner text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    taken bigint;
BEGIN
    INSERT INTO mailbox_state AS s (owner, name, highestmodseq) VALUES (counter_owner, 'INBOX', 2)
    ON CONFLICT (owner, name) DO UPDATE SET highestmodseq = s.highestmodseq + 1
    RETURNING s.highestmodseq INTO taken;
    RETURN taken;
END;
$$;

-- Wakes the sessions of a message's mailbox and of the unified INBOX that
-- shows it (delivered at commit; the payload is the owner).
CREATE OR REPLACE FUNCTION imap_notify_owners(mailbox_owner text, inbox_owner text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imap_changes', mailbox_owner);
    IF inbox_owner IS NOT NULL AND inbox_owner <> mailbox_owner THEN
        PERFORM pg_notify('imap_changes', inbox_owner);
    END IF;
END;
$$;

-- Assigns UIDs and the mod-sequence to every new row, including rows from
-- writers that know nothing of IMAP (0001's function, with the counter).
CREATE OR REPLACE FUNCTION imap_assign_uid() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    viewer text;
BEGIN
    NEW.mailbox := coalesce(NEW.mailbox, 'INBOX');
    IF position('@' IN NEW.mailbox_owner) > 0 THEN
        NEW.mailbox_owner := lower(NEW.mailbox_owner);
    END IF;
    IF NEW.uid IS NULL THEN
        INSERT INTO mailbox_state AS s (owner, name, uidnext)
        VALUES (NEW.mailbox_owner, NEW.mailbox, 2)
        ON CONFLICT (owner, name) DO UPDATE SET uidnext = s.uidnext + 1
        RETURNING s.uidnext - 1 INTO NEW.uid;
    END IF;
    IF NEW.mailbox = 'INBOX' AND NEW.inbox_uid IS NULL THEN
        IF position('@' IN NEW.mailbox_owner) > 0 THEN
            SELECT i.user_id::text INTO viewer FROM inbox i
            WHERE lower(i.email_address) = NEW.mailbox_owner;
            IF viewer IS NOT NULL THEN
                INSERT INTO mailbox_state AS s (owner, name, uidnext)
                VALUES (viewer, 'INBOX', 2)
                ON CONFLICT (owner, name) DO UPDATE SET uidnext = s.uidnext + 1
                RETURNING s.uidnext - 1 INTO NEW.inbox_uid;
                NEW.inbox_owner := viewer;
            END IF;
        ELSE
            -- A user's own INBOX is part of its unified view under the same UID.
            NEW.inbox_owner := NEW.mailbox_owner;
            NEW.inbox_uid := NEW.uid;
        END IF;
    END IF;
    NEW.modseq := imap_next_modseq(coalesce(NEW.inbox_owner, NEW.mailbox_owner));
    PERFORM imap_notify_owners(NEW.mailbox_owner, NEW.inbox_owner);
    RETURN NEW;
END;
$$;

-- A change of flags, or a message adopted into a new owner's unified
-- INBOX, takes the next mod-sequence, unless the writer (this server) set
-- one itself. Writers other than this server are heard through NOTIFY.
CREATE OR REPLACE FUNCTION imap_touch_modseq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.modseq IS NOT DISTINCT FROM OLD.modseq
       AND (NEW.flags IS DISTINCT FROM OLD.flags OR NEW.inbox_owner IS DISTINCT FROM OLD.inbox_owner) THEN
        NEW.modseq := imap_next_modseq(coalesce(NEW.inbox_owner, NEW.mailbox_owner));
        PERFORM imap_notify_owners(NEW.mailbox_owner, NEW.inbox_owner);
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS emails_touch_modseq ON emails;
CREATE TRIGGER emails_touch_modseq BEFORE UPDATE OF flags, inbox_owner ON emails
    FOR EACH ROW EXECUTE FUNCTION imap_touch_modseq();

-- Every deletion, by anyone, is remembered in each view the message was in,
-- with one new mod-sequence per user per statement.
CREATE OR REPLACE FUNCTION imap_remember_expunged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH counters AS (
        SELECT c.owner, imap_next_modseq(c.owner) AS modseq
        FROM (SELECT DISTINCT coalesce(inbox_owner, mailbox_owner) AS owner FROM gone) c
    ),
    views AS (
        SELECT g.mailbox_owner AS owner, g.mailbox AS name, g.uid, g.inbox_owner AS viewer,
               coalesce(g.inbox_owner, g.mailbox_owner) AS counter
        FROM gone g WHERE g.uid IS NOT NULL
        UNION ALL
        SELECT g.inbox_owner, 'INBOX', g.inbox_uid, g.inbox_owner, g.inbox_owner
        FROM gone g
        WHERE g.inbox_owner IS NOT NULL AND g.inbox_owner <> g.mailbox_owner AND g.inbox_uid IS NOT NULL
    )
    INSERT INTO expunged AS x (owner, name, uid, viewer, modseq)
    SELECT v.owner, v.name, v.uid, v.viewer, c.modseq FROM views v JOIN counters c ON c.owner = v.counter
    ON CONFLICT (owner, name, uid) DO UPDATE SET viewer = excluded.viewer, modseq = excluded.modseq,
                                                 expunged_at = excluded.expunged_at;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS emails_remember_expunged ON emails;
CREATE TRIGGER emails_remember_expunged AFTER DELETE ON emails
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION imap_remember_expunged();
