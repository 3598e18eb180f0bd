-- imap-server: the PostgreSQL schema, for operators who manage schemas by hand.
-- Generated from migrations/postgres (tests/schema.rs proves they agree); apply with
--   psql "$DATABASE_URL" -f SQL/schema.sql
-- The server applies the same migrations itself at start-up and with `imap-server migrate`.

-- ---- migrations/postgres/0001_foundation.sql

-- imap-server schema, PostgreSQL.
--
-- The first six tables are the existing deployment's; every statement is
-- idempotent so that a deployment's tables, holding only the original columns,
-- are upgraded in place: tables are created only when missing, our columns are
-- added nullable or defaulted, and no existing row is altered except to fill in
-- the columns this server adds.

CREATE TABLE IF NOT EXISTS users (
    id                    uuid PRIMARY KEY,
    email                 text NOT NULL UNIQUE,
    subscription_status   text,
    subscription_end_date timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS imap_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL,
    token        text NOT NULL UNIQUE,
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS domains (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain            text NOT NULL,
    user_id           uuid,
    active            boolean NOT NULL DEFAULT true,
    cloudflare_domain boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS inbox (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email_address text NOT NULL UNIQUE,
    user_id       uuid,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bans (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    scope      text NOT NULL CHECK (scope IN ('email', 'domain', 'sender')),
    value      text NOT NULL,
    match_type text NOT NULL DEFAULT 'exact' CHECK (match_type IN ('exact', 'contains')),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS emails (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox_owner text NOT NULL,
    mailbox       text NOT NULL DEFAULT 'INBOX',
    subject       text,
    body          text,
    html          text,
    from_addr     text,
    to_addrs      text,
    timestamp     timestamptz NOT NULL DEFAULT now(),
    flags         text[] NOT NULL DEFAULT '{}',
    size          integer,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Columns this server adds to the deployment's tables.
ALTER TABLE emails ADD COLUMN IF NOT EXISTS uid bigint;
ALTER TABLE emails ADD COLUMN IF NOT EXISTS modseq bigint;
ALTER TABLE emails ADD COLUMN IF NOT EXISTS raw bytea;
-- The unified INBOX: the user who sees this message there, and its UID in that view.
ALTER TABLE emails ADD COLUMN IF NOT EXISTS inbox_owner text;
ALTER TABLE emails ADD COLUMN IF NOT EXISTS inbox_uid bigint;
ALTER TABLE users ADD COLUMN IF NOT EXISTS subscription_status text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS subscription_end_date timestamptz;
ALTER TABLE imap_tokens ADD COLUMN IF NOT EXISTS last_used_at timestamptz;

-- One row per mailbox ever used: (address or user id, mailbox name).
-- Rows are never deleted, so that a mailbox created again under the same name
-- gets a larger UIDVALIDITY and UIDs are never reused (RFC 3501 2.3.1.1).
CREATE TABLE IF NOT EXISTS mailbox_state (
    owner         text NOT NULL,
    name          text NOT NULL,
    uidvalidity   bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    uidnext       bigint NOT NULL DEFAULT 1,
    highestmodseq bigint NOT NULL DEFAULT 1,
    -- Messages with a UID at or above this one are \Recent (RFC 3501 2.3.2).
    recent_uid    bigint NOT NULL DEFAULT 1,
    subscribed    boolean NOT NULL DEFAULT true,
    -- A personal folder that was deleted; its row stays to keep UIDVALIDITY rising.
    deleted       boolean NOT NULL DEFAULT false,
    -- On a user's INBOX row: the default folders have been created.
    provisioned   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);

-- Existing mail gets UIDs in arrival order, and each mailbox's counters start past them.
UPDATE emails e SET uid = n.uid
FROM (
    SELECT id, row_number() OVER (PARTITION BY mailbox_owner, mailbox ORDER BY timestamp, created_at, id) AS uid
    FROM emails WHERE uid IS NULL
) n
WHERE e.id = n.id;

UPDATE emails e SET inbox_owner = i.user_id::text
FROM inbox i
WHERE e.inbox_owner IS NULL AND e.mailbox = 'INBOX' AND lower(i.email_address) = lower(e.mailbox_owner)
  AND i.user_id IS NOT NULL;

UPDATE emails e SET inbox_uid = n.inbox_uid
FROM (
    SELECT id, row_number() OVER (PARTITION BY inbox_owner ORDER BY timestamp, created_at, id) AS inbox_uid
    FROM emails WHERE inbox_owner IS NOT NULL AND inbox_uid IS NULL
) n
WHERE e.id = n.id;

UPDATE emails SET modseq = 1 WHERE modseq IS NULL;

INSERT INTO mailbox_state (owner, name, uidnext, highestmodseq)
SELECT mailbox_owner, mailbox, max(uid) + 1, 1 FROM emails
WHERE mailbox_owner IS NOT NULL AND mailbox IS NOT NULL
GROUP BY mailbox_owner, mailbox
ON CONFLICT (owner, name) DO NOTHING;

INSERT INTO mailbox_state (owner, name, uidnext, highestmodseq)
SELECT inbox_owner, 'INBOX', max(inbox_uid) + 1, 1 FROM emails WHERE inbox_owner IS NOT NULL GROUP BY inbox_owner
ON CONFLICT (owner, name) DO UPDATE SET uidnext = greatest(mailbox_state.uidnext, excluded.uidnext);

-- Every lookup the server makes has an index.
CREATE UNIQUE INDEX IF NOT EXISTS emails_mailbox_uid ON emails (mailbox_owner, mailbox, uid);
CREATE UNIQUE INDEX IF NOT EXISTS emails_inbox_uid ON emails (inbox_owner, inbox_uid) WHERE inbox_owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS imap_tokens_user ON imap_tokens (user_id);
CREATE INDEX IF NOT EXISTS inbox_user ON inbox (user_id);
CREATE INDEX IF NOT EXISTS inbox_address_lower ON inbox (lower(email_address));
CREATE INDEX IF NOT EXISTS users_email_lower ON users (lower(email));
CREATE INDEX IF NOT EXISTS domains_domain_lower ON domains (lower(domain));

-- Assigns UIDs to every new row, including rows from writers that know nothing
-- of IMAP. The upsert's row lock on mailbox_state serialises concurrent inserts
-- into one mailbox until commit, so UIDs become visible in ascending order.
-- Locks are always taken in the same order (the mailbox, then its user's
-- unified INBOX), so concurrent deliveries cannot deadlock.
CREATE OR REPLACE FUNCTION imap_assign_uid() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    viewer text;
BEGIN
    NEW.mailbox := coalesce(NEW.mailbox, 'INBOX');
    IF position('@' IN NEW.mailbox_owner) > 0 THEN
        NEW.mailbox_owner := lower(NEW.mailbox_owner);
    END IF;
    IF NEW.uid IS NULL THEN
        INSERT INTO mailbox_state AS s (owner, name, uidnext, highestmodseq)
        VALUES (NEW.mailbox_owner, NEW.mailbox, 2, 2)
        ON CONFLICT (owner, name) DO UPDATE
            SET uidnext = s.uidnext + 1, highestmodseq = s.highestmodseq + 1
        RETURNING s.uidnext - 1, s.highestmodseq INTO NEW.uid, NEW.modseq;
    END IF;
    IF NEW.mailbox = 'INBOX' AND NEW.inbox_uid IS NULL THEN
        IF position('@' IN NEW.mailbox_owner) > 0 THEN
            SELECT i.user_id::text INTO viewer FROM inbox i
            WHERE lower(i.email_address) = NEW.mailbox_owner;
            IF viewer IS NOT NULL THEN
                INSERT INTO mailbox_state AS s (owner, name, uidnext, highestmodseq)
                VALUES (viewer, 'INBOX', 2, 2)
                ON CONFLICT (owner, name) DO UPDATE
                    SET uidnext = s.uidnext + 1, highestmodseq = s.highestmodseq + 1
                RETURNING s.uidnext - 1 INTO NEW.inbox_uid;
                NEW.inbox_owner := viewer;
            END IF;
        ELSE
            -- A user's own INBOX is part of its unified view under the same UID.
            NEW.inbox_owner := NEW.mailbox_owner;
            NEW.inbox_uid := NEW.uid;
        END IF;
    END IF;
    IF NEW.modseq IS NULL THEN
        NEW.modseq := 1;
    END IF;
    -- Delivered at commit; payload is the owner whose sessions should look.
    PERFORM pg_notify('imap_changes', NEW.mailbox_owner);
    IF NEW.inbox_owner IS NOT NULL AND NEW.inbox_owner <> NEW.mailbox_owner THEN
        PERFORM pg_notify('imap_changes', NEW.inbox_owner);
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS emails_assign_uid ON emails;
CREATE TRIGGER emails_assign_uid BEFORE INSERT ON emails
    FOR EACH ROW EXECUTE FUNCTION imap_assign_uid();

-- ---- migrations/postgres/0002_message_cache.sql

-- Parse results kept so that FETCH does not parse a message every time, and
-- opening a mailbox never does: the size of the bytes a client sees, and the
-- ENVELOPE, BODYSTRUCTURE and BODY answers. Filled in on first use; NULL
-- means "not computed yet".
ALTER TABLE emails ADD COLUMN IF NOT EXISTS imap_size bigint;
ALTER TABLE emails ADD COLUMN IF NOT EXISTS envelope text;
ALTER TABLE emails ADD COLUMN IF NOT EXISTS bodystructure text;
ALTER TABLE emails ADD COLUMN IF NOT EXISTS body_basic text;

-- Deletions by anyone (an expiry job of the deployment, say) wake the
-- sessions showing the mailbox, which then report EXPUNGE.
CREATE OR REPLACE FUNCTION imap_notify_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imap_changes', OLD.mailbox_owner);
    IF OLD.inbox_owner IS NOT NULL AND OLD.inbox_owner <> OLD.mailbox_owner THEN
        PERFORM pg_notify('imap_changes', OLD.inbox_owner);
    END IF;
    RETURN OLD;
END;
$$;

DROP TRIGGER IF EXISTS emails_notify_delete ON emails;
CREATE TRIGGER emails_notify_delete AFTER DELETE ON emails
    FOR EACH ROW EXECUTE FUNCTION imap_notify_delete();

-- ---- migrations/postgres/0003_seven_bit_answers.sql

-- ENVELOPE, BODYSTRUCTURE and BODY no longer carry 8-bit bytes: header text
-- that is not ASCII now goes out as RFC 2047 encoded words, because no session
-- has enabled UTF8=ACCEPT (DESIGN §10). Answers cached before that may hold
-- raw 8-bit text; forgetting them makes the next FETCH compute them again.
-- An answer that is all ASCII is the same under both rules, so only rows with
-- a character outside U+0001..U+007F are touched (and running this twice
-- changes nothing).
UPDATE emails SET envelope = NULL, bodystructure = NULL, body_basic = NULL
WHERE envelope ~ '[^\x01-\x7f]'
   OR bodystructure ~ '[^\x01-\x7f]'
   OR body_basic ~ '[^\x01-\x7f]';

-- ---- migrations/postgres/0004_address_incarnations.sql

-- Addresses are unique whatever their case, an address's mailbox exists from
-- the moment its inbox row does (whoever writes the row), and each owner of
-- an address sees only the mail that reached it while it was theirs
-- (docs/ARCHITECTURE.md, "Isolation").

-- A deployment may hold rows that differ only in case. Choosing one would
-- hand one customer's address, and its mail, to another: stop and say which.
DO $$
DECLARE
    conflicts text;
BEGIN
    SELECT string_agg(rows, '; ' ORDER BY rows) INTO conflicts FROM (
        SELECT string_agg(format('%s (user %s)', email_address, coalesce(user_id::text, 'none')),
                          ', ' ORDER BY email_address) AS rows
        FROM inbox GROUP BY lower(email_address) HAVING count(*) > 1
    ) groups;
    IF conflicts IS NOT NULL THEN
        RAISE EXCEPTION 'table inbox holds addresses that differ only in case: %. Keep one row of each group (delete or rename the others), then run imap-server migrate again.', conflicts;
    END IF;
END;
$$;

DROP INDEX IF EXISTS inbox_address_lower;
CREATE UNIQUE INDEX IF NOT EXISTS inbox_address_unique ON inbox (lower(email_address));

-- Mail that reached an owned address before its inbox row was written (the
-- deployment's web app inserting rows itself) joins the owner's unified INBOX.
INSERT INTO mailbox_state (owner, name)
SELECT DISTINCT i.user_id::text, 'INBOX' FROM inbox i
JOIN emails e ON e.mailbox_owner = lower(i.email_address) AND e.mailbox = 'INBOX' AND e.inbox_owner IS NULL
WHERE i.user_id IS NOT NULL
ON CONFLICT (owner, name) DO NOTHING;

UPDATE emails e SET inbox_owner = o.viewer, inbox_uid = s.uidnext + o.rank - 1
FROM (
    SELECT e.id, i.user_id::text AS viewer,
           row_number() OVER (PARTITION BY i.user_id ORDER BY e.mailbox_owner, e.uid) AS rank
    FROM emails e JOIN inbox i ON e.mailbox_owner = lower(i.email_address)
    WHERE e.mailbox = 'INBOX' AND e.inbox_owner IS NULL AND i.user_id IS NOT NULL
) o
JOIN mailbox_state s ON s.owner = o.viewer AND s.name = 'INBOX'
WHERE e.id = o.id;

UPDATE mailbox_state s SET uidnext = m.next, highestmodseq = s.highestmodseq + 1
FROM (SELECT inbox_owner, max(inbox_uid) + 1 AS next FROM emails
      WHERE inbox_owner IS NOT NULL GROUP BY inbox_owner) m
WHERE s.owner = m.inbox_owner AND s.name = 'INBOX' AND s.uidnext < m.next;

-- Every address row has its counters, live.
INSERT INTO mailbox_state AS s (owner, name)
SELECT lower(email_address), 'INBOX' FROM inbox
ON CONFLICT (owner, name) DO UPDATE SET deleted = false WHERE s.deleted;

-- Keeps an address's mailbox in step with its inbox row, for every writer.
-- Releasing (DELETE, or an UPDATE that changes the address or its owner)
-- retires the counters with a larger UIDVALIDITY, so a session still showing
-- the old incarnation finds it gone. Claiming (INSERT, or that UPDATE) brings
-- them back and gives the new owner only the mail nobody was given: mail
-- attributed to an earlier owner stays theirs. The address's counters are
-- locked before its user's, the order the emails trigger uses, so a message
-- arriving meanwhile is either numbered by that trigger for the new owner or
-- adopted here.
CREATE OR REPLACE FUNCTION imap_address_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    address text;
    viewer text;
    first bigint;
    adopted bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND lower(OLD.email_address) = lower(NEW.email_address)
       AND OLD.user_id IS NOT DISTINCT FROM NEW.user_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        address := lower(OLD.email_address);
        UPDATE mailbox_state SET deleted = true, uidvalidity = uidvalidity + 1
        WHERE owner = address AND name = 'INBOX';
        PERFORM pg_notify('imap_changes', address);
        IF OLD.user_id IS NOT NULL THEN
            PERFORM pg_notify('imap_changes', OLD.user_id::text);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        address := lower(NEW.email_address);
        viewer := NEW.user_id::text;
        INSERT INTO mailbox_state AS s (owner, name) VALUES (address, 'INBOX')
        ON CONFLICT (owner, name) DO UPDATE SET deleted = false;
        PERFORM pg_notify('imap_changes', address);
        IF viewer IS NOT NULL THEN
            INSERT INTO mailbox_state AS s (owner, name) VALUES (viewer, 'INBOX')
            ON CONFLICT (owner, name) DO UPDATE SET uidnext = s.uidnext
            RETURNING s.uidnext INTO first;
            UPDATE emails e SET inbox_owner = viewer, inbox_uid = first + n.rank - 1
            FROM (SELECT id, row_number() OVER (ORDER BY uid) AS rank FROM emails
                  WHERE mailbox_owner = address AND mailbox = 'INBOX' AND inbox_owner IS NULL) n
            WHERE e.id = n.id;
            GET DIAGNOSTICS adopted = ROW_COUNT;
            IF adopted > 0 THEN
                UPDATE mailbox_state SET uidnext = uidnext + adopted, highestmodseq = highestmodseq + 1
                WHERE owner = viewer AND name = 'INBOX';
            END IF;
            PERFORM pg_notify('imap_changes', viewer);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS inbox_address_changed ON inbox;
CREATE TRIGGER inbox_address_changed AFTER INSERT OR DELETE OR UPDATE OF email_address, user_id ON inbox
    FOR EACH ROW EXECUTE FUNCTION imap_address_changed();

-- Messages built from the columns now end with a line break, and a body
-- that names another sender than from_addr is no longer served as the whole
-- message: sizes and structures cached for rows without raw bytes are
-- computed again at their next FETCH.
UPDATE emails SET imap_size = NULL, envelope = NULL, bodystructure = NULL, body_basic = NULL
WHERE raw IS NULL;

-- ---- migrations/postgres/0005_search_cache.sql

-- The header section of each message (the bytes up to and including the
-- blank line), kept so that SEARCH on SUBJECT, FROM, TO, CC, BCC, HEADER and
-- the sent dates reads a few hundred bytes per message, not the message.
-- Filled in on the first such SEARCH; NULL means "not computed yet".
ALTER TABLE emails ADD COLUMN IF NOT EXISTS header_block bytea;

-- ---- migrations/postgres/0006_modseq.sql

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
