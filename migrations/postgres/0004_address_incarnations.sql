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
