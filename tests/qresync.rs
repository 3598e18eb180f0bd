//! QRESYNC (RFC 7162 3.2) over TCP on both backends, driven the way a
//! phone reopens its mailbox: ENABLE QRESYNC, SELECT with what it knew,
//! VANISHED (EARLIER) and changed FETCHes, VANISHED instead of EXPUNGE,
//! UID FETCH (CHANGEDSINCE … VANISHED), and [CLOSED].

mod support;

use support::{Client, Response, TestServer, User};

const MESSAGE: &str = "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: Hi\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n";

/// Alice, her address `box@alice.example` with six messages (UIDs 1 to 6).
async fn alice(server: &TestServer) -> User {
    let alice = server.alice_with(&["box@alice.example"]).await;
    for _ in 0..6 {
        server.deliver("box@alice.example", MESSAGE).await;
    }
    alice
}

fn code_number(response: &Response, code: &str) -> u64 {
    let line = response
        .untagged
        .iter()
        .chain([&response.tagged])
        .find(|line| line.contains(&format!("[{code} ")))
        .unwrap_or_else(|| panic!("no [{code}] in {response:?}"));
    let start = line.find(&format!("[{code} ")).unwrap() + code.len() + 2;
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// A client that has enabled QRESYNC.
async fn qresync_client(server: &TestServer, user: &User) -> Client {
    let mut client = server.login(user).await;
    let enable = client.run("ENABLE QRESYNC").await;
    assert!(enable.has_untagged("* ENABLED QRESYNC"), "{enable:?}");
    client
}

/// Whether an untagged line is exactly `line` (a VANISHED set must not
/// merely start the same).
fn has_line(response: &Response, line: &str) -> bool {
    response.untagged.iter().any(|l| l == line)
}

fn lines_with<'a>(response: &'a Response, needle: &str) -> Vec<&'a String> {
    response
        .untagged
        .iter()
        .filter(|line| line.contains(needle))
        .collect()
}

/// What the phone knew: UIDVALIDITY and HIGHESTMODSEQ from a SELECT.
async fn remember(server: &TestServer, user: &User) -> (u64, u64) {
    let mut phone = qresync_client(server, user).await;
    let select = phone.run("SELECT box@alice.example").await;
    assert!(select.is_ok(), "{select:?}");
    let known = (
        code_number(&select, "UIDVALIDITY"),
        code_number(&select, "HIGHESTMODSEQ"),
    );
    phone.run("LOGOUT").await;
    known
}

async fn a_reopen_hears_exactly_what_changed_and_vanished(server: TestServer) {
    let alice = alice(&server).await;
    let (uidvalidity, modseq) = remember(&server, &alice).await;

    // Meanwhile, on the desktop: one flag change, two expunges, one arrival.
    let mut desktop = server.login(&alice).await;
    desktop.run("SELECT box@alice.example").await;
    desktop.run("STORE 2 +FLAGS (\\Seen)").await;
    desktop.run("STORE 4:5 +FLAGS (\\Deleted)").await;
    assert!(desktop.run("EXPUNGE").await.is_ok());
    server.deliver("box@alice.example", MESSAGE).await;

    let mut phone = qresync_client(&server, &alice).await;
    let select = phone
        .run(&format!(
            "SELECT box@alice.example (QRESYNC ({uidvalidity} {modseq} 1:6))"
        ))
        .await;
    assert!(select.is_ok(), "{select:?}");
    assert!(has_line(&select, "* VANISHED (EARLIER) 4:5"), "{select:?}");
    let fetches = lines_with(&select, " FETCH (");
    // Message 2's flags, and the new message 7; nothing about 1, 3 or 6.
    assert_eq!(fetches.len(), 2, "{select:?}");
    assert!(
        fetches[0].starts_with("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("),
        "{select:?}"
    );
    assert!(fetches[1].starts_with("* 5 FETCH (UID 7 "), "{select:?}");
    assert!(select.has_untagged("* 5 EXISTS"), "{select:?}");
    assert!(code_number(&select, "HIGHESTMODSEQ") > modseq);

    // Known UIDs limit what is reported as vanished.
    let mut other = qresync_client(&server, &alice).await;
    let limited = other
        .run(&format!(
            "SELECT box@alice.example (QRESYNC ({uidvalidity} {modseq} 5:6))"
        ))
        .await;
    assert!(has_line(&limited, "* VANISHED (EARLIER) 5"), "{limited:?}");
}

async fn a_stale_uidvalidity_gets_a_plain_select(server: TestServer) {
    let alice = alice(&server).await;
    let (uidvalidity, modseq) = remember(&server, &alice).await;
    let mut phone = qresync_client(&server, &alice).await;
    let select = phone
        .run(&format!(
            "SELECT box@alice.example (QRESYNC ({} {modseq}))",
            uidvalidity + 1
        ))
        .await;
    assert!(select.is_ok(), "{select:?}");
    assert!(lines_with(&select, "VANISHED").is_empty(), "{select:?}");
    assert!(lines_with(&select, " FETCH (").is_empty(), "{select:?}");
}

async fn expunges_are_vanished_once_qresync_is_on(server: TestServer) {
    let alice = alice(&server).await;
    let mut phone = qresync_client(&server, &alice).await;
    phone.run("SELECT box@alice.example").await;
    let mut desktop = server.login(&alice).await;
    desktop.run("SELECT box@alice.example").await;

    // The phone's own expunge, then one by another session.
    phone.run("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    let expunge = phone.run("EXPUNGE").await;
    assert!(has_line(&expunge, "* VANISHED 1:2"), "{expunge:?}");
    assert!(lines_with(&expunge, "EXPUNGE").is_empty(), "{expunge:?}");
    assert!(expunge.tagged.contains("[HIGHESTMODSEQ "), "{expunge:?}");
    desktop.run("STORE 6 +FLAGS (\\Deleted)").await;
    desktop.run("EXPUNGE").await;
    let noop = phone.run("NOOP").await;
    assert!(has_line(&noop, "* VANISHED 6"), "{noop:?}");
    // The session that did not enable it keeps EXPUNGE.
    phone.run("UID STORE 3 +FLAGS (\\Deleted)").await;
    phone.run("UID EXPUNGE 3").await;
    let plain = desktop.run("NOOP").await;
    assert!(plain.has_untagged("* 1 EXPUNGE"), "{plain:?}");
}

async fn uid_fetch_vanished_reports_expunges_in_its_set(server: TestServer) {
    let alice = alice(&server).await;
    let mut phone = qresync_client(&server, &alice).await;
    let select = phone.run("SELECT box@alice.example").await;
    let modseq = code_number(&select, "HIGHESTMODSEQ");
    let mut desktop = server.login(&alice).await;
    desktop.run("SELECT box@alice.example").await;
    desktop.run("STORE 1,3,5 +FLAGS (\\Deleted)").await;
    desktop.run("EXPUNGE").await;
    desktop.run("STORE 2 +FLAGS ($Label2)").await; // UID 4, now second

    // RFC 7162 3.2.6: expunges in the set since modseq, then the changes.
    let fetch = phone
        .run(&format!(
            "UID FETCH 2:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(fetch.is_ok(), "{fetch:?}");
    // The phone's view still counted them: they are reported as they
    // leave it, after the command (VANISHED without EARLIER, which moves
    // sequence numbers), and the FETCH shows only the live change.
    assert!(has_line(&fetch, "* VANISHED 1,3,5"), "{fetch:?}");
    assert!(lines_with(&fetch, "(EARLIER)").is_empty(), "{fetch:?}");
    assert_eq!(lines_with(&fetch, " FETCH (").len(), 1, "{fetch:?}");
    let again = phone
        .run(&format!(
            "UID FETCH 2:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(has_line(&again, "* VANISHED (EARLIER) 3,5"), "{again:?}");
    let changed = lines_with(&again, " FETCH (");
    assert_eq!(changed.len(), 1, "{again:?}");
    assert!(
        changed[0].contains("UID 4 ") && changed[0].contains("$Label2"),
        "{again:?}"
    );
    // VANISHED without QRESYNC, without CHANGEDSINCE, or by sequence number is BAD.
    assert_eq!(
        phone.run("UID FETCH 1:* (FLAGS) (VANISHED)").await.status(),
        "BAD"
    );
    assert_eq!(
        phone
            .run(&format!(
                "FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
            ))
            .await
            .status(),
        "BAD"
    );
    assert_eq!(
        desktop
            .run(&format!(
                "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
            ))
            .await
            .status(),
        "BAD"
    );
}

async fn a_select_that_replaces_a_selection_says_closed(server: TestServer) {
    let alice = alice(&server).await;
    let mut phone = qresync_client(&server, &alice).await;
    let first = phone.run("SELECT INBOX").await;
    assert!(lines_with(&first, "[CLOSED]").is_empty(), "{first:?}");
    let second = phone.run("EXAMINE box@alice.example").await;
    assert!(
        second.untagged[0].starts_with("* OK [CLOSED]"),
        "{second:?}"
    );
    // QRESYNC in SELECT without ENABLE is a BAD command.
    let mut plain = server.login(&alice).await;
    assert_eq!(
        plain.run("SELECT INBOX (QRESYNC (1 1))").await.status(),
        "BAD"
    );
}

/// Expunges are remembered for a while (IMAP_EXPUNGED_RETENTION_DAYS); a
/// client that knew the mailbox before what is remembered is still told
/// every UID it may hold that is gone (RFC 7162 3.2.5.2), and one that
/// knew it after hears only what is remembered.
async fn forgotten_expunges_still_give_an_exact_answer(server: TestServer) {
    let alice = alice(&server).await;
    let (uidvalidity, old) = remember(&server, &alice).await;
    let mut desktop = server.login(&alice).await;
    desktop.run("SELECT box@alice.example").await;
    desktop.run("STORE 2,4 +FLAGS (\\Deleted)").await;
    desktop.run("EXPUNGE").await;
    let forgotten = server
        .database
        .mail
        .forget_expunged(chrono::Utc::now() + chrono::Duration::days(1))
        .await
        .expect("forget");
    // One row per view: the address and the unified INBOX.
    assert_eq!(forgotten, 4);
    assert_eq!(server.number("SELECT count(*) FROM expunged").await, 0);
    let (_, recent) = remember(&server, &alice).await;
    desktop.run("UID STORE 6 +FLAGS (\\Deleted)").await;
    desktop.run("EXPUNGE").await;

    let mut phone = qresync_client(&server, &alice).await;
    let select = phone
        .run(&format!(
            "SELECT box@alice.example (QRESYNC ({uidvalidity} {old}))"
        ))
        .await;
    assert!(
        has_line(&select, "* VANISHED (EARLIER) 2,4,6"),
        "{select:?}"
    );
    let select = phone
        .run(&format!(
            "SELECT box@alice.example (QRESYNC ({uidvalidity} {recent}))"
        ))
        .await;
    assert!(has_line(&select, "* VANISHED (EARLIER) 6"), "{select:?}");
    assert_eq!(lines_with(&select, "VANISHED").len(), 1, "{select:?}");
    // Known UIDs above any given out name nothing: 6 is gone, but the
    // client did not say it knew it.
    let select = phone
        .run(&format!(
            "SELECT box@alice.example (QRESYNC ({uidvalidity} {old} 2,5000:6000))"
        ))
        .await;
    assert!(has_line(&select, "* VANISHED (EARLIER) 2"), "{select:?}");
    assert_eq!(lines_with(&select, "VANISHED").len(), 1, "{select:?}");
}

on_both_backends!(
    forgotten_expunges_still_give_an_exact_answer,
    a_reopen_hears_exactly_what_changed_and_vanished,
    a_stale_uidvalidity_gets_a_plain_select,
    expunges_are_vanished_once_qresync_is_on,
    uid_fetch_vanished_reports_expunges_in_its_set,
    a_select_that_replaces_a_selection_says_closed,
);
