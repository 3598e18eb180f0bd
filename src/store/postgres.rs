//! PostgreSQL: the production store. UIDs are assigned by the `emails` trigger
//! (see migrations/postgres), so rows from external writers behave like ours.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};

use super::*;
use crate::notify::Hub;

/// The columns of `MessageData`, then those of `Content`.
const MESSAGE_COLUMNS: &str =
    "id::text, {uid}, coalesce(flags, '{}'), coalesce(timestamp, created_at, now()),
    imap_size, envelope, bodystructure, body_basic,
    coalesce(octet_length(raw), 0)::bigint + coalesce(octet_length(body), 0)::bigint
        + coalesce(octet_length(html), 0)::bigint";
const CONTENT_COLUMNS: &str = ", raw, subject, from_addr, to_addrs::text, body, html";

fn uid_list(uids: &[u32]) -> Vec<i64> {
    uids.iter().map(|&uid| i64::from(uid)).collect()
}

fn message_from_row(row: &PgRow, with_content: bool) -> StoreResult<MessageData> {
    let size: Option<i64> = row.try_get(4)?;
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
        flags: row.try_get(2)?,
        timestamp: row.try_get(3)?,
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

/// Tells every session showing these owners' mailboxes to look again; sent at commit.
async fn notify(tx: &mut Tx, owners: &[String]) -> StoreResult<()> {
    let mut owners: Vec<&String> = owners.iter().collect();
    owners.sort();
    owners.dedup();
    for owner in owners {
        sqlx::query("SELECT pg_notify('imap_changes', $1)")
            .bind(owner)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn bump_modseq(tx: &mut Tx, mailbox: &MailboxId) -> StoreResult<i64> {
    let (owner, name) = mailbox.key();
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE mailbox_state SET highestmodseq = highestmodseq + 1 WHERE owner = $1 AND name = $2
         RETURNING highestmodseq",
    )
    .bind(owner)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map_or(1, |(modseq,)| modseq))
}

pub struct PgStore {
    pool: PgPool,
    hub: Hub,
}

type Tx = Transaction<'static, Postgres>;

impl PgStore {
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            hub: Hub::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Tells this process's sessions at once about new mail in `owner`'s
    /// mailbox (and the unified INBOX of `inbox_owner`), without waiting for
    /// the NOTIFY round trip through the server; other processes hear the
    /// trigger's NOTIFY.
    fn announce(&self, owner: &str, inbox_owner: Option<String>) {
        self.hub.publish(owner);
        if let Some(user) = inbox_owner {
            self.hub.publish(&user);
        }
    }

    /// Retires a mailbox name: a later mailbox of the same name gets a larger UIDVALIDITY.
    async fn retire_state(tx: &mut Tx, owner: &str, name: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE mailbox_state SET deleted = true, uidvalidity = uidvalidity + 1
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
impl MailStore for PgStore {
    async fn provision_user(&self, user_id: &str, folders: &[&str]) -> StoreResult<()> {
        // Every login asks; after the first, a read answers without a write
        // (and its commit's flush to disk).
        let done: Option<bool> = sqlx::query_scalar(
            "SELECT provisioned FROM mailbox_state WHERE owner = $1 AND name = 'INBOX'",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        if done == Some(true) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // The INBOX row may exist already (mail can arrive before the first
        // login); the flag on it says whether the folders were made.
        let fresh = sqlx::query(
            "INSERT INTO mailbox_state AS s (owner, name, provisioned) VALUES ($1, 'INBOX', true)
             ON CONFLICT (owner, name) DO UPDATE SET provisioned = true WHERE NOT s.provisioned",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if fresh {
            for folder in folders {
                sqlx::query(
                    "INSERT INTO mailbox_state (owner, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
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
            "SELECT name, subscribed, false FROM mailbox_state WHERE owner = $1 AND NOT deleted
             UNION ALL
             SELECT i.email_address, coalesce(s.subscribed, true), true
             FROM inbox i LEFT JOIN mailbox_state s ON s.owner = lower(i.email_address) AND s.name = 'INBOX'
             WHERE i.user_id = $1::uuid",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(entries(rows))
    }

    async fn address_owner(&self, address: &str) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT user_id::text FROM inbox WHERE lower(email_address) = lower($1)",
        )
        .bind(address)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(owner,)| owner))
    }

    async fn create_address(&self, user_id: &str, address: &str) -> StoreResult<()> {
        // The inbox trigger (migration 0004) does the rest, as it does for
        // rows the deployment writes itself: the address's counters, and
        // adoption of the mail nobody was given.
        let inserted = sqlx::query(
            "INSERT INTO inbox (email_address, user_id) VALUES ($1, $2::uuid) ON CONFLICT DO NOTHING",
        )
        .bind(address)
        .bind(user_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        self.hub.publish_each(&[user_id, address]);
        Ok(())
    }

    async fn delete_address(&self, user_id: &str, address: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The trigger retires the address's counters and notifies.
        let deleted =
            sqlx::query("DELETE FROM inbox WHERE lower(email_address) = $1 AND user_id = $2::uuid")
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
        self.hub.publish_each(&[user_id, address]);
        Ok(())
    }

    async fn create_folder(&self, user_id: &str, name: &str) -> StoreResult<()> {
        let created = sqlx::query(
            "INSERT INTO mailbox_state AS s (owner, name) VALUES ($1, $2)
             ON CONFLICT (owner, name) DO UPDATE SET deleted = false, subscribed = true
             WHERE s.deleted",
        )
        .bind(user_id)
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if created == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(())
    }

    async fn delete_folder(&self, user_id: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<(bool,)> = sqlx::query_as(
            "SELECT deleted FROM mailbox_state WHERE owner = $1 AND name = $2 FOR UPDATE",
        )
        .bind(user_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if !matches!(exists, Some((false,))) {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM emails WHERE mailbox_owner = $1 AND mailbox = $2")
            .bind(user_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        PgStore::retire_state(&mut tx, user_id, name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rename_folder(&self, user_id: &str, from: &str, to: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let moving: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, uidnext, highestmodseq FROM mailbox_state
             WHERE owner = $1 AND NOT deleted AND (name = $2 OR starts_with(name, $2 || '/'))
             FOR UPDATE",
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
            // The new name takes the messages with their UIDs, so it needs a
            // UIDVALIDITY no earlier mailbox of that name ever had.
            let claimed = sqlx::query(
                "INSERT INTO mailbox_state AS s (owner, name, uidnext, highestmodseq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (owner, name) DO UPDATE SET deleted = false, uidnext = greatest(s.uidnext, excluded.uidnext),
                     highestmodseq = greatest(s.highestmodseq, excluded.highestmodseq),
                     uidvalidity = greatest(s.uidvalidity + 1, excluded.uidvalidity)
                 WHERE s.deleted",
            )
            .bind(user_id)
            .bind(&new)
            .bind(uidnext)
            .bind(modseq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                return Err(StoreError::AlreadyExists);
            }
            sqlx::query("UPDATE emails SET mailbox = $3 WHERE mailbox_owner = $1 AND mailbox = $2")
                .bind(user_id)
                .bind(&old)
                .bind(&new)
                .execute(&mut *tx)
                .await?;
            PgStore::retire_state(&mut tx, user_id, &old).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_subscribed(&self, mailbox: &MailboxId, subscribed: bool) -> StoreResult<()> {
        let (owner, name) = mailbox.key();
        sqlx::query(
            "INSERT INTO mailbox_state AS s (owner, name, subscribed) VALUES ($1, $2, $3)
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
               AND ($3::text IS NULL OR EXISTS (
                   SELECT 1 FROM inbox i WHERE lower(i.email_address) = s.owner AND i.user_id = $3::uuid))",
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
        let query = format!(
            "SELECT {uid}, from_addr, coalesce(flags, '{{}}') FROM emails WHERE {filter} ORDER BY {uid}"
        );
        let (owner, name) = mailbox.binds();
        let rows: Vec<(i64, Option<String>, Vec<String>)> = sqlx::query_as(AssertSqlSafe(query))
            .bind(owner)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(uid, sender, flags)| {
                Ok(MessageSummary {
                    uid: to_u32(uid, "uid")?,
                    sender,
                    flags,
                })
            })
            .collect()
    }

    async fn append(&self, mailbox: &MailboxId, message: &NewMessage) -> StoreResult<Stored> {
        let (owner, name) = mailbox.key();
        let mut tx = self.pool.begin().await?;
        let (uid, inbox_owner): (i64, Option<String>) = sqlx::query_as(
            "INSERT INTO emails (mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs,
                                 timestamp, flags, size, raw)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING uid, inbox_owner::text",
        )
        .bind(owner)
        .bind(name)
        .bind(&message.subject)
        .bind(&message.body)
        .bind(&message.html)
        .bind(&message.from_addr)
        .bind(&message.to_addrs)
        .bind(message.timestamp)
        .bind(&message.flags)
        .bind(i32::try_from(message.raw.len()).unwrap_or(i32::MAX))
        .bind(&message.raw)
        .fetch_one(&mut *tx)
        .await?;
        if !mailbox.holds(inbox_owner.as_deref()) {
            return Err(StoreError::NotFound);
        }
        // A separate statement: the trigger may have just created the state
        // row, which a CTE of the INSERT could not see.
        let (uidvalidity,): (i64,) =
            sqlx::query_as("SELECT uidvalidity FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(owner)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        self.announce(owner, inbox_owner);
        Ok(Stored {
            uidvalidity: to_u32(uidvalidity, "uidvalidity")?,
            uid: to_u32(uid, "uid")?,
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
            "SELECT {columns}{extra} FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid}"
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
        // One statement per thousand messages rather than one per message: a
        // first FETCH of a large mailbox parses everything at once.
        for chunk in caches.chunks(1000) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            let sizes: Vec<Option<i64>> =
                chunk.iter().map(|(_, c)| c.size.map(i64::from)).collect();
            let envelopes: Vec<Option<&str>> =
                chunk.iter().map(|(_, c)| c.envelope.as_deref()).collect();
            let structures: Vec<Option<&str>> = chunk
                .iter()
                .map(|(_, c)| c.body_structure.as_deref())
                .collect();
            let bodies: Vec<Option<&str>> = chunk.iter().map(|(_, c)| c.body.as_deref()).collect();
            sqlx::query(
                "UPDATE emails e SET imap_size = coalesce(d.size, e.imap_size),
                     envelope = coalesce(d.envelope, e.envelope),
                     bodystructure = coalesce(d.structure, e.bodystructure),
                     body_basic = coalesce(d.body, e.body_basic)
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
                     AS d(id, size, envelope, structure, body)
                 WHERE e.id = d.id::uuid",
            )
            .bind(&ids)
            .bind(&sizes)
            .bind(&envelopes)
            .bind(&structures)
            .bind(&bodies)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn save_raw(&self, id: &str, raw: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE emails SET raw = $2 WHERE id = $1::uuid AND raw IS NULL")
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
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT id::text, {uid}, coalesce(flags, '{{}}'), mailbox_owner, inbox_owner FROM emails
             WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid} FOR UPDATE"
        );
        let rows: Vec<(String, i64, Vec<String>, String, Option<String>)> =
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(owner)
                .bind(name)
                .bind(uid_list(uids))
                .fetch_all(&mut *tx)
                .await?;
        let mut result = Vec::with_capacity(rows.len());
        let (mut ids, mut lists, mut owners) = (Vec::new(), Vec::new(), Vec::new());
        for (id, uid, current, mailbox_owner, inbox_owner) in rows {
            let updated = change.apply(&current, flags);
            if updated != current {
                ids.push(id);
                lists.push(updated.join(" "));
                owners.push(mailbox_owner);
                owners.extend(inbox_owner);
            }
            result.push((to_u32(uid, "uid")?, updated));
        }
        if !ids.is_empty() {
            let modseq = bump_modseq(&mut tx, mailbox).await?;
            // Flags are atoms, so a space-joined list splits back exactly.
            sqlx::query(
                "UPDATE emails e SET flags = CASE WHEN d.f = '' THEN '{}'::text[] ELSE string_to_array(d.f, ' ') END,
                     modseq = $3
                 FROM unnest($1::text[], $2::text[]) AS d(id, f) WHERE e.id = d.id::uuid",
            )
            .bind(&ids)
            .bind(&lists)
            .bind(modseq)
            .execute(&mut *tx)
            .await?;
            notify(&mut tx, &owners).await?;
        }
        tx.commit().await?;
        self.hub.publish_each(&owners);
        Ok(result)
    }

    async fn expunge(&self, mailbox: &MailboxId, uids: &[u32]) -> StoreResult<Vec<u32>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let (owner, name) = mailbox.binds();
        let (uid, filter) = mailbox.scope();
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "DELETE FROM emails WHERE {filter} AND {uid} = ANY($3)
             RETURNING {uid}, mailbox_owner, inbox_owner::text"
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
        let owners: Vec<&str> = removed
            .iter()
            .flat_map(|(_, mailbox_owner, inbox_owner)| {
                std::iter::once(mailbox_owner.as_str()).chain(inbox_owner.as_deref())
            })
            .collect();
        self.hub.publish_each(&owners);
        let mut removed: Vec<u32> = removed
            .into_iter()
            .map(|(uid, _, _)| to_u32(uid, "uid"))
            .collect::<StoreResult<_>>()?;
        removed.sort_unstable();
        Ok(removed)
    }

    async fn copy(&self, from: &MailboxId, uids: &[u32], to: &MailboxId) -> StoreResult<Copied> {
        let (owner, name) = from.binds();
        let (target_owner, target_name) = to.key();
        let (uid, filter) = from.scope();
        let mut tx = self.pool.begin().await?;
        let sources_sql =
            format!("SELECT {uid} FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid}");
        let sources: Vec<(i64,)> = sqlx::query_as(AssertSqlSafe(sources_sql))
            .bind(owner)
            .bind(name)
            .bind(uid_list(uids))
            .fetch_all(&mut *tx)
            .await?;
        let sql = format!(
            "INSERT INTO emails (mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs, timestamp,
                                 flags, size, raw, imap_size, envelope, bodystructure, body_basic)
             SELECT $4, $5, subject, body, html, from_addr, to_addrs, timestamp, flags, size, raw,
                    imap_size, envelope, bodystructure, body_basic
             FROM emails WHERE {filter} AND {uid} = ANY($3) ORDER BY {uid}
             RETURNING uid, inbox_owner::text"
        );
        let mut created: Vec<(i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner)
            .bind(name)
            .bind(uid_list(uids))
            .bind(target_owner)
            .bind(target_name)
            .fetch_all(&mut *tx)
            .await?;
        if !created
            .iter()
            .all(|(_, viewer)| to.holds(viewer.as_deref()))
        {
            return Err(StoreError::NotFound);
        }
        // Rows are inserted in source UID order and the trigger numbers them
        // in insertion order, so sorted lists pair up.
        created.sort_unstable();
        let (uidvalidity,): (i64,) =
            sqlx::query_as("SELECT uidvalidity FROM mailbox_state WHERE owner = $1 AND name = $2")
                .bind(target_owner)
                .bind(target_name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        if let Some((_, inbox_owner)) = created.first() {
            self.announce(target_owner, inbox_owner.clone());
        }
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

    async fn claim_recent(&self, mailbox: &MailboxId) -> StoreResult<u32> {
        let (owner, name) = mailbox.key();
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT recent_uid FROM mailbox_state WHERE owner = $1 AND name = $2 FOR UPDATE",
        )
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

    /// Triggers notify on every insert and delete, whoever the writer, and
    /// the store notifies its own flag changes; a lost LISTEN connection
    /// makes every session refresh when it comes back.
    fn hears_every_writer(&self) -> bool {
        true
    }
}

fn to_u32(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(super) fn state_from_row(
    (uidvalidity, uidnext, highestmodseq, recent_uid): (i64, i64, i64, i64),
) -> StoreResult<MailboxState> {
    Ok(MailboxState {
        uidvalidity: to_u32(uidvalidity, "uidvalidity")?,
        uidnext: to_u32(uidnext, "uidnext")?,
        highestmodseq: u64::try_from(highestmodseq).unwrap_or(0),
        recent_uid: to_u32(recent_uid, "recent_uid")?,
    })
}

/// Folder rows and address rows into listing entries; the user's own INBOX
/// row is the unified INBOX.
pub(super) fn entries(rows: Vec<(String, bool, bool)>) -> Vec<MailboxEntry> {
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

#[async_trait]
impl AccountStore for PgStore {
    async fn token(&self, token: &str) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query_as::<_, TokenRow>(
            "SELECT id::text, user_id::text, token, expires_at, last_used_at, created_at
             FROM imap_tokens WHERE token = $1",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(TokenRow::into_record))
    }

    async fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        if uuid::Uuid::parse_str(user_id).is_err() {
            return Ok(None);
        }
        let row = sqlx::query_as::<_, UserRow>(
            "SELECT id::text, email, subscription_status, subscription_end_date FROM users WHERE id = $1::uuid",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_record))
    }

    async fn token_standings(&self, token_ids: &[String]) -> StoreResult<Vec<TokenStanding>> {
        // Ids come from our own logins; one that is not a UUID matches nothing.
        let ids: Vec<uuid::Uuid> = token_ids
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .collect();
        let rows: Vec<StandingRow> = sqlx::query_as(
            "SELECT t.id::text, t.user_id::text, t.expires_at,
                    u.id::text, u.email, u.subscription_status, u.subscription_end_date
             FROM imap_tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(standing_from_row).collect())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query_as::<_, UserRow>(
            "SELECT id::text, email, subscription_status, subscription_end_date FROM users
             WHERE lower(email) = lower($1)",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_record))
    }

    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        // A login must not wait for this to reach the disk: losing the last
        // `last_used_at` in a crash is harmless.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit TO OFF")
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE imap_tokens SET last_used_at = $2 WHERE id = $1::uuid")
            .bind(token_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn domains(&self) -> StoreResult<Vec<DomainRecord>> {
        let rows: Vec<(String, String, Option<String>, Option<bool>, Option<bool>)> =
            sqlx::query_as(
                "SELECT id::text, domain, user_id::text, active, cloudflare_domain FROM domains",
            )
            .fetch_all(&self.pool)
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
        let rows: Vec<(String, String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id::text, scope, value, match_type, status FROM bans ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ban_from_row).collect())
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, subscription_status, subscription_end_date)
             VALUES ($1::uuid, lower($2), $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.subscription_status)
        .bind(user.subscription_end_date)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        Ok(())
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query_as::<_, UserRow>(
            "SELECT id::text, email, subscription_status, subscription_end_date FROM users ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(UserRow::into_record).collect())
    }

    async fn set_subscription(
        &self,
        user_id: &str,
        status: &str,
        end_date: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE users SET subscription_status = $2, subscription_end_date = $3 WHERE id = $1::uuid",
        )
        .bind(user_id)
        .bind(status)
        .bind(end_date)
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
            "INSERT INTO imap_tokens (id, user_id, token, expires_at) VALUES ($1::uuid, $2::uuid, $3, $4)",
        )
        .bind(&record.id)
        .bind(&record.user_id)
        .bind(&record.token)
        .bind(record.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn tokens(&self, user_id: &str) -> StoreResult<Vec<TokenRecord>> {
        let rows = sqlx::query_as::<_, TokenRow>(
            "SELECT id::text, user_id::text, '' AS token, expires_at, last_used_at, created_at
             FROM imap_tokens WHERE user_id = $1::uuid ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(TokenRow::into_record).collect())
    }

    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool> {
        if uuid::Uuid::parse_str(token_id).is_err() {
            return Ok(false);
        }
        let deleted = sqlx::query("DELETE FROM imap_tokens WHERE id = $1::uuid")
            .bind(token_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn add_domain(&self, domain: &DomainRecord) -> StoreResult<()> {
        let exists: Option<(i32,)> =
            sqlx::query_as("SELECT 1 FROM domains WHERE lower(domain) = lower($1)")
                .bind(&domain.domain)
                .fetch_optional(&self.pool)
                .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        sqlx::query(
            "INSERT INTO domains (id, domain, user_id, active, cloudflare_domain)
             VALUES ($1::uuid, lower($2), $3::uuid, $4, $5)",
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
            "SELECT email_address, user_id::text FROM inbox
             WHERE $1::uuid IS NULL OR user_id = $1::uuid ORDER BY email_address",
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
            "INSERT INTO bans (id, scope, value, match_type, status) VALUES ($1::uuid, $2, $3, $4, $5)",
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
        if uuid::Uuid::parse_str(ban_id).is_err() {
            return Ok(false);
        }
        let updated = sqlx::query("UPDATE bans SET status = $2 WHERE id = $1::uuid")
            .bind(ban_id)
            .bind(if active { "active" } else { "inactive" })
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    user_id: String,
    token: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn into_record(self) -> TokenRecord {
        TokenRecord {
            id: self.id,
            user_id: self.user_id,
            token: self.token,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            created_at: self.created_at,
        }
    }
}

type StandingRow = (
    String,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

fn standing_from_row(
    (token_id, user_id, expires_at, owner_id, email, status, end): StandingRow,
) -> TokenStanding {
    TokenStanding {
        token_id,
        user_id,
        expires_at,
        owner: owner_id.map(|id| UserRecord {
            id,
            email: email.unwrap_or_default(),
            subscription_status: status,
            subscription_end_date: end,
        }),
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    subscription_status: Option<String>,
    subscription_end_date: Option<DateTime<Utc>>,
}

impl UserRow {
    fn into_record(self) -> UserRecord {
        UserRecord {
            id: self.id,
            email: self.email,
            subscription_status: self.subscription_status,
            subscription_end_date: self.subscription_end_date,
        }
    }
}
