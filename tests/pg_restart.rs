//! PostgreSQL goes away and comes back while many sessions work
//! (docs/ARCHITECTURE.md, Outages). Fifty sessions run a mixed workload
//! (LOGIN, SELECT, APPEND, FETCH, STORE, EXPUNGE, IDLE, LOGOUT) and five
//! more idle on one address, while PostgreSQL is restarted with
//! `pg_ctl restart -m fast`, and later stopped for seven seconds and
//! started again. The rules:
//!
//! * Every command is answered `OK` or, while the database is away,
//!   `NO [UNAVAILABLE]`: no BAD, no other NO, no untagged line that is not a
//!   mailbox update. The server closes no connection: the only BYE is
//!   LOGOUT's, and no connection ends without it.
//! * A session idling through the outage sees mail delivered by plain SQL
//!   INSERT (as the deployment's receiver writes it) right after PostgreSQL
//!   is back, while the LISTEN connection is still reconnecting; and it sees
//!   a change no trigger announces (a flag set by SQL), which only the
//!   refresh everyone is asked for after the reconnect can find.
//! * Everything works again within seconds, without restarting the server;
//!   the time from PostgreSQL's return to a LOGIN, SELECT and APPEND that all
//!   succeed is measured and printed (`--nocapture`), never asserted.
//! * Every APPEND answered OK is in the database at the end. (One answered
//!   NO may be there too: its commit can succeed just before the connection
//!   dies, and a client that retries stores it twice, as with any server.)
//!
//! The cluster is this test's own: the shared one serves the other tests in
//! parallel and must never go down.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use support::postgres::PrivateCluster;
use support::{Backend, Client, Options, Response, TestServer, User};

/// Sessions running the mixed workload, and the users they share.
const WORKERS: usize = 50;
const USERS: usize = 10;
/// Sessions idling on `WATCHED` throughout.
const WATCHERS: usize = 5;
const WATCHED: &str = "watch@watch.example";
/// Rounds of the workload before a session logs out and starts again.
const ROUNDS_PER_SESSION: usize = 8;
/// How long the stop-and-start variant leaves PostgreSQL down: longer than
/// the server waits for a database connection (5 s), so that commands are
/// answered `NO [UNAVAILABLE]` rather than just delayed until it is back.
const DOWNTIME: Duration = Duration::from_secs(7);
/// How long the test waits for the server to catch up before calling it
/// broken: generous, since the machine may be busy with other work.
const CATCH_UP: Duration = Duration::from_secs(60);

/// What the sessions saw, gathered for the verdict at the end.
#[derive(Default)]
struct Record {
    /// Every answer that broke a rule, with what was sent.
    violations: Vec<String>,
    /// (user, UID) of every APPEND answered OK.
    appended: Vec<(usize, u32)>,
    /// Answers `NO [UNAVAILABLE]`: proof that the outage was noticed.
    unavailable: usize,
    /// The longest a workload command waited for its answer.
    slowest: Duration,
}

type Shared = Arc<Mutex<Record>>;

fn note(record: &Shared, violation: String) {
    record
        .lock()
        .expect("record lock")
        .violations
        .push(violation);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Unavailable,
    Wrong,
}

/// An untagged line a session may be sent at any time: a mailbox update or
/// a status the command itself asked for. A BYE is never one of them.
fn is_expected_untagged(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("* ") else {
        return false;
    };
    let mut words = rest.split(' ');
    let first = words.next().unwrap_or("");
    if first.parse::<u32>().is_ok() {
        let second = words.next().unwrap_or("");
        return matches!(second, "EXISTS" | "RECENT" | "EXPUNGE" | "FETCH");
    }
    matches!(first, "FLAGS" | "OK" | "CAPABILITY" | "SEARCH")
}

/// Judges one answer against the rules; `command` names it in the record.
fn judge(record: &Shared, command: &str, response: &Response) -> Verdict {
    for line in &response.untagged {
        if !is_expected_untagged(line) {
            note(
                record,
                format!("{command}: unexpected untagged line {line:?}"),
            );
        }
    }
    match response.status() {
        "OK" => Verdict::Ok,
        "NO" if response.tail().starts_with("NO [UNAVAILABLE]") => {
            record.lock().expect("record lock").unavailable += 1;
            Verdict::Unavailable
        }
        _ => {
            note(record, format!("{command}: answered {:?}", response.tagged));
            Verdict::Wrong
        }
    }
}

fn message(subject: &str) -> String {
    format!(
        "From: Load <load@example.org>\r\nTo: someone@example.com\r\nSubject: {subject}\r\n\
         Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n\r\n\
         Body of {subject}.\r\n"
    )
}

/// The UID in `[APPENDUID v uid]`.
fn appended_uid(response: &Response) -> Option<u32> {
    let code = response.tail().split("[APPENDUID ").nth(1)?;
    code.split([' ', ']']).nth(1)?.parse().ok()
}

/// One workload session's identity.
struct Worker {
    id: usize,
    user_index: usize,
    user: User,
    record: Shared,
    stop: Arc<AtomicBool>,
}

impl Worker {
    async fn run(self, server: Arc<TestServer>) {
        let mut sessions = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let mut client = server.connect().await;
            self.session(&mut client, sessions).await;
            sessions += 1;
        }
    }

    /// Runs `command` and judges its answer, noting how long it took.
    async fn ask(&self, client: &mut Client, name: &str, command: &str) -> Verdict {
        let started = Instant::now();
        let response = client.run(command).await;
        self.took(started);
        self.judge(name, &response)
    }

    fn took(&self, started: Instant) {
        let mut record = self.record.lock().expect("record lock");
        record.slowest = record.slowest.max(started.elapsed());
    }

    fn judge(&self, command: &str, response: &Response) -> Verdict {
        judge(
            &self.record,
            &format!("worker {}: {command}", self.id),
            response,
        )
    }

    /// Logs in (retrying while the database is away), works a few rounds,
    /// and logs out.
    async fn session(&self, client: &mut Client, session: usize) {
        let login = format!("LOGIN {} {}", self.user.email, self.user.token);
        loop {
            match self.ask(client, "LOGIN", &login).await {
                Verdict::Ok => break,
                Verdict::Unavailable if !self.stop.load(Ordering::Relaxed) => pause().await,
                _ => return self.log_out(client).await,
            }
        }
        let mut selected = false;
        for round in 0..ROUNDS_PER_SESSION {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if !selected {
                selected = self.ask(client, "SELECT", "SELECT INBOX").await == Verdict::Ok;
                if !selected {
                    pause().await;
                    continue;
                }
            }
            self.round(client, &format!("w{}-s{session}-r{round}", self.id))
                .await;
        }
        self.log_out(client).await;
    }

    /// One round of the mixed workload in the selected INBOX.
    async fn round(&self, client: &mut Client, name: &str) {
        let kept = self.append(client, &format!("{name}-kept")).await;
        if let Some(uid) = kept {
            self.record
                .lock()
                .expect("record lock")
                .appended
                .push((self.user_index, uid));
        }
        // A message of its own to expunge, so that what is kept stays.
        if let Some(scratch) = self.append(client, &format!("{name}-scratch")).await {
            let store = format!("UID STORE {scratch} +FLAGS.SILENT (\\Deleted)");
            if self.ask(client, "STORE \\Deleted", &store).await == Verdict::Ok {
                self.ask(client, "EXPUNGE", "EXPUNGE").await;
            }
        }
        self.ask(client, "FETCH", "UID FETCH 1:* (FLAGS)").await;
        if let Some(uid) = kept {
            let store = format!("UID STORE {uid} +FLAGS (\\Seen)");
            self.ask(client, "STORE \\Seen", &store).await;
        }
        self.idle_briefly(client).await;
    }

    /// APPEND with a non-synchronizing literal; the UID when answered OK.
    async fn append(&self, client: &mut Client, subject: &str) -> Option<u32> {
        let body = message(subject);
        let tag = client.tag();
        let command = format!("{tag} APPEND INBOX {{{}+}}\r\n{body}\r\n", body.len());
        let started = Instant::now();
        client.send(command.as_bytes()).await;
        let response = client.until_tagged(&tag).await;
        self.took(started);
        if self.judge("APPEND", &response) != Verdict::Ok {
            return None;
        }
        let uid = appended_uid(&response);
        if uid.is_none() {
            note(
                &self.record,
                format!("APPEND OK without APPENDUID: {response:?}"),
            );
        }
        uid
    }

    async fn idle_briefly(&self, client: &mut Client) {
        let tag = client.tag();
        client.send(format!("{tag} IDLE\r\n").as_bytes()).await;
        let continuation = client.line().await;
        if !continuation.starts_with("+ ") {
            note(
                &self.record,
                format!("worker {}: IDLE answered {continuation:?}", self.id),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.send(b"DONE\r\n").await;
        let response = client.until_tagged(&tag).await;
        self.judge("IDLE", &response);
    }

    /// LOGOUT: BYE, OK, and the end of the connection, outage or not.
    async fn log_out(&self, client: &mut Client) {
        let response = client.run("LOGOUT").await;
        let byes = response
            .untagged
            .iter()
            .filter(|l| l.starts_with("* BYE"))
            .count();
        if byes != 1 || !response.is_ok() || !client.is_closed().await {
            note(
                &self.record,
                format!("worker {}: LOGOUT answered {response:?}", self.id),
            );
        }
    }
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// What one idling session has been told.
#[derive(Default)]
struct Watched {
    exists: u32,
    fetches: Vec<String>,
}

/// A session that selects `WATCHED` and idles until `stop`, noting every
/// update; any line that is not one is a violation, and so is the
/// connection ending.
async fn watch(
    server: Arc<TestServer>,
    user: User,
    seen: Arc<Mutex<Watched>>,
    record: Shared,
    stop: Arc<AtomicBool>,
) {
    let mut client = server.login(&user).await;
    let select = client.run(&format!("SELECT {WATCHED}")).await;
    assert!(select.is_ok(), "watcher SELECT: {select:?}");
    for line in &select.untagged {
        note_update(&seen, line);
    }
    let tag = client.tag();
    client.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    let continuation = client.line().await;
    assert!(continuation.starts_with("+ "), "IDLE: {continuation}");
    while !stop.load(Ordering::Relaxed) {
        match client.line_within(Duration::from_millis(300)).await {
            Err(()) => {}
            Ok(Some(line)) if is_expected_untagged(&line) && !line.starts_with("* OK") => {
                note_update(&seen, &line);
            }
            Ok(Some(line)) => note(&record, format!("idling session was sent {line:?}")),
            Ok(None) => {
                note(&record, "idling session was disconnected".into());
                return;
            }
        }
    }
    client.send(b"DONE\r\n").await;
    judge(&record, "watcher DONE", &client.until_tagged(&tag).await);
}

fn note_update(seen: &Mutex<Watched>, line: &str) {
    let mut seen = seen.lock().expect("watched lock");
    if let Some(count) = line
        .strip_prefix("* ")
        .and_then(|rest| rest.strip_suffix(" EXISTS"))
    {
        seen.exists = count.parse().expect("an EXISTS count");
    } else if line.contains(" FETCH ") {
        seen.fetches.push(line.to_owned());
    }
}

/// How PostgreSQL goes away.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `pg_ctl restart -m fast`.
    Restart,
    /// `pg_ctl stop -m fast`, `DOWNTIME`, `pg_ctl start`.
    StopAndStart,
}

/// Runs `pg_ctl` off the runtime's threads, which serve the sessions.
async fn pg_ctl(cluster: &Arc<PrivateCluster>, action: fn(&PrivateCluster) -> Result<(), String>) {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || action(&cluster))
        .await
        .expect("pg_ctl task")
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Takes PostgreSQL away as `outage` says; returns once it accepts
/// connections again.
async fn take_away(cluster: &Arc<PrivateCluster>, outage: Outage) {
    match outage {
        Outage::Restart => pg_ctl(cluster, PrivateCluster::restart_fast).await,
        Outage::StopAndStart => {
            pg_ctl(cluster, PrivateCluster::stop_fast).await;
            tokio::time::sleep(DOWNTIME).await;
            pg_ctl(cluster, PrivateCluster::start_again).await;
        }
    }
}

/// Runs `sql` (with `$1` bound to `value`) on a connection of its own, as
/// the deployment's mail receiver does, trying again while PostgreSQL is
/// still starting.
async fn external_write(url: &str, sql: &'static str, value: &str) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let attempt = async {
            let mut connection = sqlx::PgConnection::connect(url).await?;
            sqlx::query(sql)
                .bind(value)
                .execute(&mut connection)
                .await?;
            connection.close().await
        };
        match attempt.await {
            Ok(()) => return,
            Err(error) if Instant::now() < deadline => {
                eprintln!("external write not yet possible: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("external write failed: {error}"),
        }
    }
}

async fn deliver_by_sql(url: &str, subject: &str) {
    external_write(
        url,
        "INSERT INTO emails (mailbox_owner, subject, from_addr, to_addrs, body)
         VALUES ('watch@watch.example', $1, 'sender@example.org', 'watch@watch.example', 'hi')",
        subject,
    )
    .await;
}

/// A flag change whose notification is lost, as one made while nobody
/// listened: it takes its mod-sequence from the user's counter as every
/// change does, but sets it itself, so the trigger sends no NOTIFY (the
/// server's own writes notify in their transaction). Only a refresh of the
/// view reports it.
async fn flag_by_sql(url: &str, flag: &str) {
    external_write(
        url,
        "UPDATE emails SET flags = array_append(coalesce(flags, '{}'), $1),
                           modseq = imap_next_modseq(coalesce(inbox_owner, mailbox_owner))
         WHERE mailbox_owner = 'watch@watch.example' AND subject = 'probe'",
        flag,
    )
    .await;
}

/// Seconds from PostgreSQL's return until a new session's LOGIN, SELECT
/// and APPEND all succeed.
async fn time_to_recover(server: &TestServer, user: &User, back: Instant) -> Duration {
    let deadline = back + CATCH_UP;
    loop {
        let mut client = server.connect().await;
        let login = client
            .run(&format!("LOGIN {} {}", user.email, user.token))
            .await;
        let works = login.is_ok() && client.run("SELECT INBOX").await.is_ok() && {
            let body = message("recovery-probe");
            let tag = client.tag();
            let command = format!("{tag} APPEND INBOX {{{}+}}\r\n{body}\r\n", body.len());
            client.send(command.as_bytes()).await;
            client.until_tagged(&tag).await.is_ok()
        };
        client.run("LOGOUT").await;
        if works {
            return back.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover within {CATCH_UP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every idling session has been told of `messages` messages
/// and, if given, of `flag` on the probe.
async fn watchers_catch_up(watched: &[Arc<Mutex<Watched>>], messages: u32, flag: Option<&str>) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let behind: Vec<String> = watched
            .iter()
            .enumerate()
            .filter_map(|(i, seen)| {
                let seen = seen.lock().expect("watched lock");
                let flagged =
                    flag.is_none_or(|flag| seen.fetches.iter().any(|line| line.contains(flag)));
                (seen.exists != messages || !flagged).then(|| {
                    format!(
                        "watcher {i}: {} EXISTS of {messages}, {flag:?} {}",
                        seen.exists,
                        if flagged { "seen" } else { "not seen" }
                    )
                })
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "idling sessions missed what changed during the outage: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that a flag set by SQL is announced to nobody: without that, the
/// catch-up after an outage would prove nothing.
async fn assert_unannounced(watched: &[Arc<Mutex<Watched>>], flag: &str) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    for seen in watched {
        let seen = seen.lock().expect("watched lock");
        assert!(
            !seen.fetches.iter().any(|line| line.contains(flag)),
            "a flag set by SQL was announced: {:?}",
            seen.fetches
        );
    }
}

/// The user who owns `WATCHED`, which holds one message, "probe".
async fn watched_address(server: &TestServer) -> User {
    let watcher = server.user("watcher@example.com").await;
    server
        .domain("watch.example", Some(&watcher), true, false)
        .await;
    server.address(&watcher, WATCHED).await;
    deliver_by_sql(&server.url, "probe").await;
    watcher
}

/// Ends the server's LISTEN connection from the database's side, as a
/// failover or an administrator's `pg_terminate_backend` does.
async fn cut_listen_connection(url: &str) {
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test database");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut connection)
    .await
    .expect("terminate the LISTEN connection");
    assert_eq!(cut, [true], "the server's one LISTEN connection");
}

/// Reads what an idling session is sent until a line contains `needle`.
async fn idle_until(client: &mut Client, needle: &str) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + CATCH_UP;
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match client.line_within(Duration::from_millis(300)).await {
            Err(()) => {}
            Ok(Some(line)) if line.contains(needle) => return Ok(()),
            Ok(Some(line)) => lines.push(line),
            Ok(None) => break,
        }
    }
    Err(lines)
}

/// A server on the shared cluster and a session idling on `WATCHED`, with
/// the tag of its IDLE.
async fn idling_on_watched() -> (TestServer, Client, String) {
    let server = TestServer::start(Backend::Postgres).await;
    let watcher = watched_address(&server).await;
    let mut client = server.login(&watcher).await;
    assert!(client.run(&format!("SELECT {WATCHED}")).await.is_ok());
    let tag = client.tag();
    client.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(client.line().await.starts_with("+ "));
    (server, client, tag)
}

/// sqlx reconnects a lost LISTEN connection by itself; that reconnect,
/// too, must make every view look again, or what changed while nobody
/// listened stays unreported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idling_session_catches_up_when_the_listen_connection_is_cut() {
    let (server, mut client, tag) = idling_on_watched().await;

    flag_by_sql(&server.url, "\\Flagged").await;
    assert_eq!(
        client.line_within(Duration::from_secs(1)).await,
        Err(()),
        "a flag set by SQL is announced to nobody"
    );
    cut_listen_connection(&server.url).await;
    if let Err(lines) = idle_until(&mut client, "\\Flagged").await {
        panic!("the idling session was never told of the change; it was sent {lines:?}");
    }
    client.send(b"DONE\r\n").await;
    assert!(client.until_tagged(&tag).await.is_ok());
}

/// A wake-up whose refresh fails (the database errs) is not forgotten: the
/// session looks again by itself and reports the change once the database
/// answers, with no further notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idling_session_looks_again_after_a_refresh_fails() {
    let (server, mut client, tag) = idling_on_watched().await;

    // The delivery's notification arrives when the mail cannot be read:
    // the same transaction takes the table away.
    let mut connection = sqlx::PgConnection::connect(&server.url)
        .await
        .expect("connect to the test database");
    let mut transaction = connection.begin().await.expect("begin");
    for statement in [
        "INSERT INTO emails (mailbox_owner, subject, from_addr, body)
         VALUES ('watch@watch.example', 'during', 'sender@example.org', 'hi')",
        "ALTER TABLE emails RENAME TO emails_away",
    ] {
        sqlx::query(statement)
            .execute(&mut *transaction)
            .await
            .expect(statement);
    }
    transaction.commit().await.expect("commit");
    assert_eq!(
        client.line_within(Duration::from_secs(2)).await,
        Err(()),
        "nothing can be reported while the mail cannot be read"
    );
    sqlx::query("ALTER TABLE emails_away RENAME TO emails")
        .execute(&mut connection)
        .await
        .expect("bring the table back");
    if let Err(lines) = idle_until(&mut client, "* 2 EXISTS").await {
        panic!("the idling session was never told of the delivery; it was sent {lines:?}");
    }
    client.send(b"DONE\r\n").await;
    assert!(client.until_tagged(&tag).await.is_ok());
}

/// The UIDs in each user's INBOX, read from the database.
async fn stored_uids(server: &TestServer, user: &User) -> Vec<u32> {
    let imap_server::store::Backend::Postgres(pool) = &server.database.backend else {
        unreachable!("this test runs on PostgreSQL");
    };
    let uids: Vec<i64> =
        sqlx::query_scalar("SELECT uid FROM emails WHERE mailbox_owner = $1 AND mailbox = 'INBOX'")
            .bind(&user.id)
            .fetch_all(pool)
            .await
            .expect("read the stored UIDs");
    uids.into_iter().map(|uid| uid as u32).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_survive_postgresql_restarts_under_load() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(PrivateCluster::start)
            .await
            .expect("start"),
    );
    let url = cluster.fresh_database_url("restart");
    // Every session comes from 127.0.0.1.
    let mut options = Options::default();
    options.limits.max_connections_per_ip = 200;
    let server = Arc::new(TestServer::start_on_with(Backend::Postgres, url.clone(), options).await);

    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(server.user(&format!("user{i}@example.com")).await);
    }
    let watcher = watched_address(&server).await;
    let mut delivered = 1;

    let record = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watched: Vec<Arc<Mutex<Watched>>> = (0..WATCHERS).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for seen in &watched {
        tasks.push(tokio::spawn(watch(
            server.clone(),
            watcher.clone(),
            seen.clone(),
            record.clone(),
            stop.clone(),
        )));
    }
    watchers_catch_up(&watched, delivered, None).await;
    for id in 0..WORKERS {
        let worker = Worker {
            id,
            user_index: id % USERS,
            user: users[id % USERS].clone(),
            record: record.clone(),
            stop: stop.clone(),
        };
        tasks.push(tokio::spawn(worker.run(server.clone())));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    for (outage, flag) in [
        (Outage::Restart, "\\Flagged"),
        (Outage::StopAndStart, "\\Answered"),
    ] {
        // Set before the outage and announced to nobody: only the refresh
        // everyone is asked for once LISTEN is back can report it.
        flag_by_sql(&url, flag).await;
        assert_unannounced(&watched, flag).await;
        let before = record.lock().expect("record lock").unavailable;
        take_away(&cluster, outage).await;
        let back = Instant::now();
        // Right after PostgreSQL's return, while the LISTEN connection is
        // still reconnecting (or just back). Nothing else is written to the
        // watched address: a later notification would refresh the views and
        // hide a lost one.
        deliver_by_sql(&url, &format!("{outage:?} at once")).await;
        delivered += 1;
        let recovery = time_to_recover(&server, &users[0], back).await;
        watchers_catch_up(&watched, delivered, Some(flag)).await;
        let noticed = record.lock().expect("record lock").unavailable - before;
        eprintln!(
            "{outage:?}: working again {:.2} s after PostgreSQL accepted connections; \
             {noticed} answers NO [UNAVAILABLE] meanwhile",
            recovery.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        if let Err(error) = task.await {
            note(&record, format!("a session's task failed: {error}"));
        }
    }
    let record = std::mem::take(&mut *record.lock().expect("record lock"));
    assert!(
        record.violations.is_empty(),
        "{} answers broke the rules, the first: {:#?}",
        record.violations.len(),
        &record.violations[..record.violations.len().min(20)]
    );
    assert!(
        record.unavailable > 0,
        "no session noticed the outage: the test did not test it"
    );
    for (index, user) in users.iter().enumerate() {
        let stored = stored_uids(&server, user).await;
        let lost: Vec<u32> = record
            .appended
            .iter()
            .filter(|(i, uid)| *i == index && !stored.contains(uid))
            .map(|(_, uid)| *uid)
            .collect();
        assert!(
            lost.is_empty(),
            "{}: APPENDs answered OK are gone: {lost:?}",
            user.email
        );
    }
    eprintln!(
        "{} APPENDs answered OK, all stored; {} answers NO [UNAVAILABLE]; \
         the slowest answer took {:.2} s",
        record.appended.len(),
        record.unavailable,
        record.slowest.as_secs_f64()
    );
}
