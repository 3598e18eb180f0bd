//! The schema on PostgreSQL: the operators' SQL/schema.sql is the migrations'
//! schema, an existing deployment is upgraded in place, and rows from
//! external writers get UIDs and notifications with no help from the writer;
//! data migrations (forgetting stale cached answers) do what they say, on
//! PostgreSQL and SQLite.

mod support;

use std::collections::BTreeSet;

use imap_server::store::Database;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, Row};
use support::{Backend, TestServer};

/// Tables, columns, indexes, triggers and functions of the public schema.
async fn describe(pool: &PgPool) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text,
                coalesce(column_default, '')::text
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in columns {
        let parts: Vec<String> = (0..5).map(|i| row.get::<String, _>(i)).collect();
        facts.insert(format!("column {}", parts.join(" ")));
    }
    let indexes = sqlx::query(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in indexes {
        facts.insert(format!("index {}", row.get::<String, _>(0)));
    }
    let triggers = sqlx::query(
        "SELECT tgname::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in triggers {
        facts.insert(format!("trigger {}", row.get::<String, _>(0)));
    }
    let functions = sqlx::query(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in functions {
        facts.insert(format!("function {}", row.get::<String, _>(0)));
    }
    let checks = sqlx::query(
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in checks {
        facts.insert(format!("constraint {}", row.get::<String, _>(0)));
    }
    facts
}

#[tokio::test]
async fn the_operators_schema_file_is_the_migrations_schema() {
    let migrated = Database::open(&support::postgres::fresh_database_url(), 2)
        .await
        .unwrap();
    let imap_server::store::Backend::Postgres(migrated) = &migrated.backend else {
        unreachable!("a postgres URL opens a postgres database")
    };
    let by_hand = PgPool::connect(&support::postgres::fresh_database_url())
        .await
        .unwrap();
    let schema =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SQL/schema.sql")).unwrap();
    sqlx::raw_sql(AssertSqlSafe(schema))
        .execute(&by_hand)
        .await
        .unwrap();
    let (from_migrations, from_file) = (describe(migrated).await, describe(&by_hand).await);
    assert!(
        from_migrations.len() > 60,
        "schema looks empty: {from_migrations:?}"
    );
    let only_migrations: Vec<_> = from_migrations.difference(&from_file).collect();
    let only_file: Vec<_> = from_file.difference(&from_migrations).collect();
    assert!(
        only_migrations.is_empty() && only_file.is_empty(),
        "SQL/schema.sql differs from migrations/postgres:\nonly in migrations: {only_migrations:#?}\nonly in schema.sql: {only_file:#?}"
    );
}

/// The deployment's tables as they exist before this server: original columns only.
const DEPLOYMENT: &str = "
CREATE TABLE users (id uuid PRIMARY KEY, email text UNIQUE, subscription_status text,
                    subscription_end_date timestamptz, created_at timestamptz DEFAULT now());
CREATE TABLE imap_tokens (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid, token text UNIQUE,
                          expires_at timestamptz, last_used_at timestamptz, created_at timestamptz DEFAULT now());
CREATE TABLE domains (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), domain text, user_id uuid,
                      active boolean DEFAULT true, cloudflare_domain boolean DEFAULT false, created_at timestamptz DEFAULT now());
CREATE TABLE inbox (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email_address text UNIQUE, user_id uuid,
                    created_at timestamptz DEFAULT now());
CREATE TABLE bans (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), scope text, value text, match_type text,
                   status text, created_at timestamptz DEFAULT now());
CREATE TABLE emails (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), mailbox_owner text, mailbox text DEFAULT 'INBOX',
                     subject text, body text, html text, from_addr text, to_addrs text, timestamp timestamptz,
                     flags text[], size integer, created_at timestamptz DEFAULT now());
INSERT INTO users VALUES ('11111111-1111-4111-8111-111111111111', 'old@example.com', 'active', NULL, now());
INSERT INTO imap_tokens (user_id, token) VALUES ('11111111-1111-4111-8111-111111111111', 'legacy-token');
INSERT INTO inbox (email_address, user_id) VALUES ('kept@old.example', '11111111-1111-4111-8111-111111111111');
INSERT INTO emails (mailbox_owner, subject, body, from_addr, to_addrs, timestamp, flags, size) VALUES
  ('kept@old.example', 'first', 'one', 'a@x.example', 'kept@old.example', '2025-01-01 10:00:00+00', '{}', 3),
  ('kept@old.example', 'second', 'two', 'b@x.example', 'kept@old.example', '2025-01-02 10:00:00+00', ARRAY['\\Seen'], 3),
  ('stray@old.example', 'third', 'three', 'c@x.example', 'stray@old.example', '2025-01-03 10:00:00+00', '{}', 5);
";

const ORIGINAL_COLUMNS: &str =
    "SELECT id::text, mailbox_owner, mailbox, subject, body, html, from_addr, to_addrs,
    timestamp::text, flags::text, size, created_at::text FROM emails ORDER BY id";

#[tokio::test]
async fn an_existing_deployment_is_upgraded_in_place() {
    let url = support::postgres::fresh_database_url();
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(DEPLOYMENT).execute(&pool).await.unwrap();
    let before: Vec<String> = sqlx::query(ORIGINAL_COLUMNS)
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{:?}",
                (0..12)
                    .map(|i| row.try_get::<Option<String>, _>(i).ok().flatten())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    Database::open(&url, 2)
        .await
        .expect("migrations run on the deployment's tables");
    // Twice is harmless.
    Database::open(&url, 2)
        .await
        .expect("migrations are idempotent");
    let after: Vec<String> = sqlx::query(ORIGINAL_COLUMNS)
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{:?}",
                (0..12)
                    .map(|i| row.try_get::<Option<String>, _>(i).ok().flatten())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert_eq!(before, after, "no original column of any row changed");
    let uids: Vec<(String, i64, Option<i64>)> =
        sqlx::query_as("SELECT subject, uid, inbox_uid FROM emails ORDER BY timestamp")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        uids,
        vec![
            ("first".into(), 1, Some(1)),
            ("second".into(), 2, Some(2)),
            ("third".into(), 1, None)
        ]
    );
    // New mail continues after the old.
    sqlx::query(
        "INSERT INTO emails (mailbox_owner, subject) VALUES ('kept@old.example', 'fourth')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (uid, inbox_uid): (i64, i64) =
        sqlx::query_as("SELECT uid, inbox_uid FROM emails WHERE subject = 'fourth'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((uid, inbox_uid), (3, 3));
}

#[tokio::test]
async fn an_upgraded_deployment_serves_its_old_users_and_mail() {
    let url = support::postgres::fresh_database_url();
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(DEPLOYMENT).execute(&pool).await.unwrap();
    drop(pool);
    let server = TestServer::start_on(Backend::Postgres, url).await;
    let mut client = server.connect().await;
    assert!(
        client
            .run("LOGIN old@example.com legacy-token")
            .await
            .is_ok()
    );
    let status = client
        .run("STATUS kept@old.example (MESSAGES UNSEEN UIDNEXT)")
        .await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"kept@old.example\" (MESSAGES 2 UNSEEN 1 UIDNEXT 3)"]
    );
    let inbox = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(inbox.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 2)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_writers_get_ascending_uids_and_notify() {
    let server = TestServer::start(Backend::Postgres).await;
    let alice = server.alice_with(&["box@alice.example"]).await;
    let imap_server::store::Backend::Postgres(pool) = server.database.backend.clone() else {
        unreachable!("postgres test")
    };
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("imap_changes").await.unwrap();

    const PER_WRITER: usize = 50;
    let writer = |name: &'static str| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for n in 0..PER_WRITER {
                let (uid,): (i64,) = sqlx::query_as(
                    "INSERT INTO emails (mailbox_owner, subject, from_addr, to_addrs, body)
                     VALUES ('Box@Alice.Example', $1, 'x@y.example', 'box@alice.example', 'hi') RETURNING uid",
                )
                .bind(format!("{name} {n}"))
                .fetch_one(&pool)
                .await
                .unwrap();
                seen.push(uid);
            }
            seen
        })
    };
    let (a, b) = (writer("a"), writer("b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for seen in [&a, &b] {
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "each writer sees ascending UIDs: {seen:?}"
        );
    }
    let all: BTreeSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(
        all,
        (1..=(2 * PER_WRITER) as i64).collect(),
        "UIDs are dense and never shared"
    );
    let inbox: Vec<(i64,)> =
        sqlx::query_as("SELECT inbox_uid FROM emails WHERE inbox_owner = $1 ORDER BY inbox_uid")
            .bind(&alice.id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        inbox.len(),
        2 * PER_WRITER,
        "every message is in the unified INBOX"
    );

    let notification = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification arrives")
        .unwrap();
    assert!(
        [alice.id.as_str(), "box@alice.example"].contains(&notification.payload()),
        "{}",
        notification.payload()
    );
    let mut client = server.login(&alice).await;
    let status = client
        .run("STATUS box@alice.example (MESSAGES UIDNEXT)")
        .await;
    assert_eq!(
        status.untagged,
        vec![format!(
            "* STATUS \"box@alice.example\" (MESSAGES 100 UIDNEXT 101)"
        )]
    );
}

#[tokio::test]
async fn external_writers_on_sqlite_get_uids_too() {
    let server = TestServer::start(Backend::Sqlite).await;
    let alice = server.user("alice@example.com").await;
    server.address(&alice, "box@alice.example").await;
    server
        .execute("INSERT INTO emails (mailbox_owner, subject, from_addr) VALUES ('box@alice.example', 'a', 'x@y.example')")
        .await;
    server
        .execute("INSERT INTO emails (mailbox_owner, subject, from_addr) VALUES ('box@alice.example', 'b', 'x@y.example')")
        .await;
    let mut client = server.login(&alice).await;
    let status = client
        .run("STATUS box@alice.example (MESSAGES UIDNEXT)")
        .await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"box@alice.example\" (MESSAGES 2 UIDNEXT 3)"]
    );
    let inbox = client.run("STATUS INBOX (MESSAGES UIDNEXT)").await;
    assert_eq!(
        inbox.untagged,
        vec!["* STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 3)"]
    );
}

/// Cached answers as an earlier version left them: one with raw UTF-8 (the
/// old ENVELOPE of a message with an 8-bit subject), one plain ASCII.
const OLD_ANSWERS: [(&str, &str, &str, &str); 2] = [
    (
        "8bit@example.com",
        "(NIL {5}\r\ncafé NIL NIL NIL NIL NIL NIL NIL NIL)",
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
    ),
    (
        "ascii@example.com",
        "(NIL {4}\r\ncafe NIL NIL NIL NIL NIL NIL NIL NIL)",
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
    ),
];

/// Owner, envelope, bodystructure, body_basic.
type CachedAnswers = (String, Option<String>, Option<String>, Option<String>);

/// The 8-bit answers are forgotten, the ASCII ones kept.
fn answers_after_the_upgrade() -> Vec<CachedAnswers> {
    let (owner, envelope, structure, body) = OLD_ANSWERS[1];
    vec![
        ("8bit@example.com".to_owned(), None, None, None),
        (
            owner.to_owned(),
            Some(envelope.to_owned()),
            Some(structure.to_owned()),
            Some(body.to_owned()),
        ),
    ]
}

#[tokio::test]
async fn cached_answers_with_8bit_text_are_computed_again_after_the_upgrade() {
    let pool = PgPool::connect(&support::postgres::fresh_database_url())
        .await
        .unwrap();
    for migration in [
        include_str!("../migrations/postgres/0001_foundation.sql"),
        include_str!("../migrations/postgres/0002_message_cache.sql"),
    ] {
        sqlx::raw_sql(migration).execute(&pool).await.unwrap();
    }
    for (owner, envelope, structure, body) in OLD_ANSWERS {
        sqlx::query(
            "INSERT INTO emails (mailbox_owner, imap_size, envelope, bodystructure, body_basic)
             VALUES ($1, 0, $2, $3, $4)",
        )
        .bind(owner)
        .bind(envelope)
        .bind(structure)
        .bind(body)
        .execute(&pool)
        .await
        .unwrap();
    }
    for _ in 0..2 {
        sqlx::raw_sql(include_str!(
            "../migrations/postgres/0003_seven_bit_answers.sql"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let rows: Vec<CachedAnswers> = sqlx::query_as(
        "SELECT mailbox_owner, envelope, bodystructure, body_basic FROM emails ORDER BY mailbox_owner",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, answers_after_the_upgrade());
}

#[tokio::test]
async fn cached_answers_with_8bit_text_are_computed_again_on_sqlite_too() {
    use sqlx::Connection as _;
    let mut db = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    for migration in [
        include_str!("../migrations/sqlite/0001_foundation.sql"),
        include_str!("../migrations/sqlite/0002_message_cache.sql"),
    ] {
        sqlx::raw_sql(migration).execute(&mut db).await.unwrap();
    }
    for (owner, envelope, structure, body) in OLD_ANSWERS {
        sqlx::query(
            "INSERT INTO emails (mailbox_owner, imap_size, envelope, bodystructure, body_basic)
             VALUES (?, 0, ?, ?, ?)",
        )
        .bind(owner)
        .bind(envelope)
        .bind(structure)
        .bind(body)
        .execute(&mut db)
        .await
        .unwrap();
    }
    sqlx::raw_sql(include_str!(
        "../migrations/sqlite/0003_seven_bit_answers.sql"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    let rows: Vec<CachedAnswers> = sqlx::query_as(
        "SELECT mailbox_owner, envelope, bodystructure, body_basic FROM emails ORDER BY mailbox_owner",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(rows, answers_after_the_upgrade());
}

#[tokio::test]
async fn an_upgrade_stops_at_addresses_that_differ_only_in_case_and_names_them() {
    let url = support::postgres::fresh_database_url();
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(DEPLOYMENT).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO inbox (email_address, user_id) VALUES
           ('Box@Global.test', '11111111-1111-4111-8111-111111111111'),
           ('box@global.test', NULL),
           ('other@global.test', NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let Err(error) = Database::open(&url, 2).await else {
        panic!("the migration must refuse to pick one of two owners");
    };
    let message = error.to_string();
    assert!(
        message.contains("differ only in case")
            && message.contains("Box@Global.test (user 11111111-1111-4111-8111-111111111111)")
            && message.contains("box@global.test (user none)")
            && !message.contains("other@global.test"),
        "{message}"
    );
    // Nothing was half-done: both rows are still there, and once one is
    // removed the upgrade goes through.
    let (rows,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM inbox WHERE lower(email_address) = 'box@global.test'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, 2);
    sqlx::query("DELETE FROM inbox WHERE email_address = 'box@global.test'")
        .execute(&pool)
        .await
        .unwrap();
    Database::open(&url, 2)
        .await
        .expect("the upgrade runs once the conflict is resolved");
}
