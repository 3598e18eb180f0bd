//! PostgreSQL, the production database: what its dialect of the SQL core
//! (`sql.rs`) does its own way. UIDs are assigned by the `emails` trigger
//! (see migrations/postgres), so rows from external writers behave like ours.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPoolOptions, PgQueryResult};
use sqlx::{AssertSqlSafe, Pool, Postgres, Transaction};

use super::sql::{Dialect, SqlStore};
use super::{ParseCache, StoreResult};

pub type PgStore = SqlStore<Postgres>;

type Tx = Transaction<'static, Postgres>;

#[async_trait]
impl Dialect for Postgres {
    type UidList = Vec<i64>;
    type IdList = Vec<String>;
    type Flags = Vec<String>;
    type Time = DateTime<Utc>;

    /// Triggers notify on every insert and delete, whoever the writer, and
    /// the store notifies its own flag changes; a lost LISTEN connection
    /// makes every session refresh when it comes back.
    const HEARS_EVERY_WRITER: bool = true;

    fn uid_list(uids: &[u32]) -> Vec<i64> {
        uids.iter().map(|&uid| i64::from(uid)).collect()
    }

    fn id_list(ids: &[String]) -> Vec<String> {
        ids.to_vec()
    }

    fn flags(list: &[String]) -> Vec<String> {
        list.to_vec()
    }

    fn flag_list(stored: Vec<String>) -> Vec<String> {
        stored
    }

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn utc(stored: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(stored)
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// `serialization_failure` and `deadlock_detected`.
    fn is_conflict(error: &sqlx::Error) -> bool {
        error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "40001" || code == "40P01")
    }

    /// The core's statements are PostgreSQL already.
    fn sql(statement: Cow<'static, str>) -> AssertSqlSafe<Cow<'static, str>> {
        AssertSqlSafe(statement)
    }

    async fn connect(url: &str, max_connections: u32) -> StoreResult<Pool<Postgres>> {
        // After PostgreSQL restarts, every pooled connection is dead. Each
        // is pinged before use and replaced if it fails, so a command gets
        // a live connection or, while the server is away, an error within
        // the acquire timeout (NO [UNAVAILABLE]), never a hang.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .test_before_acquire(true)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(pool)
    }

    /// Row locks (`FOR UPDATE`) order the writers; the transaction itself is plain.
    async fn begin_write(pool: &Pool<Postgres>) -> StoreResult<Tx> {
        Ok(pool.begin().await?)
    }

    /// One round trip: both statements go as one simple query.
    async fn begin_unsynced(pool: &Pool<Postgres>) -> StoreResult<Tx> {
        Ok(pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit TO OFF")
            .await?)
    }

    /// Sent at commit, once per owner, in one statement.
    async fn notify(tx: &mut Tx, owners: &[String]) -> StoreResult<()> {
        let mut owners: Vec<&str> = owners.iter().map(String::as_str).collect();
        owners.sort_unstable();
        owners.dedup();
        sqlx::query("SELECT pg_notify('imap_changes', owner) FROM unnest($1::text[]) AS owner")
            .bind(&owners)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One statement for all of them.
    async fn write_flags(
        tx: &mut Tx,
        changes: &[(String, Vec<String>)],
        modseq: i64,
    ) -> StoreResult<()> {
        let ids: Vec<&str> = changes.iter().map(|(id, _)| id.as_str()).collect();
        // Flags are atoms, so a space-joined list splits back exactly.
        let lists: Vec<String> = changes.iter().map(|(_, flags)| flags.join(" ")).collect();
        sqlx::query(
            "UPDATE emails e SET flags = CASE WHEN d.f = '' THEN '{}'::text[] ELSE string_to_array(d.f, ' ') END,
                 modseq = $3
             FROM unnest($1::text[], $2::text[]) AS d(id, f) WHERE e.id = d.id::uuid",
        )
        .bind(&ids)
        .bind(&lists)
        .bind(modseq)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// One statement per thousand messages rather than one per message: a
    /// first FETCH of a large mailbox parses everything at once.
    async fn save_parse_caches(
        pool: &Pool<Postgres>,
        caches: &[(String, ParseCache)],
    ) -> StoreResult<()> {
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
            .execute(pool)
            .await?;
        }
        Ok(())
    }

    /// One statement per thousand, as for the parse caches.
    async fn save_header_blocks(
        pool: &Pool<Postgres>,
        blocks: &[(String, Vec<u8>)],
    ) -> StoreResult<()> {
        for chunk in blocks.chunks(1000) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            let sections: Vec<&[u8]> = chunk.iter().map(|(_, block)| block.as_slice()).collect();
            sqlx::query(
                "UPDATE emails e SET header_block = d.block
                 FROM unnest($1::text[], $2::bytea[]) AS d(id, block) WHERE e.id = d.id::uuid",
            )
            .bind(&ids)
            .bind(&sections)
            .execute(pool)
            .await?;
        }
        Ok(())
    }
}
