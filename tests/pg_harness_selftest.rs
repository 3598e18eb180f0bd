//! Tests of the throwaway-PostgreSQL harness in `support/postgres.rs`.
//!
//! Besides basic use, this checks the harness's promise to leave nothing
//! behind: child copies of this test binary start a cluster and then die
//! (SIGKILL, panic), and the parent checks that the server and its directory
//! disappear. Another child runs with TEST_DATABASE_URL pointing at this
//! process's cluster, to exercise the external-server mode.

mod support {
    pub mod postgres;
}

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::postgres::{admin_url, fresh_database_url};

/// Set in child processes to the name of the role they play.
const CHILD_ENV: &str = "PG_HARNESS_SELFTEST_CHILD";

async fn current_database(url: &str) -> String {
    let pool = sqlx::PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("SELECT 1");
    assert_eq!(one, 1);
    let name = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .expect("SELECT current_database()");
    pool.close().await;
    name
}

/// Two databases from one test are distinct and isolated from each other.
async fn check_two_fresh_databases() {
    let (a, b) = (fresh_database_url(), fresh_database_url());
    assert_ne!(a, b);
    let (name_a, name_b) = (current_database(&a).await, current_database(&b).await);
    assert_ne!(name_a, name_b);

    let pool_a = sqlx::PgPool::connect(&a).await.expect("connect a");
    sqlx::query("CREATE TABLE only_in_a (x int)")
        .execute(&pool_a)
        .await
        .expect("create table in a");
    let pool_b = sqlx::PgPool::connect(&b).await.expect("connect b");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")
            .fetch_one(&pool_b)
            .await
            .expect("count tables in b");
    assert_eq!(tables, 0, "database b sees a table created in database a");
}

// Two tests, so that two runtimes race to start the shared cluster.
#[tokio::test]
async fn fresh_databases_are_distinct_1() {
    check_two_fresh_databases().await;
}

#[tokio::test]
async fn fresh_databases_are_distinct_2() {
    check_two_fresh_databases().await;
}

#[tokio::test]
async fn admin_url_is_the_postgres_database() {
    assert_eq!(current_database(&admin_url()).await, "postgres");
}

/// The socket directory of the local cluster, from the `host=` query parameter.
fn socket_dir(url: &str) -> PathBuf {
    let (_, host) = url
        .split_once("?host=")
        .unwrap_or_else(|| panic!("no ?host= in {url}"));
    PathBuf::from(host)
}

/// Runs the ignored test `name` of this binary in a child process with
/// `CHILD_ENV=name` (plus `env`), returning it and a channel of its output
/// lines (stderr lines prefixed with "stderr: "), which closes at EOF.
fn spawn_child(name: &str, env: &[(&str, &str)]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args([name, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, name)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Captured so the deliberate panic does not clutter our output, and
        // so failures can show it.
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a child copy of the test binary");
    let (sender, receiver) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    forward_lines(stdout, "", sender.clone());
    forward_lines(stderr, "stderr: ", sender);
    (child, receiver)
}

fn forward_lines(from: impl Read + Send + 'static, prefix: &'static str, to: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(format!("{prefix}{line}")).is_err() {
                break;
            }
        }
    });
}

/// Waits for the child to print `SOCKET_DIR=<dir>` and returns the directory.
fn wait_for_socket_dir(lines: &mpsc::Receiver<String>) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            panic!(
                "child printed no SOCKET_DIR= line; output:\n{}",
                seen.join("\n")
            );
        };
        if let Some(dir) = line.strip_prefix("SOCKET_DIR=") {
            return PathBuf::from(dir);
        }
        seen.push(line);
    }
}

/// Asserts that the cluster in `dir` (postmaster `pid`) goes away soon.
fn assert_cleaned_up(dir: &Path, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let proc = PathBuf::from(format!("/proc/{pid}"));
    while dir.exists() || proc.exists() {
        assert!(
            Instant::now() < deadline,
            "cluster not cleaned up: dir {} exists: {}, postmaster {pid} alive: {}",
            dir.display(),
            dir.exists(),
            proc.exists()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The postmaster's pid: the first line of postmaster.pid.
fn postmaster_pid(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .expect("read postmaster.pid of the child's cluster");
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("pid on the first line of postmaster.pid")
}

fn check_child_cleanup(name: &str, kill: bool) {
    if std::env::var_os("TEST_DATABASE_URL").is_some() {
        eprintln!("skipped: TEST_DATABASE_URL is set, so no cluster is started");
        return;
    }
    let (mut child, lines) = spawn_child(name, &[]);
    let dir = wait_for_socket_dir(&lines);
    let pid = postmaster_pid(&dir);
    if kill {
        child.kill().expect("SIGKILL the child");
    }
    let status = child.wait().expect("wait for the child");
    assert!(
        !status.success(),
        "child {name} should not succeed: {status}"
    );
    assert_cleaned_up(&dir, pid);
}

#[test]
fn cluster_is_removed_when_the_test_process_is_killed() {
    check_child_cleanup("child_holds_cluster", true);
}

#[test]
fn cluster_is_removed_when_the_test_process_panics() {
    check_child_cleanup("child_panics", false);
}

/// Child role: start the cluster, report it, then wait to be killed.
#[test]
#[ignore = "run by cluster_is_removed_when_the_test_process_is_killed"]
fn child_holds_cluster() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("child_holds_cluster") {
        return;
    }
    println!("SOCKET_DIR={}", socket_dir(&admin_url()).display());
    std::thread::sleep(Duration::from_secs(120));
}

/// Child role: start the cluster, report it, then fail.
#[test]
#[ignore = "run by cluster_is_removed_when_the_test_process_panics"]
fn child_panics() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("child_panics") {
        return;
    }
    println!("SOCKET_DIR={}", socket_dir(&admin_url()).display());
    panic!("deliberate panic to test clean-up");
}

#[test]
fn test_database_url_is_used_when_set() {
    // The child's TEST_DATABASE_URL is our own cluster's admin URL, with a
    // marker query parameter that must survive into the URLs it hands out.
    let admin = admin_url();
    let separator = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{separator}application_name=external");
    let (mut child, lines) =
        spawn_child("child_uses_external_server", &[("TEST_DATABASE_URL", &url)]);
    let status = child.wait().expect("wait for the child");
    // The channel closes when the child's stdout reaches EOF.
    let output: Vec<String> = lines.iter().collect();
    assert!(
        status.success(),
        "child failed: {status}\n{}",
        output.join("\n")
    );
    assert!(
        output.iter().any(|line| line == "EXTERNAL_OK"),
        "child did not run its checks:\n{}",
        output.join("\n")
    );
}

/// Child role: with TEST_DATABASE_URL set, databases are created on that server.
#[tokio::test]
#[ignore = "run by test_database_url_is_used_when_set"]
async fn child_uses_external_server() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("child_uses_external_server") {
        return;
    }
    let given = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL is set");
    let url = fresh_database_url();
    assert!(url.ends_with("application_name=external"), "{url}");
    assert_eq!(
        url.split_once('?').map(|(_, query)| query),
        given.split_once('?').map(|(_, query)| query)
    );
    let name = current_database(&url).await;
    assert!(url.contains(&format!("/{name}?")), "{url} vs {name}");
    assert_eq!(admin_url(), given);
    println!("EXTERNAL_OK");
}
