-- What the server's most frequent statements cost at this size, from
-- PostgreSQL's own clock (EXPLAIN ANALYZE), which CPU contention from
-- other work on the machine disturbs less than wall-clock throughput.
-- :user is a user id, :address one of its addresses. Each statement runs
-- three times (the first warms caches and compiles the trigger): take the
-- smallest time.
\set ON_ERROR_STOP 1
\echo == SELECT of the unified INBOX: every UID, sender and flags (View::open, refresh)
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT inbox_uid, from_addr, flags FROM emails WHERE inbox_owner = :'user' AND 'INBOX' = 'INBOX' ORDER BY inbox_uid;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT inbox_uid, from_addr, flags FROM emails WHERE inbox_owner = :'user' AND 'INBOX' = 'INBOX' ORDER BY inbox_uid;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT inbox_uid, from_addr, flags FROM emails WHERE inbox_owner = :'user' AND 'INBOX' = 'INBOX' ORDER BY inbox_uid;
\echo == the same for one address
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT uid, from_addr, flags FROM emails
WHERE mailbox_owner = :'address' AND mailbox = 'INBOX' AND inbox_owner = :'user' ORDER BY uid;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT uid, from_addr, flags FROM emails
WHERE mailbox_owner = :'address' AND mailbox = 'INBOX' AND inbox_owner = :'user' ORDER BY uid;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT uid, from_addr, flags FROM emails
WHERE mailbox_owner = :'address' AND mailbox = 'INBOX' AND inbox_owner = :'user' ORDER BY uid;
\echo == mailbox counters (every command that checks its selection)
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT uidvalidity, uidnext, highestmodseq, recent_uid FROM mailbox_state s
WHERE owner = :'address' AND name = 'INBOX' AND NOT deleted
  AND EXISTS (SELECT 1 FROM inbox i WHERE lower(i.email_address) = s.owner AND i.user_id = :'user'::uuid);
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT uidvalidity, uidnext, highestmodseq, recent_uid FROM mailbox_state s
WHERE owner = :'address' AND name = 'INBOX' AND NOT deleted
  AND EXISTS (SELECT 1 FROM inbox i WHERE lower(i.email_address) = s.owner AND i.user_id = :'user'::uuid);
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT uidvalidity, uidnext, highestmodseq, recent_uid FROM mailbox_state s
WHERE owner = :'address' AND name = 'INBOX' AND NOT deleted
  AND EXISTS (SELECT 1 FROM inbox i WHERE lower(i.email_address) = s.owner AND i.user_id = :'user'::uuid);
\echo == one delivery, triggers included (rolled back)
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
INSERT INTO emails (mailbox_owner, subject, from_addr, to_addrs, body)
VALUES (:'address', 'explain', 'sender@example.org', :'address', repeat('Lorem ipsum dolor sit amet. ', 20));
ROLLBACK;
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
INSERT INTO emails (mailbox_owner, subject, from_addr, to_addrs, body)
VALUES (:'address', 'explain', 'sender@example.org', :'address', repeat('Lorem ipsum dolor sit amet. ', 20));
ROLLBACK;
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
INSERT INTO emails (mailbox_owner, subject, from_addr, to_addrs, body)
VALUES (:'address', 'explain', 'sender@example.org', :'address', repeat('Lorem ipsum dolor sit amet. ', 20));
ROLLBACK;
