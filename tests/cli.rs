//! The binary as an operator meets it: start-up errors in one clear line,
//! the admin commands, `deliver`, and the README's quickstart path.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::Client;
use support::binary::{imap_server, printed_token};

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    imap_server(dir, env, args)
        .output()
        .expect("run imap-server")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The last stderr line of a failed start-up, which must say why.
fn failure_line(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure: {}",
        stdout(output)
    );
    stderr(output).lines().last().unwrap_or_default().to_owned()
}

#[test]
fn a_malformed_bind_address_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &[("IMAP_BIND", "localhost")], &["serve"]);
    let line = failure_line(&output);
    assert!(
        line.contains("IMAP_BIND") && line.contains("HOST:PORT"),
        "{line}"
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_malformed_proxy_protocol_network_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("PROXY_PROTOCOL_FROM", "10.0.0.0/8,haproxy.local")];
    let line = failure_line(&run(dir.path(), &env, &["serve"]));
    assert!(
        line.contains("PROXY_PROTOCOL_FROM") && line.contains("haproxy.local"),
        "{line}"
    );
}

#[test]
fn a_bad_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &[("BAN_CACHE_TTL", "soon")], &["serve"]);
    let line = failure_line(&output);
    assert!(line.contains("BAN_CACHE_TTL"), "{line}");
}

#[test]
fn a_port_in_use_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = run(dir.path(), &[("IMAP_BIND", &address)], &["serve"]);
    let line = failure_line(&output);
    assert!(
        line.contains(&address) && line.contains("already in use"),
        "{line}"
    );
}

#[test]
fn an_unreachable_database_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://imap:hunter2secret@127.0.0.1:1/mail";
    let output = run(
        dir.path(),
        &[("DATABASE_URL", url), ("IMAP_BIND", "127.0.0.1:0")],
        &["serve"],
    );
    let line = failure_line(&output);
    assert!(
        line.contains("postgres://imap:***@127.0.0.1:1/mail"),
        "{line}"
    );
    assert!(
        !stderr(&output).contains("hunter2secret"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_privileged_port_without_privileges_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = imap_server(dir.path(), &[("IMAP_BIND", "127.0.0.1:143")], &["serve"]);
    if nix_is_root() {
        // Root may bind port 143: try as an unprivileged user instead, in a
        // directory that user can write its database to.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    let line = failure_line(&output);
    assert!(
        line.contains("permission denied") && line.contains("IMAP_BIND=127.0.0.1:1143"),
        "{line}"
    );
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn admin_errors_are_plain_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &[],
        &["admin", "tokens", "create", "nobody@example.com"],
    );
    assert_eq!(
        failure_line(&output),
        "imap-server: no user with email nobody@example.com"
    );
    let output = run(
        dir.path(),
        &[],
        &["admin", "users", "add", "x@example.com", "--status", "gold"],
    );
    assert!(failure_line(&output).contains("unknown subscription status \"gold\""));
    let output = run(dir.path(), &[], &["admin", "users", "add", "x@example.com"]);
    assert!(output.status.success());
    let output = run(dir.path(), &[], &["admin", "users", "add", "X@example.com"]);
    assert_eq!(
        failure_line(&output),
        "imap-server: a user with email X@example.com already exists"
    );
    let output = run(
        dir.path(),
        &[],
        &["admin", "domains", "add", "not a domain", "--global"],
    );
    assert!(failure_line(&output).contains("is not a domain name"));
    let output = run(
        dir.path(),
        &[],
        &["admin", "bans", "deactivate", "no-such-id"],
    );
    assert_eq!(
        failure_line(&output),
        "imap-server: no ban with id no-such-id"
    );
}

/// The README's quickstart, step by step, then a login over TCP.
async fn quickstart(env: &[(&str, &str)], idle_poll: &str) {
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        let output = run(dir.path(), env, args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    admin(&["migrate"]);
    admin(&[
        "admin",
        "users",
        "add",
        "alice@example.com",
        "--status",
        "active",
    ]);
    admin(&[
        "admin",
        "domains",
        "add",
        "example.com",
        "--owner",
        "alice@example.com",
    ]);
    admin(&["admin", "domains", "add", "global.example", "--global"]);
    let created = admin(&[
        "admin",
        "tokens",
        "create",
        "alice@example.com",
        "--days",
        "30",
    ]);
    let token = printed_token(&created);
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    admin(&[
        "admin",
        "inboxes",
        "add",
        "alice@example.com",
        "box@example.com",
    ]);
    let deliver = |uid: u32| {
        let mut child = imap_server(dir.path(), env, &["deliver", "--to", "box@example.com"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"From: Bob <bob@example.org>\r\nTo: box@example.com\r\nSubject: Hello\r\n\r\nHi Alice!\r\n")
            .unwrap();
        let delivered = child.wait_with_output().unwrap();
        assert!(delivered.status.success());
        assert!(
            stdout(&delivered).contains(&format!("delivered to box@example.com with UID {uid}"))
        );
    };
    deliver(1);

    let listed = admin(&["admin", "tokens", "list", "alice@example.com"]);
    assert!(!listed.contains(&token), "token list never shows tokens");
    assert!(admin(&["admin", "inboxes", "list"]).contains("box@example.com\talice@example.com"));
    assert!(admin(&["admin", "domains", "list"]).contains("global.example\t(global)\tyes"));
    let ban = admin(&["admin", "bans", "add", "sender", "spam", "--contains"]);
    let ban_id = ban.split_whitespace().nth(1).unwrap().to_owned();
    assert!(
        admin(&["admin", "bans", "list"])
            .contains(&format!("{ban_id}\tsender\tcontains\tspam\tactive"))
    );
    admin(&["admin", "bans", "deactivate", &ban_id]);
    admin(&[
        "admin",
        "users",
        "set-subscription",
        "alice@example.com",
        "past_due",
        "--end-date",
        "2999-01-01",
    ]);

    let port = support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut server_env: Vec<(&str, &str)> = env.to_vec();
    server_env.push(("IMAP_BIND", &bind));
    server_env.push(("IMAP_IDLE_POLL", idle_poll));
    let mut server = imap_server(dir.path(), &server_env, &["serve"])
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut client = None;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&bind).is_ok() {
            client = Some(Client::connect(bind.parse().unwrap()).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = client.expect("the server starts listening");
    assert!(
        client
            .run(&format!("LOGIN alice@example.com {token}"))
            .await
            .is_ok()
    );
    let list = client.run("LIST \"\" *").await;
    assert!(list.has_untagged("\"box@example.com\""), "{list:?}");
    let status = client.run("STATUS INBOX (MESSAGES UNSEEN)").await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"INBOX\" (MESSAGES 1 UNSEEN 1)"]
    );
    // A delivery by another process reaches an idling client: on PostgreSQL
    // through NOTIFY (the poll is set far beyond the test's patience), on
    // SQLite at the next poll.
    assert!(client.run("SELECT INBOX").await.is_ok());
    client.send(b"i1 IDLE\r\n").await;
    assert_eq!(client.line().await, "+ idling");
    deliver(2);
    assert_eq!(client.line().await, "* 2 EXISTS");
    client.send(b"DONE\r\n").await;
    assert!(client.until_tagged("i1").await.is_ok());
    assert!(client.run("CREATE new@example.com").await.is_ok());
    admin(&["admin", "inboxes", "remove", "new@example.com"]);
    // SIGTERM: the session is told goodbye and the process exits cleanly.
    send_sigterm(server.id());
    let rest = client.rest().await;
    assert_eq!(rest, vec!["* BYE Server shutting down"]);
    assert!(server.wait().unwrap().success());
}

fn send_sigterm(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

#[tokio::test]
async fn the_quickstart_works_on_sqlite() {
    quickstart(&[], "1").await;
}

#[tokio::test]
async fn the_quickstart_works_on_postgres() {
    let url = support::postgres::fresh_database_url();
    quickstart(&[("DATABASE_URL", &url)], "3600").await;
}

/// `admin tls self-signed` into `dir`; returns the certificate and key paths.
fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let cert = format!("{name}/cert.pem");
    let key = format!("{name}/key.pem");
    let output = run(
        dir,
        &[],
        &[
            "admin",
            "tls",
            "self-signed",
            "--host",
            "localhost",
            "--cert",
            &cert,
            "--key",
            &key,
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("TLS_CERT="), "{}", stdout(&output));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join(&key)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    (cert, key)
}

#[test]
fn tls_start_up_errors_name_the_file_and_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "a");
    let (_, other_key) = self_signed(dir.path(), "b");
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let cases: [(&str, &str, &str); 4] = [
        ("missing.pem", &key, "TLS_CERT missing.pem: cannot be read"),
        (&cert, "missing.pem", "TLS_KEY missing.pem: cannot be read"),
        ("empty.pem", &key, "TLS_CERT empty.pem: no PEM certificate"),
        (
            &cert,
            &other_key,
            "TLS_KEY b/key.pem does not match the certificate in TLS_CERT a/cert.pem",
        ),
    ];
    for (cert, key, expected) in cases {
        let output = run(
            dir.path(),
            &[
                ("TLS_CERT", cert),
                ("TLS_KEY", key),
                ("IMAP_BIND", "127.0.0.1:0"),
            ],
            &["serve"],
        );
        let line = failure_line(&output);
        assert!(line.contains(expected), "{expected}: {line}");
    }
}

/// The certificate a TLS server at `port` presents, as PEM, via openssl.
fn presented_certificate(port: u16) -> String {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = stdout(&output);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").expect("its end");
    text[start..end].to_owned()
}

#[test]
fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "live");
    let free_port = || support::free_port();
    let (plain, tls) = (free_port(), free_port());
    let mut server = imap_server(
        dir.path(),
        &[
            ("TLS_CERT", &cert),
            ("TLS_KEY", &key),
            ("IMAP_BIND", &format!("127.0.0.1:{plain}")),
            ("IMAPS_BIND", &format!("127.0.0.1:{tls}")),
            // Only the signal may trigger this reload.
            ("TLS_RELOAD_INTERVAL", "3600"),
        ],
        &["serve"],
    )
    .stderr(Stdio::null())
    .process_group(0)
    .spawn()
    .unwrap();
    let listening = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()
    });
    assert!(listening, "the server listens on the IMAPS port");
    let before = presented_certificate(tls);
    self_signed(dir.path(), "live");
    Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    let renewed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        presented_certificate(tls) != before
    });
    send_sigterm(server.id());
    assert!(
        server.wait().unwrap().success(),
        "SIGHUP does not stop the server"
    );
    assert!(renewed, "the new certificate is served after SIGHUP");
}

/// Starts `serve` in `dir` with `env`, stderr to `log`; returns it and its address.
async fn serve_logging_to(
    dir: &Path,
    env: &[(&str, &str)],
    log: &Path,
) -> (std::process::Child, std::net::SocketAddr) {
    let port = support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut server_env = env.to_vec();
    server_env.push(("IMAP_BIND", &bind));
    let mut server = imap_server(dir, &server_env, &["serve"])
        .stderr(std::fs::File::create(log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(&bind).is_ok() {
            return (server, bind.parse().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("the server did not start listening");
}

/// What a hostile client sends to forge log lines, colour the operator's
/// terminal, or get a token logged; returns the server's stderr.
async fn hostile_logins(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let token = support::binary::user_with_token(dir.path(), "alice@example.com", "1");
    let log = dir.path().join("stderr.log");
    let (mut server, addr) = serve_logging_to(dir.path(), &[("LOG_FORMAT", format)], &log).await;
    let mut client = Client::connect(addr).await;
    // The fields swapped, as a confused client sends them.
    let swapped = client
        .run(&format!("LOGIN {token} alice@example.com"))
        .await;
    assert_eq!(swapped.status(), "NO");
    // A login name that would start a forged line and colour the terminal.
    let forged =
        "x\r\n2026-12-03T00:00:00Z INFO login user=alice@example.com outcome=success\x1b[2J";
    client
        .send(format!("l2 LOGIN {{{}}}\r\n", forged.len()).as_bytes())
        .await;
    assert!(client.line().await.starts_with("+ "));
    client
        .send(format!("{forged} {token}x\r\n").as_bytes())
        .await;
    assert_eq!(client.until_tagged("l2").await.status(), "NO");
    client
        .send(b"i1 ID (\"name\" \"evil\r\" \"version\" \"1\")\r\n")
        .await;
    client.until_tagged("i1").await;
    assert!(
        client
            .run(&format!("LOGIN alice@example.com {token}"))
            .await
            .is_ok()
    );
    assert!(client.run("LOGOUT").await.is_ok());
    send_sigterm(server.id());
    assert!(server.wait().unwrap().success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&token),
        "a token reached the log:\n{logged}"
    );
    assert!(
        !logged.contains('\x1b'),
        "an escape reached the log:\n{logged}"
    );
    assert!(
        !logged
            .lines()
            .any(|line| line.starts_with("2026-12-03T00:00:00Z")),
        "a forged line:\n{logged}"
    );
    logged
}

#[tokio::test]
async fn text_logs_cannot_be_forged_coloured_or_given_a_token() {
    let logged = hostile_logins("text").await;
    let failures: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("login failed"))
        .collect();
    assert_eq!(failures.len(), 2, "{logged}");
    // Neither name is an address: both are logged as fingerprints.
    for line in failures {
        assert!(line.contains("user=#"), "{line}");
    }
    assert!(logged.contains("user=alice@example.com"), "{logged}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let logged = hostile_logins("json").await;
    let mut logins = 0;
    for line in logged.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["fields"]["message"].is_string(), "{line}");
        if event["fields"]["message"] == "login" {
            assert_eq!(event["fields"]["user"], "alice@example.com", "{line}");
            logins += 1;
        }
    }
    assert_eq!(logins, 1, "{logged}");
}

#[test]
fn an_unknown_log_format_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &[("LOG_FORMAT", "xml")], &["serve"]);
    assert!(failure_line(&output).contains("LOG_FORMAT"));
}

/// `imap-server demo` running in `dir` on `port`, up to its first
/// "Serving now" line: the child and what it printed.
fn start_demo(dir: &Path, env: &[(&str, &str)], port: u16) -> (std::process::Child, String) {
    use std::io::BufRead;
    let bind = format!("127.0.0.1:{port}");
    let mut env = env.to_vec();
    env.push(("IMAP_BIND", &bind));
    let mut child = imap_server(dir, &env, &["demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Serving now") {
            break;
        }
    }
    assert!(printed.contains("Serving now"), "demo printed: {printed}");
    (child, printed)
}

/// Logged in with the printed token as the printed username, once the
/// server listens.
async fn demo_login(port: u16, printed: &str) -> Client {
    let username = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("username: "))
        .expect("a username")
        .trim()
        .to_owned();
    let token = printed_token(printed);
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(address).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = Client::connect(address).await;
    let login = client.run(&format!("LOGIN {username} {token}")).await;
    assert!(login.is_ok(), "{login:?}");
    client
}

fn stop(mut child: std::process::Child) {
    send_sigterm(child.id());
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn demo_gives_a_working_login_with_mail_and_a_second_run_reuses_it() {
    demo_twice(&[]).await;
}

#[tokio::test]
async fn demo_works_on_postgres_too() {
    let url = support::postgres::fresh_database_url();
    demo_twice(&[("DATABASE_URL", &url)]).await;
}

async fn demo_twice(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let (server, printed) = start_demo(dir.path(), env, port);
    assert!(printed.contains("Demo account created"), "{printed}");
    for setting in [
        "server:   127.0.0.1",
        &format!("port:     {port}"),
        "security: none",
        "username: demo@demo.example",
        "password: ",
    ] {
        assert!(printed.contains(setting), "{setting:?} in {printed}");
    }
    let mut client = demo_login(port, &printed).await;
    let select = client.run("SELECT hello@demo.example").await;
    assert!(select.has_untagged("* 3 EXISTS"), "{select:?}");
    let fetched = client
        .run_raw("FETCH 1:* (BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    for expected in [
        "Welcome to imap-server",
        "Your week in three links",
        "Invoice 1042",
        "(\"text\" \"html\"",
        "\"alternative\"",
        "(\"attachment\" (\"filename\" \"invoice-1042.csv\"))",
    ] {
        assert!(fetched.contains(expected), "{expected:?} in {fetched}");
    }
    let logout = client.run("LOGOUT").await;
    assert!(logout.is_ok());
    stop(server);

    // Again: the same account and mail, a fresh token that works, and the
    // first token still does.
    let first_token = printed_token(&printed);
    let (server, again) = start_demo(dir.path(), env, port);
    assert!(again.contains("already there, reused"), "{again}");
    assert_ne!(printed_token(&again), first_token, "a fresh token");
    let mut client = demo_login(port, &again).await;
    let select = client.run("SELECT hello@demo.example").await;
    assert!(
        select.has_untagged("* 3 EXISTS"),
        "no duplicates: {select:?}"
    );
    let status = client.run("STATUS INBOX (MESSAGES)").await;
    assert!(status.has_untagged("(MESSAGES 3)"), "{status:?}");
    let mut old = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let login = old
        .run(&format!("LOGIN demo@demo.example {first_token}"))
        .await;
    assert!(login.is_ok(), "{login:?}");
    stop(server);
}

#[test]
fn serve_on_an_empty_database_says_how_to_create_the_first_account() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut server = imap_server(dir.path(), &[("IMAP_BIND", &bind)], &["serve"])
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let mut hint = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        if line.contains("no accounts yet") {
            hint = Some(line);
            break;
        }
        if line.contains("imap-server listening") {
            break;
        }
    }
    send_sigterm(server.id());
    server.wait().unwrap();
    let hint = hint.expect("a hint before the server listens");
    assert!(
        hint.contains("imap-server demo") && hint.contains("imap-server admin users add"),
        "{hint}"
    );
}
