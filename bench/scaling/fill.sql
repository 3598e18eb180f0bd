-- The population of docs/SCALING.md: :users users (active, one token each,
-- tok-<n>), :addresses disposable addresses spread over them, and
-- :messages messages spread over the addresses, all written as the
-- deployment's receiver writes them (plain INSERT; the triggers number
-- them). Run by bench/scaling/run.sh; psql variables set there.
\set ON_ERROR_STOP 1
\timing on

INSERT INTO domains (domain, active, cloudflare_domain) VALUES ('bench.test', true, true);

INSERT INTO users (id, email, subscription_status)
SELECT md5('u' || g)::uuid, 'u' || g || '@bench.test', 'active'
FROM generate_series(1, :users) g;

INSERT INTO imap_tokens (user_id, token)
SELECT md5('u' || g)::uuid, 'tok-' || g FROM generate_series(1, :users) g;

-- Address a belongs to user 1 + (a - 1) % users; the inbox trigger makes
-- the address's counters and its owner's unified INBOX.
\echo addresses
INSERT INTO inbox (email_address, user_id)
SELECT 'box' || a || '@bench.test', md5('u' || (1 + (a - 1) % :users))::uuid
FROM generate_series(1, :addresses) a;

-- In batches of 100,000, one transaction each, so the time per batch shows
-- whether the per-row cost grows with the table.
\echo messages (per batch of 100,000)
SELECT format(
    'INSERT INTO emails (mailbox_owner, subject, from_addr, to_addrs, body)
     SELECT ''box'' || (1 + (g::bigint * 7919) %% %s) || ''@bench.test'', ''Message '' || g,
            ''sender'' || (g %% 1000) || ''@example.org'', ''box'' || (1 + (g::bigint * 7919) %% %s) || ''@bench.test'',
            repeat(''Lorem ipsum dolor sit amet. '', 20)
     FROM generate_series(%s, %s) g',
    :addresses, :addresses, b * 100000 + 1, least((b + 1) * 100000, :messages))
FROM generate_series(0, (:messages - 1) / 100000) b
\gexec

VACUUM ANALYZE;
