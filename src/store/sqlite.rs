//! Embedded SQLite: the zero-setup default. Same tables as PostgreSQL, with
//! UUIDs and timestamps as text and flags as a space-separated list.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::ban_from_row;
use super::postgres::{entries, state_from_row};
use super::*;
use crate::notify::Hub;

/// The columns of `MessageData`, then those of `Content`.
const MESSAGE_COLUMNS: &str =
    "id, {uid}, flags, timestamp, imap_size, envelope, bodystructure, body_basic,
    coalesce(octet_length(raw), 0) + coalesce(octet_length(body), 0) + coalesce(octet_length(html), 0)";
const CONTENT_COLUMNS: &str = ", raw, subject, from_addr, to_addrs, body, html";

/// SQLite has no arrays: UID lists travel as JSON, read with `json_each`.
fn uid_list(uids: &[u32]) -> String {
    let items: Vec<String> = uids.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(","))
}

fn to_u32(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

fn message_from_row(row: &SqliteRow, with_content: bool) -> StoreResult<MessageData> {
    let size: Option<i64> = row.try_get(4)?;
    let flags: String = row.try_get(2)?;
    let content = if with_content {
        Some(Content {
            raw: row.try_get(9)?,
            subject: row.try_get(10)?,
            from_addr: row.try_get(11)?,
            to_addrs: row.try_get(12)?,
            body: row.try_get(13)?,
            html: row.try_get(14)?,
        })
    } else {
        None
    };
    Ok(MessageData {
        id: row.try_get(0)?,
        uid: to_u32(row.try_get(1)?, "uid")?,
        flags: flags_from_text(&flags),
        timestamp: parse_time(row.try_get(3)?).unwrap_or_else(Utc::now),
        cache: ParseCache {
            size: size.and_then(|s| u32::try_from(s).ok()),
            envelope: row.try_get(5)?,
            body_structure: row.try_get(6)?,
            body: row.try_get(7)?,
        },
        stored_size: u64::try_from(row.try_get::<i64, _>(8)?).unwrap_or(0),
        content,
    })
}

async fn bump_modseq(tx: &mut Tx, mailbox: &MailboxId) -> StoreResult<i64> {
    let (owner, name) = mailbox.key();
    sqlx::query(
        "UPDATE mailbox_state SET highestmodseq = highestmodseq + 1 WHERE owner = $1 AND name = $2",
    )
    .bind(owner)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT highestmodseq FROM mailbox_state WHERE owner = $1 AND name = $2")
            .bind(owner)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map_or(1, |(modseq,)| modseq))
}

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has no LISTEN/NOTIFY: changes are announced in process.
    hub: Hub,
}

type Tx = Transaction<'static, Sqlite>;

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

fn sql_time(at: DateTime<Utc>) -> String {
    at.format(TIME_FORMAT).to_string()
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    let text = text?;
    let trimmed = text.trim();
    NaiveDateTime::parse_from_str(trimmed, TIME_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f"))
        .map(|naive| naive.and_utc())
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(trimmed)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

/// The file behind a `sqlite:` URL, so its directory can be created.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn flags_from_text(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_owned).collect()
}

impl SqliteStore {
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<SqliteStore> {
        if let Some(path) = sqlite_path(url)
            && let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!("cannot create {}: {e}", dir.display()).into(),
                ))
            })?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            hub: Hub::new(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Write transactions take the database lock up front, so two writers
    /// queue on the busy timeout instead of failing to upgrade a read lock.
    async fn write(&self) -> StoreResult<Tx> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn announce(&self, owners: &[String]) {
        self.hub.publish_each(owners);
    }

    async fn ensure_state(tx: &mut Tx, owner: &str, name: &str) -> StoreResult<i64> {
        sqlx::query("INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES ($1, $2)")
            .bind(owner)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        let (uidnext,): (i64,) =
            sqlx::query_as("SELECT uidnext FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(owner)
                .bind(name)
                .fetch_one(&mut **tx)
                .await?;
        Ok(uidnext)
    }

    async fn retire_state(tx: &mut Tx, owner: &str, name: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE mailbox_state SET deleted = 1, uidvalidity = uidvalidity + 1
             WHERE owner = $1 AND name = $2",
        )
        .bind(owner)
        .bind(name)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn provision_user(&self, user_id: &str, folders: &[&str]) -> StoreResult<()> {
        // Every login asks; after the first, a read answers without taking
        // the database's one write lock.
        let done: Option<bool> = sqlx::query_scalar(
            "SELECT provisioned FROM mailbox_state WHERE owner = $1 AND name = 'INBOX'",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        if done == Some(true) {
            return Ok(());
        }
        let mut tx = self.write().await?;
        // The INBOX row may exist already (mail can arrive before the first
        // login); the flag on it says whether the folders were made.
        sqlx::query("INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES ($1, 'INBOX')")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let fresh = sqlx::query(
            "UPDATE mailbox_state SET provisioned = 1 WHERE owner = $1 AND name = 'INBOX' AND NOT provisioned",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if fresh {
            for folder in folders {
                sqlx::query("INSERT OR IGNORE INTO mailbox_state (owner, name) VALUES ($1, $2)")
                    .bind(user_id)
                    .bind(folder)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mailboxes(&self, user_id: &str) -> StoreResult<Vec<MailboxEntry>> {
        let rows: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT name, subscribed, 0 FROM mailbox_state WHERE owner = $1 AND NOT deleted
             UNION ALL
             SELECT i.email_address, coalesce(s.subscribed, 1), 1
             FROM inbox i LEFT JOIN mailbox_state s ON s.owner = lower(i.email_address) AND s.name = 'INBOX'
             WHERE i.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(entries(rows))
    }

    async fn address_owner(&self, address: &str) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT user_id FROM inbox WHERE email_address = $1")
                .bind(address)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(owner,)| owner))
    }

    async fn create_address(&self, user_id: &str, address: &str) -> StoreResult<()> {
        // The inbox trigger (migration 0004) does the rest, as it does for
        // rows written by anyone else: the address's counters, and adoption
        // of the mail nobody was given.
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO inbox (id, email_address, user_id) VALUES ($1, $2, $3)",
        )
        .bind(new_id())
        .bind(address)
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        self.announce(&[user_id.to_owned(), address.to_owned()]);
        Ok(())
    }

    async fn delete_address(&self, user_id: &str, address: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // The trigger retires the address's counters.
        let deleted = sqlx::query("DELETE FROM inbox WHERE email_address = $1 AND user_id = $2")
            .bind(address)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        // Only this user's mail: what an earlier owner was given stays theirs.
        sqlx::query(
            "DELETE FROM emails WHERE mailbox_owner = $1 AND mailbox = 'INBOX'
                 AND (inbox_owner = $2 OR inbox_owner IS NULL)",
        )
        .bind(address)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.announce(&[user_id.to_owned(), address.to_owned()]);
        Ok(())
    }

    async fn create_folder(&self, user_id: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let existing: Option<(bool,)> =
            sqlx::query_as("SELECT deleted FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(user_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match existing {
            Some((false,)) => return Err(StoreError::AlreadyExists),
            Some((true,)) => {
                sqlx::query(
                    "UPDATE mailbox_state SET deleted = 0, subscribed = 1 WHERE owner = $1 AND name = $2",
                )
                .bind(user_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                SqliteStore::ensure_state(&mut tx, user_id, name).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_folder(&self, user_id: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let existing: Option<(bool,)> =
            sqlx::query_as("SELECT deleted FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(user_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if !matches!(existing, Some((false,))) {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM emails WHERE mailbox_owner = $1 AND mailbox = $2")
            .bind(user_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        SqliteStore::retire_state(&mut tx, user_id, name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rename_folder(&self, user_id: &str, from: &str, to: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let moving: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, uidnext, highestmodseq FROM mailbox_state
             WHERE owner = $1 AND NOT deleted AND (name = $2 OR substr(name, 1, length($2) + 1) = $2 || '/')",
        )
        .bind(user_id)
        .bind(from)
        .fetch_all(&mut *tx)
        .await?;
        if moving.is_empty() {
            return Err(StoreError::NotFound);
        }
        for (old, uidnext, modseq) in moving {
            let new = format!("{to}{}", &old[from.len()..]);
            let existing: Option<(bool,)> =
                sqlx::query_as("SELECT deleted FROM mailbox_state WHERE owner = $1 AND name = $2")
                    .bind(user_id)
                    .bind(&new)
                    .fetch_optional(&mut *tx)
                    .await?;
            match existing {
                Some((false,)) => return Err(StoreError::AlreadyExists),
                Some((true,)) => {
                    // A mailbox of this name existed before: the renamed one must
                    // not be mistaken for it (RFC 3501 2.3.1.1).
                    sqlx::query(
                        "UPDATE mailbox_state SET deleted = 0, uidnext = max(uidnext, $3),
                             highestmodseq = max(highestmodseq, $4),
                             uidvalidity = max(uidvalidity + 1, CAST(strftime('%s', 'now') AS INTEGER))
                         WHERE owner = $1 AND name = $2",
                    )
                    .bind(user_id)
                    .bind(&new)
                    .bind(uidnext)
                    .bind(modseq)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO mailbox_state (owner, name, uidnext, highestmodseq) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(user_id)
                    .bind(&new)
                    .bind(uidnext)
                    .bind(modseq)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            sqlx::query("UPDATE emails SET mailbox = $3 WHERE mailbox_owner = $1 AND mailbox = $2")
                .bind(user_id)
                .bind(&old)
                .bind(&new)
                .execute(&mut *tx)
                .await?;
            SqliteStore::retire_state(&mut tx, user_id, &old).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_subscribed(&self, mailbox: &MailboxId, subscribed: bool) -> StoreResult<()> {
        let (owner, name) = mailbox.key();
        sqlx::query(
            "INSERT INTO mailbox_state (owner, name, subscribed) VALUES ($1, $2, $3)
             ON CONFLICT (owner, name) DO UPDATE SET subscribed = excluded.subscribed",
        )
        .bind(owner)
        .bind(name)
        .bind(subscribed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mailbox_state(&self, mailbox: &MailboxId) -> StoreResult<Option<MailboxState>> {
        let (owner, name) = mailbox.key();
        // An address's counters count only while this user owns it: a
        // released or reassigned address is no mailbox of theirs.
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT uidvalidity, uidnext, highestmodseq, recent_uid FROM mailbox_state s
             WHERE owner = $1 AND name = $2 AND NOT deleted
               AND ($3 IS NULL OR EXISTS (
                   SELECT 1 FROM inbox i WHERE i.email_address = s.owner AND i.user_id = $3))",
        )
        .bind(owner)
        .bind(name)
        .bind(mailbox.address_user())
        .fetch_optional(&self.pool)
        .await?;
        row.map(state_from_row).transpose()
    }

    async fn summaries(&self, mailbox: &MailboxId) -> StoreResult<Vec<MessageSummary>> {
        let (uid, filter) = mailbox.scope();
        let query =
            format!("SELECT {uid}, from_addr, flags FROM emails WHERE {filter} ORDER BY {uid}");
        let (owner, name) = mailbox.binds();
        let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(AssertSqlSafe(query))
            .bind(owner)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(uid, sender, flags)| {
                Ok(MessageSummary {
                    uid: u32::try_from(uid)
                        .map_err(|_| StoreError::Corrupt(format!("uid {uid} out of range")))?,
                    sender,
                    flags: flags_from_text(&flags),
                })
            })
            .collect()
    }

    async fn append(&self, mailbox: &MailboxId, message: &NewMessage) -> StoreResult<Stored> {
        let (owner, name) = mailbox.key();
        let id = new_id();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO emails (id, mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs,
                                 timestamp, flags, size, raw)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(owner)
        .bind(name)
        .bind(&message.subject)
        .bind(&message.body)
        .bind(&message.html)
        .bind(&message.from_addr)
        .bind(&message.to_addrs)
        .bind(sql_time(message.timestamp))
        .bind(message.flags.join(" "))
        .bind(message.raw.len() as i64)
        .bind(&message.raw)
        .execute(&mut *tx)
        .await?;
        let (uid, uidvalidity, inbox_owner): (i64, i64, Option<String>) = sqlx::query_as(
            "SELECT e.uid, s.uidvalidity, e.inbox_owner FROM emails e
             JOIN mailbox_state s ON s.owner = e.mailbox_owner AND s.name = e.mailbox WHERE e.id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        if !mailbox.holds(inbox_owner.as_deref()) {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        let mut owners = vec![owner.to_owned()];
        owners.extend(inbox_owner);
        self.announce(&owners);
        let state = state_from_row((uidvalidity, uid, 0, 0))?;
        Ok(Stored {
            uidvalidity: state.uidvalidity,
            uid: state.uidnext,
        })
    }

    async fn messages(
        &self,
        mailbox: &MailboxId,
        uids: &[u32],
        with_content: bool,
    ) -> StoreResult<Vec<MessageData>> {
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let columns = MESSAGE_COLUMNS.replace("{uid}", uid);
        let extra = if with_content { CONTENT_COLUMNS } else { "" };
        let sql = format!(
            "SELECT {columns}{extra} FROM emails
             WHERE {filter} AND {uid} IN (SELECT value FROM json_each($3)) ORDER BY {uid}"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(owner)
            .bind(name)
            .bind(uid_list(uids))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| message_from_row(row, with_content))
            .collect()
    }

    async fn save_parse_caches(&self, caches: &[(String, ParseCache)]) -> StoreResult<()> {
        // One transaction, so SQLite syncs once rather than once per message.
        let mut tx = self.write().await?;
        for (id, cache) in caches {
            sqlx::query(
                "UPDATE emails SET imap_size = coalesce($2, imap_size),
                     envelope = coalesce($3, envelope),
                     bodystructure = coalesce($4, bodystructure),
                     body_basic = coalesce($5, body_basic)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(cache.size.map(i64::from))
            .bind(&cache.envelope)
            .bind(&cache.body_structure)
            .bind(&cache.body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_raw(&self, id: &str, raw: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE emails SET raw = $2 WHERE id = $1 AND raw IS NULL")
            .bind(id)
            .bind(raw)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn change_flags(
        &self,
        mailbox: &MailboxId,
        uids: &[u32],
        change: FlagChange,
        flags: &[String],
    ) -> StoreResult<Vec<(u32, Vec<String>)>> {
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT id, {uid}, flags, mailbox_owner, inbox_owner FROM emails
             WHERE {filter} AND {uid} IN (SELECT value FROM json_each($3)) ORDER BY {uid}"
        );
        let rows: Vec<(String, i64, String, String, Option<String>)> =
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(owner)
                .bind(name)
                .bind(uid_list(uids))
                .fetch_all(&mut *tx)
                .await?;
        let mut result = Vec::with_capacity(rows.len());
        let mut owners = Vec::new();
        let mut modseq = None;
        for (id, uid, current, mailbox_owner, inbox_owner) in rows {
            let current = flags_from_text(&current);
            let updated = change.apply(&current, flags);
            if updated != current {
                let modseq = match modseq {
                    Some(modseq) => modseq,
                    None => *modseq.insert(bump_modseq(&mut tx, mailbox).await?),
                };
                sqlx::query("UPDATE emails SET flags = $2, modseq = $3 WHERE id = $1")
                    .bind(&id)
                    .bind(updated.join(" "))
                    .bind(modseq)
                    .execute(&mut *tx)
                    .await?;
                owners.push(mailbox_owner);
                owners.extend(inbox_owner);
            }
            result.push((to_u32(uid, "uid")?, updated));
        }
        tx.commit().await?;
        self.announce(&owners);
        Ok(result)
    }

    async fn expunge(&self, mailbox: &MailboxId, uids: &[u32]) -> StoreResult<Vec<u32>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let mut tx = self.write().await?;
        let sql = format!(
            "DELETE FROM emails WHERE {filter} AND {uid} IN (SELECT value FROM json_each($3))
             RETURNING {uid}, mailbox_owner, inbox_owner"
        );
        let removed: Vec<(i64, String, Option<String>)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner)
            .bind(name)
            .bind(uid_list(uids))
            .fetch_all(&mut *tx)
            .await?;
        if !removed.is_empty() {
            bump_modseq(&mut tx, mailbox).await?;
        }
        tx.commit().await?;
        let mut owners = Vec::new();
        let mut uids = Vec::with_capacity(removed.len());
        for (uid, mailbox_owner, inbox_owner) in removed {
            uids.push(to_u32(uid, "uid")?);
            owners.push(mailbox_owner);
            owners.extend(inbox_owner);
        }
        self.announce(&owners);
        uids.sort_unstable();
        Ok(uids)
    }

    async fn copy(&self, from: &MailboxId, uids: &[u32], to: &MailboxId) -> StoreResult<Copied> {
        let (owner, name) = from.binds();
        let (target_owner, target_name) = to.key();
        let (uid, filter) = from.scope();
        let mut tx = self.write().await?;
        let sources_sql = format!(
            "SELECT id, {uid} FROM emails WHERE {filter} AND {uid} IN (SELECT value FROM json_each($3)) ORDER BY {uid}"
        );
        let sources: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sources_sql))
            .bind(owner)
            .bind(name)
            .bind(uid_list(uids))
            .fetch_all(&mut *tx)
            .await?;
        let mut pairs = Vec::with_capacity(sources.len());
        let mut announced = vec![target_owner.to_owned()];
        for (source_id, source_uid) in sources {
            let id = new_id();
            sqlx::query(
                "INSERT INTO emails (id, mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs, timestamp,
                                     flags, size, raw, imap_size, envelope, bodystructure, body_basic)
                 SELECT $1, $2, $3, subject, body, html, from_addr, to_addrs, timestamp, flags, size, raw,
                        imap_size, envelope, bodystructure, body_basic
                 FROM emails WHERE id = $4",
            )
            .bind(&id)
            .bind(target_owner)
            .bind(target_name)
            .bind(&source_id)
            .execute(&mut *tx)
            .await?;
            let (new_uid, viewer): (i64, Option<String>) =
                sqlx::query_as("SELECT uid, inbox_owner FROM emails WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
            if !to.holds(viewer.as_deref()) {
                return Err(StoreError::NotFound);
            }
            announced.extend(viewer);
            pairs.push((to_u32(source_uid, "uid")?, to_u32(new_uid, "uid")?));
        }
        let (uidvalidity,): (i64,) =
            sqlx::query_as("SELECT uidvalidity FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(target_owner)
                .bind(target_name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        announced.sort_unstable();
        announced.dedup();
        self.announce(&announced);
        Ok(Copied {
            uidvalidity: to_u32(uidvalidity, "uidvalidity")?,
            pairs,
        })
    }

    async fn claim_recent(&self, mailbox: &MailboxId) -> StoreResult<u32> {
        let (owner, name) = mailbox.key();
        let mut tx = self.write().await?;
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT recent_uid FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(owner)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query("UPDATE mailbox_state SET recent_uid = uidnext WHERE owner = $1 AND name = $2")
            .bind(owner)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        to_u32(row.map_or(1, |(uid,)| uid), "recent_uid")
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Only this process's own writes are announced; `deliver` or an
    /// external writer in another process changes the file silently.
    fn hears_every_writer(&self) -> bool {
        false
    }
}

type TokenRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn token_from_row((id, user_id, token, expires, used, created): TokenRow) -> TokenRecord {
    TokenRecord {
        id,
        user_id,
        token,
        expires_at: parse_time(expires),
        last_used_at: parse_time(used),
        created_at: parse_time(created),
    }
}

type UserRow = (String, String, Option<String>, Option<String>);

type StandingRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn user_from_row((id, email, status, end): UserRow) -> UserRecord {
    UserRecord {
        id,
        email,
        subscription_status: status,
        subscription_end_date: parse_time(end),
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn token(&self, token: &str) -> StoreResult<Option<TokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, user_id, token, expires_at, last_used_at, created_at FROM imap_tokens WHERE token = $1",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(token_from_row))
    }

    async fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, subscription_status, subscription_end_date FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user_from_row))
    }

    async fn token_standings(&self, token_ids: &[String]) -> StoreResult<Vec<TokenStanding>> {
        let ids = serde_json::to_string(token_ids).unwrap_or_else(|_| "[]".into());
        let rows: Vec<StandingRow> = sqlx::query_as(
            "SELECT t.id, t.user_id, t.expires_at,
                    u.id, u.email, u.subscription_status, u.subscription_end_date
             FROM imap_tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.id IN (SELECT value FROM json_each($1))",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(token_id, user_id, expires, owner_id, email, status, end)| TokenStanding {
                    token_id,
                    user_id,
                    expires_at: parse_time(expires),
                    owner: owner_id.map(|id| UserRecord {
                        id,
                        email: email.unwrap_or_default(),
                        subscription_status: status,
                        subscription_end_date: parse_time(end),
                    }),
                },
            )
            .collect())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, subscription_status, subscription_end_date FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user_from_row))
    }

    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE imap_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(token_id)
            .bind(sql_time(at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn domains(&self) -> StoreResult<Vec<DomainRecord>> {
        let rows: Vec<(String, String, Option<String>, bool, bool)> =
            sqlx::query_as("SELECT id, domain, user_id, active, cloudflare_domain FROM domains")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, domain, user_id, active, global)| DomainRecord {
                id,
                domain,
                user_id,
                active,
                global,
            })
            .collect())
    }

    async fn bans(&self) -> StoreResult<Vec<BanRecord>> {
        let rows: Vec<(String, String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, scope, value, match_type, status FROM bans ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ban_from_row).collect())
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO users (id, email, subscription_status, subscription_end_date)
             VALUES ($1, lower($2), $3, $4)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.subscription_status)
        .bind(user.subscription_end_date.map(sql_time))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(())
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, email, subscription_status, subscription_end_date FROM users ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(user_from_row).collect())
    }

    async fn set_subscription(
        &self,
        user_id: &str,
        status: &str,
        end_date: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE users SET subscription_status = $2, subscription_end_date = $3 WHERE id = $1",
        )
        .bind(user_id)
        .bind(status)
        .bind(end_date.map(sql_time))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn add_token(&self, record: &TokenRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO imap_tokens (id, user_id, token, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&record.id)
        .bind(&record.user_id)
        .bind(&record.token)
        .bind(record.expires_at.map(sql_time))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn tokens(&self, user_id: &str) -> StoreResult<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, user_id, '', expires_at, last_used_at, created_at FROM imap_tokens
             WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM imap_tokens WHERE id = $1")
            .bind(token_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn add_domain(&self, domain: &DomainRecord) -> StoreResult<()> {
        let exists: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM domains WHERE lower(domain) = lower($1)")
                .bind(&domain.domain)
                .fetch_optional(&self.pool)
                .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        sqlx::query(
            "INSERT INTO domains (id, domain, user_id, active, cloudflare_domain) VALUES ($1, lower($2), $3, $4, $5)",
        )
        .bind(&domain.id)
        .bind(&domain.domain)
        .bind(&domain.user_id)
        .bind(domain.active)
        .bind(domain.global)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_domain_active(&self, domain: &str, active: bool) -> StoreResult<bool> {
        let updated = sqlx::query("UPDATE domains SET active = $2 WHERE lower(domain) = lower($1)")
            .bind(domain)
            .bind(active)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    async fn addresses(&self, user_id: Option<&str>) -> StoreResult<Vec<AddressRecord>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT email_address, user_id FROM inbox WHERE $1 IS NULL OR user_id = $1 ORDER BY email_address",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(address, user_id)| AddressRecord { address, user_id })
            .collect())
    }

    async fn add_ban(&self, ban: &BanRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO bans (id, scope, value, match_type, status) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&ban.id)
        .bind(&ban.scope)
        .bind(&ban.value)
        .bind(&ban.match_type)
        .bind(if ban.active { "active" } else { "inactive" })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_ban_active(&self, ban_id: &str, active: bool) -> StoreResult<bool> {
        let updated = sqlx::query("UPDATE bans SET status = $2 WHERE id = $1")
            .bind(ban_id)
            .bind(if active { "active" } else { "inactive" })
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_both_url_forms() {
        assert_eq!(
            sqlite_path("sqlite://data/a.db"),
            Some(PathBuf::from("data/a.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:a.db?mode=rwc"),
            Some(PathBuf::from("a.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
