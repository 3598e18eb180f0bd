//! Real mail clients against the real server: Python's imaplib, curl and
//! mbsync. `.ci/run` installs curl and isync where they are missing.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Backend, TestServer, User};

const HELLO: &str = "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: Hello\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <hello@example.org>\r\n\r\nHi Alice, the needle is here.\r\n";
const SECOND: &str = "From: carol@example.net\r\nTo: box@alice.example\r\nSubject: Second\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nNothing to see.\r\n";

async fn alice(server: &TestServer) -> User {
    let alice = server.alice_with(&["box@alice.example"]).await;
    server.deliver("box@alice.example", HELLO).await;
    server.deliver("box@alice.example", SECOND).await;
    alice
}

/// Runs a client program to completion off the async runtime, so that the
/// server in this process keeps answering it.
async fn run(mut command: Command) -> std::process::Output {
    let output = tokio::task::spawn_blocking(move || command.output().expect("start the client"))
        .await
        .expect("client task");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_imaplib_reads_and_manages_mail() {
    let server = TestServer::start(Backend::Postgres).await;
    let alice = alice(&server).await;
    let mut command = Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/imaplib_session.py"
        ))
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg(&alice.email)
        .arg(&alice.token);
    let output = run(command).await;
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok: logout"));
}

fn curl(server: &TestServer, user: &User, path: &str, extra: &[&str]) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "20"])
        .arg("--url")
        .arg(format!("imap://{}/{path}", server.addr))
        .arg("--user")
        .arg(format!("{}:{}", user.email, user.token))
        .args(extra);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_lists_and_fetches() {
    let server = TestServer::start(Backend::Sqlite).await;
    let alice = alice(&server).await;
    let list = run(curl(&server, &alice, "", &[])).await;
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("* LIST (\\HasNoChildren) \"/\" \"box@alice.example\""),
        "{list}"
    );
    let message = run(curl(&server, &alice, "box@alice.example;UID=1", &[])).await;
    assert_eq!(String::from_utf8_lossy(&message.stdout), HELLO);
    let search = run(curl(
        &server,
        &alice,
        "INBOX",
        &["--request", "SEARCH SUBJECT Second"],
    ))
    .await;
    assert!(String::from_utf8_lossy(&search.stdout).contains("* SEARCH 2"));
}

/// Messages in a Maildir, keyed by subject, with mbsync's own header removed.
fn maildir_messages(dir: &Path) -> Vec<String> {
    let mut messages = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            // mbsync marks messages it uploads with X-TUID; that is its addition, not ours.
            let text: String = text
                .split_inclusive('\n')
                .filter(|l| !l.starts_with("X-TUID: "))
                .collect();
            messages.push(text);
        }
    }
    messages.sort();
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_copies_the_mailbox_exactly() {
    let server = TestServer::start(Backend::Postgres).await;
    let alice = alice(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let config = format!(
        "IMAPAccount test\nHost {host}\nPort {port}\nUser {user}\nPass {token}\nSSLType None\nAuthMechs LOGIN\n\n\
IMAPStore remote\nAccount test\n\n\
MaildirStore local\nPath {path}/\nInbox {path}/INBOX\nSubFolders Verbatim\n\n\
Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX box@alice.example\nCreate Near\nSync Pull\nSyncState *\n",
        host = server.addr.ip(),
        port = server.addr.port(),
        user = alice.email,
        token = alice.token,
        path = maildir.display(),
    );
    let config_path = dir.path().join("mbsyncrc");
    std::fs::write(&config_path, config).unwrap();
    let mut command = Command::new("mbsync");
    command.arg("-c").arg(&config_path).arg("-a");
    run(command).await;
    let mut expected = vec![HELLO.replace("\r\n", "\n"), SECOND.replace("\r\n", "\n")];
    expected.sort();
    for folder in ["INBOX", "box@alice.example"] {
        assert_eq!(
            maildir_messages(&maildir.join(folder)),
            expected,
            "{folder}"
        );
    }
}
