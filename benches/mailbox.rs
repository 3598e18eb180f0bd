//! Opening and reading a mailbox of 10,000 messages on PostgreSQL, over the
//! wire: SELECT, the index fetch a phone makes, a full-text search, and 100
//! full-body fetches. Run with `cargo bench --bench mailbox`; it starts its
//! own throwaway PostgreSQL and prints one line per operation.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use support::{Backend, Client, Options, TestServer};

const MESSAGES: usize = 10_000;
const ADDRESS: &str = "box@bench.example";

fn message(n: usize, rng: &mut impl Rng) -> String {
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut body = String::new();
    for line in 0..rng.random_range(5..60) {
        let word = words[(n + line) % words.len()];
        body.push_str(&format!(
            "Line {line} of message {n}: {word} {word} {word} lorem ipsum dolor sit amet.\r\n"
        ));
    }
    if n % 1000 == 7 {
        body.push_str("The needle is here.\r\n");
    }
    if n.is_multiple_of(3) {
        format!(
            "From: Sender {n} <sender{n}@example.org>\r\nTo: {ADDRESS}\r\nSubject: Message {n}\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{n}@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b{n}\"\r\n\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
{body}\r\n--b{n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{body}</p>\r\n--b{n}--\r\n"
        )
    } else {
        format!(
            "From: Sender {n} <sender{n}@example.org>\r\nTo: {ADDRESS}\r\nSubject: Message {n}\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{n}@example.org>\r\n\r\n{body}"
        )
    }
}

async fn load(pool: &PgPool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let raws: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|n| message(n, &mut rng).into_bytes())
        .collect();
    for chunk in raws.chunks(1000) {
        sqlx::query(
            "INSERT INTO emails (mailbox_owner, subject, from_addr, raw, size)
             SELECT $1, 'bench', 'sender@example.org', r, length(r) FROM unnest($2::bytea[]) AS r",
        )
        .bind(ADDRESS)
        .bind(chunk)
        .execute(pool)
        .await
        .expect("load messages");
    }
}

async fn timed<F: std::future::Future<Output = String>>(label: &str, run: F) -> Duration {
    let started = Instant::now();
    let answer = run.await;
    let elapsed = started.elapsed();
    println!(
        "{label:<58} {:>9.1} ms  ({} bytes answered)",
        elapsed.as_secs_f64() * 1000.0,
        answer.len()
    );
    elapsed
}

#[tokio::main]
async fn main() {
    // The production cache times: the test default refreshes on every use.
    let options = Options {
        domain_ttl: Duration::from_secs(60),
        ban_ttl: Duration::from_secs(30),
        ..Options::default()
    };
    let server = TestServer::start_with(Backend::Postgres, options).await;
    let alice = server.user("alice@example.com").await;
    server.address(&alice, ADDRESS).await;
    let imap_server::store::Backend::Postgres(pool) = server.database.backend.clone() else {
        unreachable!("a PostgreSQL server")
    };
    let started = Instant::now();
    load(&pool).await;
    // In production autovacuum keeps statistics; a freshly bulk-loaded table
    // has none, and the planner then scans the mailbox for one UID.
    sqlx::query("ANALYZE emails")
        .execute(&pool)
        .await
        .expect("analyze");
    println!(
        "loaded {MESSAGES} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut client: Client = server.login(&alice).await;
    timed(
        "SELECT (10,000 messages)",
        client.run_raw(&format!("SELECT {ADDRESS}")),
    )
    .await;
    let index = "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)";
    timed(
        "UID FETCH 1:* (…ENVELOPE BODYSTRUCTURE), first time",
        client.run_raw(index),
    )
    .await;
    timed(
        "UID FETCH 1:* (…ENVELOPE BODYSTRUCTURE), cached",
        client.run_raw(index),
    )
    .await;
    timed(
        "UID SEARCH TEXT \"needle\"",
        client.run_raw("UID SEARCH TEXT \"needle\""),
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let uids: Vec<u32> = (0..100)
        .map(|_| rng.random_range(1..=MESSAGES as u32))
        .collect();
    timed("100 x UID FETCH n BODY.PEEK[]", async {
        let mut total = String::new();
        for uid in &uids {
            total.push_str(
                &client
                    .run_raw(&format!("UID FETCH {uid} BODY.PEEK[]"))
                    .await,
            );
        }
        total
    })
    .await;
}
