//! Embedded SQLite, the zero-setup default: what its dialect of the SQL core
//! (`sql.rs`) does its own way. Same tables as PostgreSQL, with UUIDs and
//! timestamps as text and flags as a space-separated list; the `emails`
//! trigger numbers rows as PostgreSQL's does.

use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult};
use sqlx::{AssertSqlSafe, Pool, Sqlite, Transaction};

use super::sql::{Dialect, SqlStore};
use super::{ParseCache, StoreError, StoreResult};

pub type SqliteStore = SqlStore<Sqlite>;

type Tx = Transaction<'static, Sqlite>;

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

#[async_trait]
impl Dialect for Sqlite {
    /// SQLite has no arrays: lists travel as JSON, read with `json_each`.
    type UidList = String;
    type IdList = String;
    type Flags = String;
    type Time = String;

    /// Only this process's own writes are announced; `deliver` or an
    /// external writer in another process changes the file silently.
    const HEARS_EVERY_WRITER: bool = false;

    fn uid_list(uids: &[u32]) -> String {
        let items: Vec<String> = uids.iter().map(u32::to_string).collect();
        format!("[{}]", items.join(","))
    }

    fn id_list(ids: &[String]) -> String {
        serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
    }

    /// Flags are atoms, so a space-joined list splits back exactly.
    fn flags(list: &[String]) -> String {
        list.join(" ")
    }

    fn flag_list(stored: String) -> Vec<String> {
        stored.split_ascii_whitespace().map(str::to_owned).collect()
    }

    fn time(at: DateTime<Utc>) -> String {
        at.format(TIME_FORMAT).to_string()
    }

    /// Ours are `TIME_FORMAT`; other writers may add fractions or write RFC 3339.
    fn utc(stored: String) -> Option<DateTime<Utc>> {
        let trimmed = stored.trim();
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

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// `SQLITE_BUSY` and `SQLITE_LOCKED` (and their extended codes) after
    /// the busy timeout: the database lock stayed taken.
    fn is_conflict(error: &sqlx::Error) -> bool {
        error
            .as_database_error()
            .and_then(|e| e.code())
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6))
    }

    fn sql(statement: Cow<'static, str>) -> AssertSqlSafe<Cow<'static, str>> {
        AssertSqlSafe(Cow::Owned(adapt(&statement)))
    }

    async fn connect(url: &str, max_connections: u32) -> StoreResult<Pool<Sqlite>> {
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
        Ok(pool)
    }

    /// Write transactions take the database lock up front, so two writers
    /// queue on the busy timeout instead of failing to upgrade a read lock.
    async fn begin_write(pool: &Pool<Sqlite>) -> StoreResult<Tx> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_unsynced(pool: &Pool<Sqlite>) -> StoreResult<Tx> {
        Self::begin_write(pool).await
    }

    /// Other processes have no way to hear; this one's hub is told by the core.
    async fn notify(_tx: &mut Tx, _owners: &[String]) -> StoreResult<()> {
        Ok(())
    }

    async fn write_flags(
        tx: &mut Tx,
        changes: &[(String, Vec<String>)],
        modseq: i64,
    ) -> StoreResult<()> {
        for (id, flags) in changes {
            sqlx::query("UPDATE emails SET flags = $2, modseq = $3 WHERE id = $1")
                .bind(id)
                .bind(Self::flags(flags))
                .bind(modseq)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// One transaction, so SQLite syncs once rather than once per message.
    async fn save_parse_caches(
        pool: &Pool<Sqlite>,
        caches: &[(String, ParseCache)],
    ) -> StoreResult<()> {
        let mut tx = Self::begin_write(pool).await?;
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

    async fn save_header_blocks(
        pool: &Pool<Sqlite>,
        blocks: &[(String, Vec<u8>)],
    ) -> StoreResult<()> {
        let mut tx = Self::begin_write(pool).await?;
        for (id, block) in blocks {
            sqlx::query("UPDATE emails SET header_block = $2 WHERE id = $1")
                .bind(id)
                .bind(block)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A statement in PostgreSQL's spelling, in SQLite's. SQLite's values are
/// dynamically typed, so casts go; its write transactions lock the whole
/// database, so row locks go; it has no arrays, so `= ANY(list)` reads the
/// JSON list with `json_each`; and its multi-argument `max` is PostgreSQL's
/// `greatest`. The statements are the core's constants, never user input.
fn adapt(statement: &str) -> String {
    let mut out = String::with_capacity(statement.len() + 32);
    let mut rest = statement;
    while let Some(c) = rest.chars().next() {
        if let Some(cast) = rest.strip_prefix("::") {
            let end = cast
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(cast.len());
            rest = cast[end..].strip_prefix("[]").unwrap_or(&cast[end..]);
        } else if let Some(list) = rest.strip_prefix("= ANY(")
            && let Some(end) = list.find(')')
        {
            out.push_str("IN (SELECT value FROM json_each(");
            out.push_str(&adapt(&list[..end]));
            out.push_str("))");
            rest = &list[end + 1..];
        } else if let Some(after) = rest.strip_prefix(" FOR UPDATE") {
            rest = after;
        } else if let Some(after) = rest.strip_prefix("greatest(") {
            out.push_str("max(");
            rest = after;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The file behind a `sqlite:` URL, so its directory can be created.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
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

    #[test]
    fn postgres_spellings_become_sqlite_ones() {
        assert_eq!(
            adapt("SELECT id::text, 1::bigint FROM t WHERE id = $1::uuid"),
            "SELECT id, 1 FROM t WHERE id = $1"
        );
        assert_eq!(
            adapt("SELECT a FROM t WHERE t.id = ANY($1::uuid[]) ORDER BY a FOR UPDATE"),
            "SELECT a FROM t WHERE t.id IN (SELECT value FROM json_each($1)) ORDER BY a"
        );
        assert_eq!(
            adapt("SET x = greatest(s.x, excluded.x)\n    FOR UPDATE"),
            "SET x = max(s.x, excluded.x)\n   "
        );
        assert_eq!(
            adapt("coalesce(octet_length(raw), 0)::bigint + 1"),
            "coalesce(octet_length(raw), 0) + 1"
        );
    }
}
