//! CONDSTORE (RFC 7162 3.1) over TCP on both backends: HIGHESTMODSEQ in
//! SELECT and STATUS, the MODSEQ fetch item, FETCH CHANGEDSINCE, STORE
//! UNCHANGEDSINCE with [MODIFIED], SEARCH MODSEQ, ENABLE CONDSTORE, and
//! mod-sequences kept exact for writers other than this server.

mod support;

use support::{Backend, Client, Response, TestServer, User};

const MESSAGE: &str = "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: Hi\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n";

/// Alice, her addresses `box@` and `other@alice.example`, three messages in box.
async fn alice(server: &TestServer) -> User {
    let alice = server
        .alice_with(&["box@alice.example", "other@alice.example"])
        .await;
    for _ in 0..3 {
        server.deliver("box@alice.example", MESSAGE).await;
    }
    alice
}

/// The number in `[NAME n]` or `NAME n` or `NAME (n)` on the first line that has it.
fn number_after(response: &Response, name: &str) -> u64 {
    let lines = response.untagged.iter().chain([&response.tagged]);
    for line in lines {
        if let Some(start) = line.find(&format!("{name} ")) {
            let digits: String = line[start + name.len() + 1..]
                .trim_start_matches('(')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                return n;
            }
        }
    }
    panic!("no {name} in {response:?}")
}

async fn highestmodseq(client: &mut Client, mailbox: &str) -> u64 {
    let status = client
        .run(&format!("STATUS {mailbox} (HIGHESTMODSEQ)"))
        .await;
    assert!(status.is_ok(), "{status:?}");
    number_after(&status, "HIGHESTMODSEQ")
}

/// The MODSEQ of the message with sequence number `seq`.
async fn modseq_of(client: &mut Client, seq: u32) -> u64 {
    let fetch = client.run(&format!("FETCH {seq} (MODSEQ)")).await;
    assert!(fetch.is_ok(), "{fetch:?}");
    number_after(&fetch, "MODSEQ")
}

async fn fetch_lines(client: &mut Client, command: &str) -> Vec<String> {
    let response = client.run(command).await;
    assert!(response.is_ok(), "{response:?}");
    response
        .untagged
        .into_iter()
        .filter(|line| line.contains(" FETCH ("))
        .collect()
}

async fn select_and_status_report_each_mailboxs_own_highestmodseq(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let capability = client.run("CAPABILITY").await;
    assert!(capability.has_untagged("CONDSTORE"), "{capability:?}");

    let select = client.run("SELECT box@alice.example").await;
    assert!(select.is_ok(), "{select:?}");
    let selected = number_after(&select, "HIGHESTMODSEQ");
    assert!(selected >= 1);
    let mut other = server.login(&alice).await;
    assert_eq!(
        highestmodseq(&mut other, "box@alice.example").await,
        selected
    );
    let inbox = highestmodseq(&mut other, "INBOX").await;
    let empty = highestmodseq(&mut other, "other@alice.example").await;

    let store = client.run("STORE 2 +FLAGS (\\Flagged)").await;
    assert!(store.is_ok(), "{store:?}");
    let after = highestmodseq(&mut other, "box@alice.example").await;
    assert!(after > selected, "{after} after {selected}");
    // The unified INBOX shows the same message and moves with it; a
    // mailbox that did not change keeps its value.
    assert!(highestmodseq(&mut other, "INBOX").await > inbox);
    assert_eq!(
        highestmodseq(&mut other, "other@alice.example").await,
        empty
    );
    // Storing what is already there changes nothing, mod-sequence included.
    client.run("STORE 2 +FLAGS (\\Flagged)").await;
    assert_eq!(highestmodseq(&mut other, "box@alice.example").await, after);
}

async fn fetch_modseq_and_changedsince_show_only_what_changed(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let select = client.run("SELECT box@alice.example").await;
    let known = number_after(&select, "HIGHESTMODSEQ");

    // Another client changes message 2.
    let mut writer = server.login(&alice).await;
    writer.run("SELECT box@alice.example").await;
    writer.run("STORE 2 +FLAGS ($Label1)").await;

    let changed = fetch_lines(
        &mut client,
        &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {known})"),
    )
    .await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].starts_with("* 2 FETCH ("), "{changed:?}");
    assert!(
        changed[0].contains("$Label1") && changed[0].contains("MODSEQ ("),
        "{changed:?}"
    );
    let modseq = number_after(
        &Response {
            untagged: changed.clone(),
            tagged: String::new(),
        },
        "MODSEQ",
    );
    assert!(modseq > known);
    // Nothing changed since that: nothing to say.
    assert!(
        fetch_lines(
            &mut client,
            &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")
        )
        .await
        .is_empty()
    );
    // MODSEQ on its own, and from now on with every FLAGS.
    assert_eq!(modseq_of(&mut client, 2).await, modseq);
    let flags = fetch_lines(&mut client, "FETCH 1 (FLAGS)").await;
    assert!(flags[0].contains("MODSEQ ("), "{flags:?}");
}

async fn unchangedsince_leaves_alone_what_changed_meanwhile(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    let before = modseq_of(&mut client, 3)
        .await
        .max(modseq_of(&mut client, 1).await);

    let mut writer = server.login(&alice).await;
    writer.run("SELECT box@alice.example").await;
    writer.run("STORE 2 +FLAGS (\\Answered)").await;

    // RFC 7162 3.1.3, example 3/4: message 2 changed after `before`.
    let store = client
        .run(&format!(
            "STORE 1:3 (UNCHANGEDSINCE {before}) +FLAGS (\\Seen)"
        ))
        .await;
    assert!(store.is_ok(), "{store:?}");
    assert!(store.tagged.contains("[MODIFIED 2]"), "{store:?}");
    let fetches: Vec<&String> = store
        .untagged
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .collect();
    assert!(
        fetches.iter().any(|l| l.starts_with("* 1 FETCH (")
            && l.contains("\\Seen")
            && l.contains("MODSEQ (")),
        "{store:?}"
    );
    assert!(
        !fetches
            .iter()
            .any(|l| l.starts_with("* 2 FETCH (") && l.contains("\\Seen")),
        "{store:?}"
    );
    let flags = fetch_lines(&mut client, "FETCH 2 (FLAGS)").await;
    assert!(
        !flags[0].contains("\\Seen"),
        "message 2 was changed: {flags:?}"
    );

    // By UID, MODIFIED lists UIDs; UNCHANGEDSINCE 0 fails everywhere.
    let by_uid = client
        .run("UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Draft)")
        .await;
    assert!(by_uid.tagged.contains("[MODIFIED 1:3]"), "{by_uid:?}");
    assert!(
        !by_uid.untagged.iter().any(|l| l.contains("\\Draft")),
        "{by_uid:?}"
    );

    // A silent STORE still tells a CONDSTORE client the new MODSEQ.
    let now = modseq_of(&mut client, 3).await;
    let silent = client
        .run(&format!(
            "UID STORE 3 (UNCHANGEDSINCE {now}) +FLAGS.SILENT (\\Deleted)"
        ))
        .await;
    assert!(
        silent.is_ok() && !silent.tagged.contains("MODIFIED"),
        "{silent:?}"
    );
    let line = silent
        .untagged
        .iter()
        .find(|l| l.contains(" FETCH ("))
        .expect("a FETCH");
    assert!(
        line.contains("UID 3") && line.contains("MODSEQ (") && !line.contains("FLAGS"),
        "{silent:?}"
    );
    assert!(number_after(&silent, "MODSEQ") > now);
}

async fn search_modseq_finds_what_changed_and_says_the_highest(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    let base = modseq_of(&mut client, 3).await;
    client.run("STORE 1 +FLAGS (\\Flagged)").await;
    client.run("STORE 3 +FLAGS (\\Flagged)").await;
    let newest = modseq_of(&mut client, 3).await;

    let search = client.run(&format!("SEARCH MODSEQ {}", base + 1)).await;
    assert!(search.is_ok(), "{search:?}");
    assert!(
        search.has_untagged(&format!("* SEARCH 1 3 (MODSEQ {newest})")),
        "{search:?}"
    );
    let with_entry = client
        .run(&format!(
            "UID SEARCH MODSEQ \"/flags/\\\\flagged\" all {}",
            base + 1
        ))
        .await;
    assert!(
        with_entry.has_untagged(&format!("* SEARCH 1 3 (MODSEQ {newest})")),
        "{with_entry:?}"
    );
    let none = client.run(&format!("SEARCH MODSEQ {}", newest + 1)).await;
    assert!(none.untagged.iter().any(|l| l == "* SEARCH"), "{none:?}");
}

async fn enable_condstore_puts_modseq_on_every_flags_answer(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let enable = client.run("ENABLE CONDSTORE").await;
    assert!(enable.has_untagged("* ENABLED CONDSTORE"), "{enable:?}");
    let again = client.run("ENABLE CONDSTORE").await;
    assert!(again.untagged.iter().any(|l| l == "* ENABLED"), "{again:?}");
    client.run("SELECT box@alice.example").await;
    let flags = fetch_lines(&mut client, "FETCH 1:3 (FLAGS)").await;
    assert!(flags.iter().all(|l| l.contains("MODSEQ (")), "{flags:?}");

    // A change by another session arrives with its MODSEQ.
    let mut writer = server.login(&alice).await;
    writer.run("SELECT box@alice.example").await;
    writer.run("STORE 1 +FLAGS (\\Seen)").await;
    let noop = client.run("NOOP").await;
    let line = noop
        .untagged
        .iter()
        .find(|l| l.contains(" FETCH ("))
        .expect("an update");
    assert!(
        line.contains("\\Seen") && line.contains("MODSEQ ("),
        "{noop:?}"
    );
    // A session that never enabled it is told without.
    let plain = writer.run("FETCH 1 (FLAGS)").await;
    assert!(
        !plain.untagged.iter().any(|l| l.contains("MODSEQ")),
        "{plain:?}"
    );
}

async fn expunges_and_arrivals_raise_highestmodseq(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    client.run("STORE 3 +FLAGS (\\Deleted)").await;
    let before = highestmodseq(&mut client, "box@alice.example").await;
    let inbox_before = highestmodseq(&mut client, "INBOX").await;
    // The message with the highest mod-sequence goes: the mailbox's
    // HIGHESTMODSEQ still rises (its expunge is a change).
    assert!(client.run("EXPUNGE").await.is_ok());
    let after = highestmodseq(&mut client, "box@alice.example").await;
    assert!(after > before, "{after} after {before}");
    assert!(highestmodseq(&mut client, "INBOX").await > inbox_before);
    server.deliver("box@alice.example", MESSAGE).await;
    assert!(highestmodseq(&mut client, "box@alice.example").await > after);
}

async fn writers_other_than_the_server_get_mod_sequences_too(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let select = client.run("SELECT box@alice.example (CONDSTORE)").await;
    let known = number_after(&select, "HIGHESTMODSEQ");
    // The deployment's own tools change flags with plain SQL.
    match server.backend {
        Backend::Postgres => {
            server
                .execute("UPDATE emails SET flags = ARRAY['\\Flagged'] WHERE uid = 1 AND mailbox_owner = 'box@alice.example'")
                .await
        }
        Backend::Sqlite => {
            server
                .execute("UPDATE emails SET flags = '\\Flagged' WHERE uid = 1 AND mailbox_owner = 'box@alice.example'")
                .await
        }
    }
    let changed = fetch_lines(
        &mut client,
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {known})"),
    )
    .await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].contains("UID 1 ") && changed[0].contains("\\Flagged"),
        "{changed:?}"
    );
    let mut other = server.login(&alice).await;
    assert!(highestmodseq(&mut other, "box@alice.example").await > known);
}

/// Thunderbird's reconnect: remember HIGHESTMODSEQ, come back, ask for
/// the flags that changed since, by UID.
async fn a_reconnecting_client_fetches_only_what_changed(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let select = client.run("SELECT INBOX (CONDSTORE)").await;
    let remembered = number_after(&select, "HIGHESTMODSEQ");
    client.run("LOGOUT").await;

    let mut phone = server.login(&alice).await;
    phone.run("SELECT box@alice.example").await;
    phone.run("STORE 2 +FLAGS (\\Seen)").await;

    let mut client = server.login(&alice).await;
    let select = client.run("SELECT INBOX (CONDSTORE)").await;
    assert!(
        number_after(&select, "HIGHESTMODSEQ") > remembered,
        "{select:?}"
    );
    let changed = fetch_lines(
        &mut client,
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {remembered})"),
    )
    .await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].contains("UID 2 ") && changed[0].contains("\\Seen"),
        "{changed:?}"
    );
}

async fn malformed_condstore_arguments_are_bad(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    client
        .expect_bad(&[
            "FETCH 1 (FLAGS) (CHANGEDSINCE 0)",
            "FETCH 1 (FLAGS) (CHANGEDSINCE abc)",
            "FETCH 1 (FLAGS) (CHANGEDSINCE 99999999999999999999999)",
            "FETCH 1 (FLAGS) (VANISHED)",
            "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)",
            "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)",
            "SEARCH MODSEQ",
            "SELECT box@alice.example (QRESYNC (1 1))",
        ])
        .await;
    // The session is fine afterwards.
    client.run("SELECT box@alice.example").await;
    assert!(client.run("FETCH 1 (MODSEQ)").await.is_ok());
}

on_both_backends!(
    select_and_status_report_each_mailboxs_own_highestmodseq,
    fetch_modseq_and_changedsince_show_only_what_changed,
    unchangedsince_leaves_alone_what_changed_meanwhile,
    search_modseq_finds_what_changed_and_says_the_highest,
    enable_condstore_puts_modseq_on_every_flags_answer,
    expunges_and_arrivals_raise_highestmodseq,
    writers_other_than_the_server_get_mod_sequences_too,
    a_reconnecting_client_fetches_only_what_changed,
    malformed_condstore_arguments_are_bad,
);
