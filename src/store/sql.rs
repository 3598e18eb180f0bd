//! The SQL core: every statement both databases run, written once.
//!
//! `SqlStore<D>` is generic over the sqlx driver, and `D: Dialect` carries
//! only what truly differs (docs/ARCHITECTURE.md, Storage): how a list, a
//! flag list and a timestamp are stored, how a write transaction begins, how
//! other processes hear of a change, and two batch writes that PostgreSQL
//! does in one statement. Statements are written in PostgreSQL's syntax, the
//! production dialect, and `Dialect::sql` gives each database its own
//! spelling (for SQLite: no casts, no row locks, JSON for lists).
//!
//! A generic rather than a macro: every statement is type-checked against
//! both drivers by the compiler, rustfmt and error messages see real code,
//! and there is no runtime dispatch on the hot path.

use std::borrow::Cow;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row,
    Transaction, Type,
};

use super::*;
use crate::notify::Hub;
use sqlx::pool::PoolConnection;

/// A value that can be bound as a parameter of `D`.
pub trait Param<D: Database>: for<'q> Encode<'q, D> + Type<D> + Send {}
impl<D: Database, T: for<'q> Encode<'q, D> + Type<D> + Send> Param<D> for T {}

/// A value that can be read from a column of `D`.
pub trait Field<D: Database>: for<'r> Decode<'r, D> + Type<D> + Send + Unpin {}
impl<D: Database, T: for<'r> Decode<'r, D> + Type<D> + Send + Unpin> Field<D> for T {}

/// What differs between the databases; everything else is in `SqlStore`.
#[async_trait]
pub trait Dialect: Database + Sized {
    /// UIDs bound as one parameter and matched with `= ANY($n)`.
    type UidList: Param<Self>;
    /// Text UUIDs bound as one parameter and matched with `= ANY($n::uuid[])`.
    type IdList: Param<Self>;
    /// `emails.flags` as stored.
    type Flags: Param<Self> + Field<Self>;
    /// A timestamp column as stored.
    type Time: Param<Self> + Field<Self>;

    /// Whether every writer's changes reach this process's sessions (see
    /// `MailStore::hears_every_writer`).
    const HEARS_EVERY_WRITER: bool;

    fn uid_list(uids: &[u32]) -> Self::UidList;
    fn id_list(ids: &[String]) -> Self::IdList;
    fn flags(list: &[String]) -> Self::Flags;
    fn flag_list(stored: Self::Flags) -> Vec<String>;
    fn time(at: DateTime<Utc>) -> Self::Time;
    fn utc(stored: Self::Time) -> Option<DateTime<Utc>>;
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// Whether the database gave a transaction up over a conflict with
    /// another writer, so that running it again may succeed.
    fn is_conflict(error: &sqlx::Error) -> bool;

    /// A statement written in PostgreSQL's syntax, in this database's.
    fn sql(statement: Cow<'static, str>) -> AssertSqlSafe<Cow<'static, str>>;

    /// Connects and brings the schema up to date.
    async fn connect(url: &str, max_connections: u32) -> StoreResult<Pool<Self>>;
    /// Begins a transaction that will write.
    async fn begin_write(pool: &Pool<Self>) -> StoreResult<Transaction<'static, Self>>;
    /// Begins a write that a crash may lose but never tear, so its commit
    /// need not wait for the disk: flag changes and expunges (the durability
    /// contract in docs/ARCHITECTURE.md, Storage).
    async fn begin_unsynced(pool: &Pool<Self>) -> StoreResult<Transaction<'static, Self>>;
    /// Tells other processes, at commit, that these owners' mailboxes changed
    /// in ways no trigger announces (flag changes).
    async fn notify(tx: &mut Transaction<'static, Self>, owners: &[String]) -> StoreResult<()>;
    /// Gives each message (by id) its new flags and `modseq`.
    async fn write_flags(
        tx: &mut Transaction<'static, Self>,
        changes: &[(String, Vec<String>)],
        modseq: i64,
    ) -> StoreResult<()>;
    /// Keeps parse results with their messages (by id); absent values keep
    /// what is stored.
    async fn save_parse_caches(
        pool: &Pool<Self>,
        caches: &[(String, ParseCache)],
    ) -> StoreResult<()>;
    /// Keeps header sections with their messages (by id).
    async fn save_header_blocks(pool: &Pool<Self>, blocks: &[(String, Vec<u8>)])
    -> StoreResult<()>;
}

/// How many times a write transaction is run again after the database gave
/// it up over a conflict with another writer.
const CONFLICT_RETRIES: u32 = 5;

/// Runs a write transaction again when the database gave it up to resolve a
/// conflict with another writer (a deadlock or a serialization failure): a
/// client never sees a lock conflict (docs/ARCHITECTURE.md, Storage). The
/// attempts wait a little, at random, so that the writers do not meet again.
async fn retrying<D, T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    D: Dialect,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(StoreError::Database(error))
                if retries < CONFLICT_RETRIES && D::is_conflict(&error) =>
            {
                retries += 1;
                let pause = rand::random_range(1..=5 * u64::from(retries));
                tracing::debug!(%error, retries, "write conflict; running the transaction again");
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            result => return result,
        }
    }
}

/// A statement in `D`'s spelling.
fn sql<D: Dialect>(statement: impl Into<Cow<'static, str>>) -> AssertSqlSafe<Cow<'static, str>> {
    D::sql(statement.into())
}

pub struct SqlStore<D: Database> {
    pool: Pool<D>,
    /// How long statements waited for a connection (store/waits.rs).
    waits: Arc<PoolWaits>,
    /// Tells this process's sessions at once about changes, without waiting
    /// for a round trip through the database (which only PostgreSQL makes).
    hub: Hub,
}

/// The columns of `MessageData`; `{uid}` is the view's UID column.
const MESSAGE_COLUMNS: &str = "id::text, {uid}, flags, coalesce(timestamp, created_at),
    imap_size, envelope, bodystructure, body_basic,
    coalesce(octet_length(raw), 0)::bigint + coalesce(octet_length(body), 0)::bigint
        + coalesce(octet_length(html), 0)::bigint, coalesce(modseq, 1)";
/// The columns of `Content`.
const CONTENT_COLUMNS: &str = "raw, subject, from_addr, to_addrs::text, body, html";
/// The same, only for rows whose header section is not kept, then that section.
const HEADER_COLUMNS: &str = "CASE WHEN header_block IS NULL THEN raw END,
    CASE WHEN header_block IS NULL THEN subject END, CASE WHEN header_block IS NULL THEN from_addr END,
    CASE WHEN header_block IS NULL THEN to_addrs::text END, CASE WHEN header_block IS NULL THEN body END,
    CASE WHEN header_block IS NULL THEN html END, header_block";

/// What `fill_contents` reads for `wanted`, after the UID.
fn wanted_columns(wanted: Wanted) -> &'static str {
    match wanted {
        Wanted::Headers => HEADER_COLUMNS,
        Wanted::Every | Wanted::Unparsed | Wanted::Unstored => CONTENT_COLUMNS,
    }
}

/// The state row of the mailbox `(owner, name)`, so that it exists when it is
/// locked. Triggers would make it on a first insert anyway.
const ENSURE_STATE: &str =
    "INSERT INTO mailbox_state (owner, name) VALUES ($1, $2) ON CONFLICT DO NOTHING";

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    for<'a> &'a str: Param<D>,
    String: Param<D> + Field<D>,
    i64: Param<D> + Field<D>,
    bool: Param<D> + Field<D>,
    Option<String>: Param<D>,
{
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<SqlStore<D>> {
        Ok(SqlStore {
            pool: D::connect(url, max_connections).await?,
            waits: Arc::default(),
            hub: Hub::new(),
        })
    }

    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    pub fn waits(&self) -> Arc<PoolWaits> {
        self.waits.clone()
    }

    /// A connection from the pool, its wait counted.
    async fn connection(&self) -> StoreResult<PoolConnection<D>> {
        let started = Instant::now();
        let connection = self.pool.acquire().await;
        self.waits.record(started.elapsed());
        Ok(connection?)
    }

    /// A transaction begun by `begin`, its wait for a connection (and the
    /// BEGIN round trip) counted.
    async fn transaction<F>(&self, begin: F) -> StoreResult<Transaction<'static, D>>
    where
        F: std::future::Future<Output = StoreResult<Transaction<'static, D>>>,
    {
        let started = Instant::now();
        let transaction = begin.await;
        self.waits.record(started.elapsed());
        transaction
    }

    /// Takes the next value of the user's mod-sequence counter, locking it
    /// until commit: values are handed out in commit order, and the counter
    /// comes before any message in the lock order (docs/ARCHITECTURE.md,
    /// Mod-sequences).
    async fn next_modseq(
        tx: &mut Transaction<'static, D>,
        mailbox: &MailboxId,
    ) -> StoreResult<i64> {
        let (modseq,): (i64,) = sqlx::query_as(sql::<D>(
            "INSERT INTO mailbox_state AS s (owner, name, highestmodseq) VALUES ($1, 'INBOX', 2)
             ON CONFLICT (owner, name) DO UPDATE SET highestmodseq = s.highestmodseq + 1
             RETURNING highestmodseq",
        ))
        .bind(mailbox.counter())
        .fetch_one(&mut **tx)
        .await?;
        Ok(modseq)
    }

    /// The summaries of the mailbox's messages with a mod-sequence above
    /// `since` (0: all of them), in UID order.
    async fn summaries_with_modseq_above(
        &self,
        mailbox: &MailboxId,
        since: u64,
    ) -> StoreResult<Vec<MessageSummary>> {
        let (uid, filter) = mailbox.scope();
        let (owner, name) = mailbox.binds();
        // All of them, or by the mod-sequence index.
        let newer = if since == 0 { "" } else { "AND modseq > $3" };
        let query = sqlx::query_as(sql::<D>(format!(
            "SELECT {uid}, from_addr, flags, modseq FROM emails WHERE {filter} {newer} ORDER BY {uid}"
        )))
        .bind(owner)
        .bind(name);
        let query = if since == 0 {
            query
        } else {
            query.bind(i64::try_from(since).unwrap_or(i64::MAX))
        };
        let rows: Vec<SummaryRow<D::Flags>> =
            query.fetch_all(&mut *self.connection().await?).await?;
        rows.into_iter()
            .map(|(uid, sender, flags, modseq_value)| {
                Ok(MessageSummary {
                    uid: to_u32(uid, "uid")?,
                    sender,
                    flags: flags.map(D::flag_list).unwrap_or_default(),
                    modseq: known_modseq(modseq_value.unwrap_or(1)),
                })
            })
            .collect()
    }

    /// The remembered expunges of the mailbox above `since`: (UID,
    /// mod-sequence) in UID order, or `None` when some of them were
    /// forgotten. An address's are this owner's only.
    async fn expunged_rows(
        &self,
        mailbox: &MailboxId,
        since: u64,
    ) -> StoreResult<Option<Vec<(i64, i64)>>> {
        let (owner, name) = mailbox.key();
        let forgotten: Option<(i64,)> = sqlx::query_as(sql::<D>(
            "SELECT forgotten_modseq FROM mailbox_state WHERE owner = $1 AND name = $2",
        ))
        .bind(owner)
        .bind(name)
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        if forgotten.is_some_and(|(forgotten,)| u64::try_from(forgotten).unwrap_or(0) > since) {
            return Ok(None);
        }
        Ok(Some(sqlx::query_as(sql::<D>(
            "SELECT uid, modseq FROM expunged
             WHERE owner = $1 AND name = $2 AND ($3::text IS NULL OR viewer = $3::text) AND modseq > $4
             ORDER BY uid",
        ))
        .bind(owner)
        .bind(name)
        .bind(mailbox.address_user().map(str::to_owned))
        .bind(i64::try_from(since).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.connection().await?)
        .await?))
    }

    /// Locks the user's mod-sequence counter without raising it: the delete
    /// trigger raises it, after the messages are locked.
    async fn lock_counter(
        tx: &mut Transaction<'static, D>,
        mailbox: &MailboxId,
    ) -> StoreResult<()> {
        sqlx::query(sql::<D>(ENSURE_STATE))
            .bind(mailbox.counter())
            .bind("INBOX")
            .execute(&mut **tx)
            .await?;
        sqlx::query(sql::<D>(
            "SELECT highestmodseq FROM mailbox_state WHERE owner = $1 AND name = 'INBOX' FOR UPDATE",
        ))
        .bind(mailbox.counter())
        .fetch_optional(&mut **tx)
        .await?;
        Ok(())
    }

    /// Retires a mailbox name: a later mailbox of the same name gets a larger UIDVALIDITY.
    async fn retire_state(
        tx: &mut Transaction<'static, D>,
        owner: &str,
        name: &str,
    ) -> StoreResult<()> {
        sqlx::query(sql::<D>(
            "UPDATE mailbox_state SET deleted = true, uidvalidity = uidvalidity + 1
             WHERE owner = $1 AND name = $2",
        ))
        .bind(owner)
        .bind(name)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The UIDVALIDITY of `(owner, name)` and the UID its next message gets,
    /// with the row locked until commit: the mailbox state row comes first in
    /// the lock order (docs/ARCHITECTURE.md, Storage).
    async fn lock_state(
        tx: &mut Transaction<'static, D>,
        owner: &str,
        name: &str,
    ) -> StoreResult<(i64, i64)> {
        sqlx::query(sql::<D>(ENSURE_STATE))
            .bind(owner)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        Ok(sqlx::query_as(sql::<D>(
            "SELECT uidvalidity, uidnext FROM mailbox_state WHERE owner = $1 AND name = $2 FOR UPDATE",
        ))
        .bind(owner)
        .bind(name)
        .fetch_one(&mut **tx)
        .await?)
    }

    /// The user matching `condition`, a constant with `$1` bound to `value`.
    async fn user_where(
        &self,
        condition: &'static str,
        value: &str,
    ) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow<D::Time>> = sqlx::query_as(sql::<D>(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {condition}"
        )))
        .bind(value)
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        Ok(row.map(user_from_row::<D>))
    }

    /// COPY's transaction, which `copy` runs again after a lock conflict.
    async fn copy_once(
        &self,
        from: &MailboxId,
        uids: &[u32],
        to: &MailboxId,
    ) -> StoreResult<Copied> {
        let (owner, name) = from.binds();
        let (target_owner, target_name) = to.key();
        let (uid, filter) = from.scope();
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        // With the target's counters locked, no other writer numbers messages
        // in it before this commits: the copies are the rows from `first` on.
        let (uidvalidity, first) = Self::lock_state(&mut tx, target_owner, target_name).await?;
        // The user's INBOX state row next, before any message, as the insert
        // trigger takes it: mail to an address takes a UID in the unified
        // INBOX, and every copy a mod-sequence from the user's counter
        // there (docs/ARCHITECTURE.md, Storage).
        Self::lock_state(&mut tx, to.counter(), "INBOX").await?;
        // The sources stay locked too, so the copy sees exactly these.
        let sources: Vec<(i64,)> = sqlx::query_as(sql::<D>(format!(
            "SELECT {uid} FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid} FOR UPDATE"
        )))
        .bind(owner)
        .bind(name)
        .bind(D::uid_list(uids))
        .fetch_all(&mut *tx)
        .await?;
        // Rows are inserted in source UID order and the trigger numbers them
        // in insertion order, so the two sorted lists pair up.
        sqlx::query(sql::<D>(format!(
            "INSERT INTO emails (mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs, timestamp,
                                 flags, size, raw, imap_size, envelope, bodystructure, body_basic, header_block)
             SELECT $4, $5, subject, body, html, from_addr, to_addrs, timestamp, flags, size, raw,
                    imap_size, envelope, bodystructure, body_basic, header_block
             FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid}"
        )))
        .bind(owner)
        .bind(name)
        .bind(D::uid_list(uids))
        .bind(target_owner)
        .bind(target_name)
        .execute(&mut *tx)
        .await?;
        let created: Vec<(i64, Option<String>)> = sqlx::query_as(sql::<D>(
            "SELECT uid, inbox_owner::text FROM emails
             WHERE mailbox_owner = $1 AND mailbox = $2 AND uid >= $3 ORDER BY uid",
        ))
        .bind(target_owner)
        .bind(target_name)
        .bind(first)
        .fetch_all(&mut *tx)
        .await?;
        if created.len() != sources.len() {
            return Err(StoreError::Corrupt(format!(
                "copied {} messages into {} rows",
                sources.len(),
                created.len()
            )));
        }
        if !created
            .iter()
            .all(|(_, viewer)| to.holds(viewer.as_deref()))
        {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        let mut owners = vec![target_owner.to_owned()];
        owners.extend(created.iter().filter_map(|(_, viewer)| viewer.clone()));
        self.announce(owners);
        let pairs = sources
            .into_iter()
            .zip(created)
            .map(|((source,), (new, _))| Ok((to_u32(source, "uid")?, to_u32(new, "uid")?)))
            .collect::<StoreResult<_>>()?;
        Ok(Copied {
            uidvalidity: to_u32(uidvalidity, "uidvalidity")?,
            pairs,
        })
    }

    /// The owners to announce a change to, once each.
    fn announce(&self, mut owners: Vec<String>) {
        owners.sort_unstable();
        owners.dedup();
        self.hub.publish_each(&owners);
    }

    fn affected(result: &D::QueryResult) -> u64 {
        D::rows_affected(result)
    }
}

fn message_from_row<D: Dialect>(row: &D::Row) -> StoreResult<MessageData>
where
    usize: ColumnIndex<D::Row>,
    String: Field<D>,
    i64: Field<D>,
{
    let size: Option<i64> = row.try_get(4)?;
    let flags: Option<D::Flags> = row.try_get(2)?;
    let timestamp: Option<D::Time> = row.try_get(3)?;
    Ok(MessageData {
        id: row.try_get(0)?,
        uid: to_u32(row.try_get(1)?, "uid")?,
        flags: flags.map(D::flag_list).unwrap_or_default(),
        timestamp: timestamp.and_then(D::utc).unwrap_or_else(Utc::now),
        cache: ParseCache {
            size: size.and_then(|s| u32::try_from(s).ok()),
            envelope: row.try_get(5)?,
            body_structure: row.try_get(6)?,
            body: row.try_get(7)?,
        },
        stored_size: u64::try_from(row.try_get::<i64, _>(8)?).unwrap_or(0),
        modseq: known_modseq(row.try_get(9)?),
        content: None,
        header_block: None,
    })
}

/// `CONTENT_COLUMNS`, after the UID.
fn content_from_row<D: Dialect>(row: &D::Row) -> StoreResult<Content>
where
    usize: ColumnIndex<D::Row>,
    String: Field<D>,
    Vec<u8>: Field<D>,
{
    Ok(Content {
        raw: row.try_get(1)?,
        subject: row.try_get(2)?,
        from_addr: row.try_get(3)?,
        to_addrs: row.try_get(4)?,
        body: row.try_get(5)?,
        html: row.try_get(6)?,
    })
}

/// UID, sender, flags and mod-sequence of a message, as read.
type SummaryRow<F> = (i64, Option<String>, Option<F>, Option<i64>);

/// A stored mod-sequence; rows written before 0006 may lack one.
fn known_modseq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0).max(1)
}

fn to_u32(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

fn state_from_row(
    (uidvalidity, uidnext, highestmodseq, recent_uid, forgotten): (i64, i64, i64, i64, i64),
) -> StoreResult<MailboxState> {
    Ok(MailboxState {
        uidvalidity: to_u32(uidvalidity, "uidvalidity")?,
        uidnext: to_u32(uidnext, "uidnext")?,
        highestmodseq: known_modseq(highestmodseq),
        forgotten_modseq: u64::try_from(forgotten).unwrap_or(0),
        recent_uid: to_u32(recent_uid, "recent_uid")?,
    })
}

/// Folder rows and address rows into listing entries; the user's own INBOX
/// row is the unified INBOX.
fn entries(rows: Vec<(String, bool, bool)>) -> Vec<MailboxEntry> {
    rows.into_iter()
        .map(|(name, subscribed, is_address)| {
            let kind = if is_address {
                MailboxKind::Address
            } else if name == "INBOX" {
                MailboxKind::Inbox
            } else {
                MailboxKind::Folder
            };
            let name = if is_address {
                name.to_lowercase()
            } else {
                name
            };
            MailboxEntry {
                name,
                kind,
                subscribed,
            }
        })
        .collect()
}

/// Ids that are not UUIDs match nothing (and would be an error to PostgreSQL).
fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

fn ban_state(active: bool) -> &'static str {
    if active { "active" } else { "inactive" }
}

#[async_trait]
impl<D: Dialect> MailStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    for<'a> &'a str: Param<D>,
    for<'a> &'a [u8]: Param<D>,
    String: Param<D> + Field<D>,
    Vec<u8>: Param<D> + Field<D>,
    i64: Param<D> + Field<D>,
    i32: Param<D>,
    bool: Param<D> + Field<D>,
    Option<String>: Param<D>,
    Option<D::Time>: Param<D>,
{
    async fn provision_user(&self, user_id: &str, folders: &[&str]) -> StoreResult<()> {
        // Every login asks; after the first, a read answers without a write
        // (and its commit's flush to disk, or SQLite's one write lock).
        let done: Option<bool> = sqlx::query_scalar(sql::<D>(
            "SELECT provisioned FROM mailbox_state WHERE owner = $1 AND name = 'INBOX'",
        ))
        .bind(user_id)
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        if done == Some(true) {
            return Ok(());
        }
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        // The INBOX row may exist already (mail can arrive before the first
        // login); the flag on it says whether the folders were made.
        let fresh = sqlx::query(sql::<D>(
            "INSERT INTO mailbox_state AS s (owner, name, provisioned) VALUES ($1, 'INBOX', true)
             ON CONFLICT (owner, name) DO UPDATE SET provisioned = true WHERE NOT s.provisioned",
        ))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if Self::affected(&fresh) == 1 {
            for folder in folders {
                sqlx::query(sql::<D>(ENSURE_STATE))
                    .bind(user_id)
                    .bind(*folder)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mailboxes(&self, user_id: &str) -> StoreResult<Vec<MailboxEntry>> {
        let rows: Vec<(String, bool, bool)> = sqlx::query_as(sql::<D>(
            "SELECT name, subscribed, false FROM mailbox_state WHERE owner = $1 AND NOT deleted
             UNION ALL
             SELECT i.email_address, coalesce(s.subscribed, true), true
             FROM inbox i LEFT JOIN mailbox_state s ON s.owner = lower(i.email_address) AND s.name = 'INBOX'
             WHERE i.user_id = $1::uuid",
        ))
        .bind(user_id)
        .fetch_all(&mut *self.connection().await?)
        .await?;
        Ok(entries(rows))
    }

    async fn address_owner(&self, address: &str) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(sql::<D>(
            "SELECT user_id::text FROM inbox WHERE lower(email_address) = lower($1)",
        ))
        .bind(address)
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        Ok(row.and_then(|(owner,)| owner))
    }

    async fn create_address(&self, user_id: &str, address: &str) -> StoreResult<()> {
        // The inbox trigger (migration 0004) does the rest, as it does for
        // rows the deployment writes itself: the address's counters, and
        // adoption of the mail nobody was given.
        let inserted = sqlx::query(sql::<D>(
            "INSERT INTO inbox (id, email_address, user_id) VALUES ($1::uuid, $2, $3::uuid)
             ON CONFLICT DO NOTHING",
        ))
        .bind(new_id())
        .bind(address)
        .bind(user_id)
        .execute(&mut *self.connection().await?)
        .await?;
        if Self::affected(&inserted) == 0 {
            return Err(StoreError::AlreadyExists);
        }
        self.announce(vec![user_id.to_owned(), address.to_owned()]);
        Ok(())
    }

    async fn delete_address(&self, user_id: &str, address: &str) -> StoreResult<()> {
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        // The trigger retires the address's counters (and notifies).
        let deleted = sqlx::query(sql::<D>(
            "DELETE FROM inbox WHERE lower(email_address) = $1 AND user_id = $2::uuid",
        ))
        .bind(address)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if Self::affected(&deleted) == 0 {
            return Err(StoreError::NotFound);
        }
        // Only this user's mail: what an earlier owner was given stays theirs.
        sqlx::query(sql::<D>(
            "DELETE FROM emails WHERE mailbox_owner = $1 AND mailbox = 'INBOX'
                 AND (inbox_owner = $2 OR inbox_owner IS NULL)",
        ))
        .bind(address)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.announce(vec![user_id.to_owned(), address.to_owned()]);
        Ok(())
    }

    async fn create_folder(&self, user_id: &str, name: &str) -> StoreResult<()> {
        let created = sqlx::query(sql::<D>(
            "INSERT INTO mailbox_state AS s (owner, name) VALUES ($1, $2)
             ON CONFLICT (owner, name) DO UPDATE SET deleted = false, subscribed = true
             WHERE s.deleted",
        ))
        .bind(user_id)
        .bind(name)
        .execute(&mut *self.connection().await?)
        .await?;
        if Self::affected(&created) == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(())
    }

    async fn delete_folder(&self, user_id: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        let exists: Option<(bool,)> = sqlx::query_as(sql::<D>(
            "SELECT deleted FROM mailbox_state WHERE owner = $1 AND name = $2 FOR UPDATE",
        ))
        .bind(user_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if !matches!(exists, Some((false,))) {
            return Err(StoreError::NotFound);
        }
        sqlx::query(sql::<D>(
            "DELETE FROM emails WHERE mailbox_owner = $1 AND mailbox = $2",
        ))
        .bind(user_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        Self::retire_state(&mut tx, user_id, name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rename_folder(&self, user_id: &str, from: &str, to: &str) -> StoreResult<()> {
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        let moving: Vec<(String, i64, i64)> = sqlx::query_as(sql::<D>(
            "SELECT name, uidnext, highestmodseq FROM mailbox_state
             WHERE owner = $1 AND NOT deleted
               AND (name = $2 OR substr(name, 1, length($2) + 1) = $2 || '/')
             FOR UPDATE",
        ))
        .bind(user_id)
        .bind(from)
        .fetch_all(&mut *tx)
        .await?;
        if moving.is_empty() {
            return Err(StoreError::NotFound);
        }
        for (old, uidnext, modseq) in moving {
            let new = format!("{to}{}", &old[from.len()..]);
            // The new name takes the messages with their UIDs, so it needs a
            // UIDVALIDITY no earlier mailbox of that name ever had.
            let claimed = sqlx::query(sql::<D>(
                "INSERT INTO mailbox_state AS s (owner, name, uidnext, highestmodseq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (owner, name) DO UPDATE SET deleted = false,
                     uidnext = greatest(s.uidnext, excluded.uidnext),
                     highestmodseq = greatest(s.highestmodseq, excluded.highestmodseq),
                     uidvalidity = greatest(s.uidvalidity + 1, excluded.uidvalidity)
                 WHERE s.deleted",
            ))
            .bind(user_id)
            .bind(new.as_str())
            .bind(uidnext)
            .bind(modseq)
            .execute(&mut *tx)
            .await?;
            if Self::affected(&claimed) == 0 {
                return Err(StoreError::AlreadyExists);
            }
            sqlx::query(sql::<D>(
                "UPDATE emails SET mailbox = $3 WHERE mailbox_owner = $1 AND mailbox = $2",
            ))
            .bind(user_id)
            .bind(old.as_str())
            .bind(new.as_str())
            .execute(&mut *tx)
            .await?;
            Self::retire_state(&mut tx, user_id, &old).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_subscribed(&self, mailbox: &MailboxId, subscribed: bool) -> StoreResult<()> {
        let (owner, name) = mailbox.key();
        sqlx::query(sql::<D>(
            "INSERT INTO mailbox_state (owner, name, subscribed) VALUES ($1, $2, $3)
             ON CONFLICT (owner, name) DO UPDATE SET subscribed = excluded.subscribed",
        ))
        .bind(owner)
        .bind(name)
        .bind(subscribed)
        .execute(&mut *self.connection().await?)
        .await?;
        Ok(())
    }

    async fn mailbox_state(&self, mailbox: &MailboxId) -> StoreResult<Option<MailboxState>> {
        let (owner, name) = mailbox.key();
        // An address's counters count only while this user owns it: a
        // released or reassigned address is no mailbox of theirs.
        // HIGHESTMODSEQ is this mailbox's own: the newest of its messages
        // and remembered expunges, never below what was forgotten.
        let messages = mailbox.keyed_filter();
        let row: Option<(i64, i64, i64, i64, i64)> = sqlx::query_as(sql::<D>(format!(
            "SELECT uidvalidity, uidnext,
                    greatest(1, s.forgotten_modseq,
                             coalesce((SELECT max(modseq) FROM emails WHERE {messages}), 0),
                             coalesce((SELECT max(x.modseq) FROM expunged x WHERE x.owner = $1 AND x.name = $2
                                         AND ($3::text IS NULL OR x.viewer = $3::text)), 0)),
                    recent_uid, forgotten_modseq
             FROM mailbox_state s
             WHERE owner = $1 AND name = $2 AND NOT deleted
               AND ($3::text IS NULL OR EXISTS (
                   SELECT 1 FROM inbox i WHERE lower(i.email_address) = s.owner AND i.user_id = $3::uuid))"
        )))
        .bind(owner)
        .bind(name)
        .bind(mailbox.address_user().map(str::to_owned))
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        row.map(state_from_row).transpose()
    }

    async fn summaries_since(
        &self,
        mailbox: &MailboxId,
        since: u64,
    ) -> StoreResult<Vec<MessageSummary>> {
        self.summaries_with_modseq_above(mailbox, since).await
    }

    async fn changes_since(&self, mailbox: &MailboxId, since: u64) -> StoreResult<Option<Changes>> {
        // Expunges first, then the messages: whatever commits in between
        // has a mod-sequence above everything read, and is seen next time.
        let Some(expunged) = self.expunged_rows(mailbox, since).await? else {
            return Ok(None);
        };
        let changed = self.summaries_with_modseq_above(mailbox, since).await?;
        let newest_vanished = expunged
            .iter()
            .map(|&(_, m)| known_modseq(m))
            .max()
            .unwrap_or(0);
        let vanished = expunged
            .into_iter()
            .map(|(uid, _)| to_u32(uid, "uid"))
            .collect::<StoreResult<_>>()?;
        Ok(Some(Changes {
            vanished,
            newest_vanished,
            changed,
        }))
    }

    async fn append(&self, mailbox: &MailboxId, message: &NewMessage) -> StoreResult<Stored> {
        let (owner, name) = mailbox.key();
        let id = new_id();
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        sqlx::query(sql::<D>(
            "INSERT INTO emails (id, mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs,
                                 timestamp, flags, size, raw)
             VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        ))
        .bind(id.as_str())
        .bind(owner)
        .bind(name)
        .bind(&message.subject)
        .bind(&message.body)
        .bind(&message.html)
        .bind(&message.from_addr)
        .bind(&message.to_addrs)
        .bind(D::time(message.timestamp))
        .bind(D::flags(&message.flags))
        .bind(i32::try_from(message.raw.len()).unwrap_or(i32::MAX))
        .bind(message.raw.as_slice())
        .execute(&mut *tx)
        .await?;
        // The trigger numbered the row (and may have just created the state
        // row): read both back.
        let (uid, uidvalidity, inbox_owner): (i64, i64, Option<String>) = sqlx::query_as(sql::<D>(
            "SELECT e.uid, s.uidvalidity, e.inbox_owner::text FROM emails e
             JOIN mailbox_state s ON s.owner = e.mailbox_owner AND s.name = e.mailbox
             WHERE e.id = $1::uuid",
        ))
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if !mailbox.holds(inbox_owner.as_deref()) {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.announce(
            std::iter::once(owner.to_owned())
                .chain(inbox_owner)
                .collect(),
        );
        Ok(Stored {
            uidvalidity: to_u32(uidvalidity, "uidvalidity")?,
            uid: to_u32(uid, "uid")?,
        })
    }

    async fn messages(&self, mailbox: &MailboxId, uids: &[u32]) -> StoreResult<Vec<MessageData>> {
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let columns = MESSAGE_COLUMNS.replace("{uid}", uid);
        let rows = sqlx::query(sql::<D>(format!(
            "SELECT {columns} FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid}"
        )))
        .bind(owner)
        .bind(name)
        .bind(D::uid_list(uids))
        .fetch_all(&mut *self.connection().await?)
        .await?;
        rows.iter().map(message_from_row::<D>).collect()
    }

    async fn fill_contents(
        &self,
        mailbox: &MailboxId,
        messages: &mut [MessageData],
        wanted: Wanted,
    ) -> StoreResult<()> {
        let uids: Vec<u32> = messages
            .iter()
            .filter(|m| wanted.may_want(m))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(());
        }
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let rows = sqlx::query(sql::<D>(format!(
            "SELECT {uid}, {} FROM emails WHERE {filter} AND {uid} = ANY($3){} ORDER BY {uid}",
            wanted_columns(wanted),
            if wanted == Wanted::Unstored {
                " AND raw IS NULL"
            } else {
                ""
            }
        )))
        .bind(owner)
        .bind(name)
        .bind(D::uid_list(&uids))
        .fetch_all(&mut *self.connection().await?)
        .await?;
        for row in &rows {
            let uid = to_u32(row.try_get(0)?, "uid")?;
            if let Ok(index) = messages.binary_search_by_key(&uid, |m| m.uid) {
                let message = &mut messages[index];
                if wanted == Wanted::Headers {
                    message.header_block = row.try_get(7)?;
                }
                // With only the header section wanted, the content comes
                // where that is not kept yet.
                if wanted != Wanted::Headers || message.header_block.is_none() {
                    message.content = Some(content_from_row::<D>(row)?);
                }
            }
        }
        Ok(())
    }

    async fn save_header_blocks(&self, blocks: &[(String, Vec<u8>)]) -> StoreResult<()> {
        D::save_header_blocks(&self.pool, blocks).await
    }

    async fn save_parse_caches(&self, caches: &[(String, ParseCache)]) -> StoreResult<()> {
        D::save_parse_caches(&self.pool, caches).await
    }

    async fn save_raw(&self, id: &str, raw: &[u8]) -> StoreResult<()> {
        sqlx::query(sql::<D>(
            "UPDATE emails SET raw = $2 WHERE id = $1::uuid AND raw IS NULL",
        ))
        .bind(id)
        .bind(raw)
        .execute(&mut *self.connection().await?)
        .await?;
        Ok(())
    }

    async fn change_flags(
        &self,
        mailbox: &MailboxId,
        uids: &[u32],
        change: FlagChange,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> StoreResult<FlagsChanged> {
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let unchanged_since =
            unchanged_since.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        retrying::<D, _, _, _>(|| async move {
            let mut tx = self.transaction(D::begin_unsynced(&self.pool)).await?;
            // The lock order: the user's mod-sequence counter, then the
            // messages in UID order (docs/ARCHITECTURE.md, Storage). One
            // value for every message this command changes.
            let modseq = Self::next_modseq(&mut tx, mailbox).await?;
            let rows: Vec<(String, i64, Option<D::Flags>, String, Option<String>, Option<i64>)> =
                sqlx::query_as(sql::<D>(format!(
                    "SELECT id::text, {uid}, flags, mailbox_owner, inbox_owner::text, modseq FROM emails
                     WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid} FOR UPDATE"
                )))
                .bind(owner)
                .bind(name)
                .bind(D::uid_list(uids))
                .fetch_all(&mut *tx)
                .await?;
            let mut result = FlagsChanged::default();
            let (mut changes, mut owners) = (Vec::new(), Vec::new());
            for (id, uid, current, mailbox_owner, inbox_owner, current_modseq) in rows {
                let uid = to_u32(uid, "uid")?;
                let current = current.map(D::flag_list).unwrap_or_default();
                let current_modseq = current_modseq.unwrap_or(1);
                if current_modseq > unchanged_since {
                    result.modified.push(uid);
                    continue;
                }
                let updated = change.apply(&current, flags);
                let changed = updated != current;
                if changed {
                    changes.push((id, updated.clone()));
                    owners.push(mailbox_owner);
                    owners.extend(inbox_owner);
                }
                result.messages.push(Flagged {
                    uid,
                    flags: updated,
                    modseq: known_modseq(if changed { modseq } else { current_modseq }),
                    changed,
                });
            }
            if changes.is_empty() {
                // Nothing changed: nor does the MODSEQ, and nothing waits for the disk.
                tx.rollback().await?;
                return Ok(result);
            }
            D::write_flags(&mut tx, &changes, modseq).await?;
            D::notify(&mut tx, &owners).await?;
            tx.commit().await?;
            self.announce(owners);
            Ok(result)
        })
        .await
    }

    async fn changed_since(
        &self,
        mailbox: &MailboxId,
        uids: &[u32],
        since: u64,
    ) -> StoreResult<Vec<u32>> {
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let rows: Vec<(i64,)> = sqlx::query_as(sql::<D>(format!(
            "SELECT {uid} FROM emails WHERE {filter} AND {uid} = ANY($3) AND modseq > $4 ORDER BY {uid}"
        )))
        .bind(owner)
        .bind(name)
        .bind(D::uid_list(uids))
        .bind(i64::try_from(since).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.connection().await?)
        .await?;
        rows.into_iter().map(|(uid,)| to_u32(uid, "uid")).collect()
    }

    async fn expunged_since(
        &self,
        mailbox: &MailboxId,
        since: u64,
    ) -> StoreResult<Option<Vec<u32>>> {
        let Some(rows) = self.expunged_rows(mailbox, since).await? else {
            return Ok(None);
        };
        rows.into_iter()
            .map(|(uid, _)| to_u32(uid, "uid"))
            .collect::<StoreResult<_>>()
            .map(Some)
    }

    async fn forget_expunged(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const OLD: &str =
            "x.owner = mailbox_state.owner AND x.name = mailbox_state.name AND x.expunged_at < $1";
        // First what a client must know to be told everything, then the
        // rows, a bounded batch per transaction.
        retrying::<D, _, _, _>(|| async move {
            sqlx::query(sql::<D>(format!(
                "UPDATE mailbox_state SET forgotten_modseq = greatest(forgotten_modseq,
                     (SELECT max(x.modseq) FROM expunged x WHERE {OLD}))
                 WHERE EXISTS (SELECT 1 FROM expunged x WHERE {OLD})"
            )))
            .bind(D::time(before))
            .execute(&mut *self.connection().await?)
            .await?;
            Ok(())
        })
        .await?;
        let mut forgotten = 0;
        loop {
            let result = sqlx::query(sql::<D>(
                "DELETE FROM expunged WHERE (owner, name, uid) IN (
                     SELECT owner, name, uid FROM expunged WHERE expunged_at < $1 LIMIT 10000)",
            ))
            .bind(D::time(before))
            .execute(&mut *self.connection().await?)
            .await?;
            let count = D::rows_affected(&result);
            forgotten += count;
            if count == 0 {
                return Ok(forgotten);
            }
        }
    }

    async fn expunge(&self, mailbox: &MailboxId, uids: &[u32]) -> StoreResult<Vec<u32>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        retrying::<D, _, _, _>(|| async move {
            let mut tx = self.transaction(D::begin_unsynced(&self.pool)).await?;
            // The counter, then the messages in UID order (the subquery
            // locks them as it reads them); the delete trigger remembers
            // the expunges and notifies other processes.
            Self::lock_counter(&mut tx, mailbox).await?;
            let removed: Vec<(i64, String, Option<String>)> = sqlx::query_as(sql::<D>(format!(
                "DELETE FROM emails WHERE id IN (
                     SELECT id FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid} FOR UPDATE)
                 RETURNING {uid}, mailbox_owner, inbox_owner::text"
            )))
            .bind(owner)
            .bind(name)
            .bind(D::uid_list(uids))
            .fetch_all(&mut *tx)
            .await?;
            if removed.is_empty() {
                tx.rollback().await?;
                return Ok(Vec::new());
            }
            tx.commit().await?;
            let mut owners = Vec::new();
            let mut uids = Vec::with_capacity(removed.len());
            for (uid, mailbox_owner, inbox_owner) in removed {
                uids.push(to_u32(uid, "uid")?);
                owners.push(mailbox_owner);
                owners.extend(inbox_owner);
            }
            self.announce(owners);
            uids.sort_unstable();
            Ok(uids)
        })
        .await
    }

    async fn copy(&self, from: &MailboxId, uids: &[u32], to: &MailboxId) -> StoreResult<Copied> {
        retrying::<D, _, _, _>(|| self.copy_once(from, uids, to)).await
    }

    async fn claim_recent(&self, mailbox: &MailboxId) -> StoreResult<std::ops::Range<u32>> {
        let (owner, name) = mailbox.key();
        let mut tx = self.transaction(D::begin_write(&self.pool)).await?;
        let row: Option<(i64, i64)> = sqlx::query_as(sql::<D>(
            "SELECT recent_uid, uidnext FROM mailbox_state WHERE owner = $1 AND name = $2 FOR UPDATE",
        ))
        .bind(owner)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((from, to)) = row else {
            return Ok(1..1);
        };
        if from < to {
            sqlx::query(sql::<D>(
                "UPDATE mailbox_state SET recent_uid = $3 WHERE owner = $1 AND name = $2",
            ))
            .bind(owner)
            .bind(name)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(to_u32(from, "recent_uid")?..to_u32(to, "uidnext")?)
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn hears_every_writer(&self) -> bool {
        D::HEARS_EVERY_WRITER
    }
}

type TokenRow<T> = (String, String, String, Option<T>, Option<T>, Option<T>);
type UserRow<T> = (String, String, Option<String>, Option<T>);
type StandingRow<T> = (
    String,
    String,
    Option<T>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<T>,
);

const TOKEN_COLUMNS: &str = "id::text, user_id::text, token, expires_at, last_used_at, created_at";
const USER_COLUMNS: &str = "id::text, email, subscription_status, subscription_end_date";

fn token_from_row<D: Dialect>(
    (id, user_id, token, expires, used, created): TokenRow<D::Time>,
) -> TokenRecord {
    TokenRecord {
        id,
        user_id,
        token,
        expires_at: expires.and_then(D::utc),
        last_used_at: used.and_then(D::utc),
        created_at: created.and_then(D::utc),
    }
}

fn user_from_row<D: Dialect>((id, email, status, end): UserRow<D::Time>) -> UserRecord {
    UserRecord {
        id,
        email,
        subscription_status: status,
        subscription_end_date: end.and_then(D::utc),
    }
}

fn standing_from_row<D: Dialect>(
    (token_id, user_id, expires, owner_id, email, status, end): StandingRow<D::Time>,
) -> TokenStanding {
    TokenStanding {
        token_id,
        user_id,
        expires_at: expires.and_then(D::utc),
        owner: owner_id.map(|id| user_from_row::<D>((id, email.unwrap_or_default(), status, end))),
    }
}

#[async_trait]
impl<D: Dialect> AccountStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    for<'a> &'a str: Param<D>,
    String: Param<D> + Field<D>,
    i64: Param<D> + Field<D>,
    bool: Param<D> + Field<D>,
    Option<String>: Param<D>,
    Option<D::Time>: Param<D>,
{
    async fn token(&self, token: &str) -> StoreResult<Option<TokenRecord>> {
        let row: Option<TokenRow<D::Time>> = sqlx::query_as(sql::<D>(format!(
            "SELECT {TOKEN_COLUMNS} FROM imap_tokens WHERE token = $1"
        )))
        .bind(token)
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        Ok(row.map(token_from_row::<D>))
    }

    async fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        if !is_uuid(user_id) {
            return Ok(None);
        }
        self.user_where("id = $1::uuid", user_id).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where("lower(email) = lower($1)", email).await
    }

    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        // A login must not wait for this to reach the disk: losing the last
        // `last_used_at` in a crash is harmless.
        let mut tx = self.transaction(D::begin_unsynced(&self.pool)).await?;
        sqlx::query(sql::<D>(
            "UPDATE imap_tokens SET last_used_at = $2 WHERE id = $1::uuid",
        ))
        .bind(token_id)
        .bind(D::time(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token_standings(&self, token_ids: &[String]) -> StoreResult<Vec<TokenStanding>> {
        // Ids come from our own logins; one that is not a UUID matches nothing.
        let ids: Vec<String> = token_ids.iter().filter(|id| is_uuid(id)).cloned().collect();
        let rows: Vec<StandingRow<D::Time>> = sqlx::query_as(sql::<D>(
            "SELECT t.id::text, t.user_id::text, t.expires_at,
                    u.id::text, u.email, u.subscription_status, u.subscription_end_date
             FROM imap_tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.id = ANY($1::uuid[])",
        ))
        .bind(D::id_list(&ids))
        .fetch_all(&mut *self.connection().await?)
        .await?;
        Ok(rows.into_iter().map(standing_from_row::<D>).collect())
    }

    async fn domains(&self) -> StoreResult<Vec<DomainRecord>> {
        let rows: Vec<(String, String, Option<String>, Option<bool>, Option<bool>)> =
            sqlx::query_as(sql::<D>(
                "SELECT id::text, domain, user_id::text, active, cloudflare_domain FROM domains",
            ))
            .fetch_all(&mut *self.connection().await?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, domain, user_id, active, global)| DomainRecord {
                id,
                domain,
                user_id,
                active: active.unwrap_or(false),
                global: global.unwrap_or(false),
            })
            .collect())
    }

    async fn bans(&self) -> StoreResult<Vec<BanRecord>> {
        let rows: Vec<(String, String, String, Option<String>, Option<String>)> =
            sqlx::query_as(sql::<D>(
                "SELECT id::text, scope, value, match_type, status FROM bans ORDER BY created_at",
            ))
            .fetch_all(&mut *self.connection().await?)
            .await?;
        Ok(rows.into_iter().map(ban_from_row).collect())
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        let inserted = sqlx::query(sql::<D>(
            "INSERT INTO users (id, email, subscription_status, subscription_end_date)
             VALUES ($1::uuid, lower($2), $3, $4) ON CONFLICT DO NOTHING",
        ))
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(&user.subscription_status)
        .bind(user.subscription_end_date.map(D::time))
        .execute(&mut *self.connection().await?)
        .await?;
        if Self::affected(&inserted) == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(())
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows: Vec<UserRow<D::Time>> = sqlx::query_as(sql::<D>(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY email"
        )))
        .fetch_all(&mut *self.connection().await?)
        .await?;
        Ok(rows.into_iter().map(user_from_row::<D>).collect())
    }

    async fn has_users(&self) -> StoreResult<bool> {
        let found: Option<String> =
            sqlx::query_scalar(sql::<D>("SELECT id::text FROM users LIMIT 1"))
                .fetch_optional(&mut *self.connection().await?)
                .await?;
        Ok(found.is_some())
    }

    async fn set_subscription(
        &self,
        user_id: &str,
        status: &str,
        end_date: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let updated = sqlx::query(sql::<D>(
            "UPDATE users SET subscription_status = $2, subscription_end_date = $3 WHERE id = $1::uuid",
        ))
        .bind(user_id)
        .bind(status)
        .bind(end_date.map(D::time))
        .execute(&mut *self.connection().await?)
        .await?;
        if Self::affected(&updated) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn add_token(&self, record: &TokenRecord) -> StoreResult<()> {
        sqlx::query(sql::<D>(
            "INSERT INTO imap_tokens (id, user_id, token, expires_at) VALUES ($1::uuid, $2::uuid, $3, $4)",
        ))
        .bind(record.id.as_str())
        .bind(record.user_id.as_str())
        .bind(record.token.as_str())
        .bind(record.expires_at.map(D::time))
        .execute(&mut *self.connection().await?)
        .await?;
        Ok(())
    }

    async fn tokens(&self, user_id: &str) -> StoreResult<Vec<TokenRecord>> {
        // Everything but the secret itself.
        let rows: Vec<TokenRow<D::Time>> = sqlx::query_as(sql::<D>(
            "SELECT id::text, user_id::text, '', expires_at, last_used_at, created_at
             FROM imap_tokens WHERE user_id = $1::uuid ORDER BY created_at",
        ))
        .bind(user_id)
        .fetch_all(&mut *self.connection().await?)
        .await?;
        Ok(rows.into_iter().map(token_from_row::<D>).collect())
    }

    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool> {
        if !is_uuid(token_id) {
            return Ok(false);
        }
        let deleted = sqlx::query(sql::<D>("DELETE FROM imap_tokens WHERE id = $1::uuid"))
            .bind(token_id)
            .execute(&mut *self.connection().await?)
            .await?;
        Ok(Self::affected(&deleted) > 0)
    }

    async fn add_domain(&self, domain: &DomainRecord) -> StoreResult<()> {
        let exists: Option<(i64,)> = sqlx::query_as(sql::<D>(
            "SELECT 1::bigint FROM domains WHERE lower(domain) = lower($1)",
        ))
        .bind(domain.domain.as_str())
        .fetch_optional(&mut *self.connection().await?)
        .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        sqlx::query(sql::<D>(
            "INSERT INTO domains (id, domain, user_id, active, cloudflare_domain)
             VALUES ($1::uuid, lower($2), $3::uuid, $4, $5)",
        ))
        .bind(domain.id.as_str())
        .bind(domain.domain.as_str())
        .bind(&domain.user_id)
        .bind(domain.active)
        .bind(domain.global)
        .execute(&mut *self.connection().await?)
        .await?;
        Ok(())
    }

    async fn set_domain_active(&self, domain: &str, active: bool) -> StoreResult<bool> {
        let updated = sqlx::query(sql::<D>(
            "UPDATE domains SET active = $2 WHERE lower(domain) = lower($1)",
        ))
        .bind(domain)
        .bind(active)
        .execute(&mut *self.connection().await?)
        .await?;
        Ok(Self::affected(&updated) > 0)
    }

    async fn addresses(&self, user_id: Option<&str>) -> StoreResult<Vec<AddressRecord>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(sql::<D>(
            "SELECT email_address, user_id::text FROM inbox
             WHERE $1::uuid IS NULL OR user_id = $1::uuid ORDER BY email_address",
        ))
        .bind(user_id.map(str::to_owned))
        .fetch_all(&mut *self.connection().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(address, user_id)| AddressRecord { address, user_id })
            .collect())
    }

    async fn add_ban(&self, ban: &BanRecord) -> StoreResult<()> {
        sqlx::query(sql::<D>(
            "INSERT INTO bans (id, scope, value, match_type, status) VALUES ($1::uuid, $2, $3, $4, $5)",
        ))
        .bind(ban.id.as_str())
        .bind(ban.scope.as_str())
        .bind(ban.value.as_str())
        .bind(ban.match_type.as_str())
        .bind(ban_state(ban.active))
        .execute(&mut *self.connection().await?)
        .await?;
        Ok(())
    }

    async fn set_ban_active(&self, ban_id: &str, active: bool) -> StoreResult<bool> {
        if !is_uuid(ban_id) {
            return Ok(false);
        }
        let updated = sqlx::query(sql::<D>("UPDATE bans SET status = $2 WHERE id = $1::uuid"))
            .bind(ban_id)
            .bind(ban_state(active))
            .execute(&mut *self.connection().await?)
            .await?;
        Ok(Self::affected(&updated) > 0)
    }
}
