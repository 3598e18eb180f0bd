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
