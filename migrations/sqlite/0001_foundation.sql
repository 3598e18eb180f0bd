-- imap-server schema, embedded SQLite.
--
-- The same tables as PostgreSQL: UUIDs are lower-case text (random v4 by
-- default, as gen_random_uuid() is there), timestamps are
-- ISO-8601 text in UTC ('YYYY-MM-DD HH:MM:SS'), booleans 0/1, and flags a
-- space-separated text list.

CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    email                 TEXT NOT NULL UNIQUE COLLATE NOCASE,
    subscription_status   TEXT,
    subscription_end_date TEXT,
    created_at            TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE imap_tokens (
    id           TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    user_id      TEXT NOT NULL,
    token        TEXT NOT NULL UNIQUE,
    expires_at   TEXT,
    last_used_at TEXT,
    created_at   TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX imap_tokens_user ON imap_tokens (user_id);

CREATE TABLE domains (
    id                TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    domain            TEXT NOT NULL,
    user_id           TEXT,
    active            INTEGER NOT NULL DEFAULT 1,
    cloudflare_domain INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX domains_domain ON domains (domain COLLATE NOCASE);

CREATE TABLE inbox (
    id            TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    email_address TEXT NOT NULL UNIQUE COLLATE NOCASE,
    user_id       TEXT,
    created_at    TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX inbox_user ON inbox (user_id);

CREATE TABLE bans (
    id         TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    scope      TEXT NOT NULL CHECK (scope IN ('email', 'domain', 'sender')),
    value      TEXT NOT NULL,
    match_type TEXT NOT NULL DEFAULT 'exact' CHECK (match_type IN ('exact', 'contains')),
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE emails (
    id            TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    mailbox_owner TEXT NOT NULL,
    mailbox       TEXT NOT NULL DEFAULT 'INBOX',
    subject       TEXT,
    body          TEXT,
    html          TEXT,
    from_addr     TEXT,
    to_addrs      TEXT,
    timestamp     TEXT NOT NULL DEFAULT (datetime('now')),
    flags         TEXT NOT NULL DEFAULT '',
    size          INTEGER,
    created_at    TEXT NOT NULL DEFAULT (datetime('now')),
    uid           INTEGER,
    modseq        INTEGER,
    raw           BLOB,
    inbox_owner   TEXT,
    inbox_uid     INTEGER
);
CREATE UNIQUE INDEX emails_mailbox_uid ON emails (mailbox_owner, mailbox, uid);
CREATE UNIQUE INDEX emails_inbox_uid ON emails (inbox_owner, inbox_uid) WHERE inbox_owner IS NOT NULL;

CREATE TABLE mailbox_state (
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    recent_uid    INTEGER NOT NULL DEFAULT 1,
    subscribed    INTEGER NOT NULL DEFAULT 1,
    deleted       INTEGER NOT NULL DEFAULT 0,
    -- On a user's INBOX row: the default folders have been created.
    provisioned   INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (owner, name)
);

-- UIDs for every new row, as the PostgreSQL trigger does. SQLite has a single
-- writer, so the counters need no further locking. Writers are expected to
-- store addresses in lower case (ours do).
CREATE TRIGGER emails_assign_uid AFTER INSERT ON emails WHEN NEW.uid IS NULL
BEGIN
    INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES (NEW.mailbox_owner, NEW.mailbox);
    UPDATE mailbox_state SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
        WHERE owner = NEW.mailbox_owner AND name = NEW.mailbox;
    UPDATE emails SET
        uid = (SELECT uidnext - 1 FROM mailbox_state WHERE owner = NEW.mailbox_owner AND name = NEW.mailbox),
        modseq = (SELECT highestmodseq FROM mailbox_state WHERE owner = NEW.mailbox_owner AND name = NEW.mailbox)
        WHERE rowid = NEW.rowid;

    -- The unified INBOX of the address's owner.
    INSERT OR IGNORE INTO mailbox_state (owner, name)
        SELECT user_id, 'INBOX' FROM inbox
        WHERE email_address = NEW.mailbox_owner AND NEW.mailbox = 'INBOX' AND user_id IS NOT NULL;
    UPDATE mailbox_state SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
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
END;
