-- The UID trigger without its pg_notify calls, to see what NOTIFY adds to a
-- delivery. run.sh saves the original definition first and restores it.
\set ON_ERROR_STOP 1
DO $$
BEGIN
    EXECUTE replace(pg_get_functiondef('imap_assign_uid'::regproc),
                    'PERFORM pg_notify', 'PERFORM 1; -- pg_notify');
END;
$$;
