//! ESEARCH (RFC 4731) and SEARCHRES (RFC 5182) over TCP on both backends:
//! the RETURN options and their answers, `$` in every command that takes
//! a sequence set, what resets it, and the malformed forms.

mod support;

use support::{Client, Response, TestServer, User};

fn message(subject: &str, padding: usize) -> String {
    format!(
        "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: {subject}\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHello.{}\r\n",
        "x".repeat(padding)
    )
}

/// Alice with `box@alice.example` holding six messages, "m1" to "m6", of
/// which 2, 3 and 5 are flagged and 4 to 6 are larger than 1000 bytes.
async fn alice(server: &TestServer) -> (User, Client) {
    let alice = server
        .alice_with(&["box@alice.example", "other@alice.example"])
        .await;
    for n in 1..=6 {
        let padding = if n >= 4 { 2000 } else { 0 };
        server
            .deliver("box@alice.example", &message(&format!("m{n}"), padding))
            .await;
    }
    let mut client = server.login(&alice).await;
    assert!(client.run("SELECT box@alice.example").await.is_ok());
    let flagged = client.run("STORE 2,3,5 +FLAGS.SILENT (\\Flagged)").await;
    assert!(flagged.is_ok(), "{flagged:?}");
    (alice, client)
}

/// The ESEARCH line of an answer, after its `(TAG "...")`, which must be
/// the command's own tag.
fn esearch(response: &Response) -> String {
    assert!(response.is_ok(), "{response:?}");
    let tag = response.tagged.split(' ').next().unwrap();
    let lines: Vec<&String> = response
        .untagged
        .iter()
        .filter(|line| line.starts_with("* ESEARCH"))
        .collect();
    assert_eq!(lines.len(), 1, "{response:?}");
    let prefix = format!("* ESEARCH (TAG \"{tag}\")");
    let rest = lines[0]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{prefix} in {response:?}"));
    rest.trim_start().to_owned()
}

/// Runs each command and checks its ESEARCH answer.
async fn expect_esearch(client: &mut Client, cases: &[(&str, &str)]) {
    for (command, expected) in cases {
        let answer = client.run(command).await;
        assert_eq!(esearch(&answer), *expected, "{command}");
    }
}

fn fetched_uids(response: &Response) -> Vec<u32> {
    assert!(response.is_ok(), "{response:?}");
    response
        .untagged
        .iter()
        .filter(|line| line.contains(" FETCH ("))
        .map(|line| {
            let start = line.find("UID ").expect("UID in FETCH") + 4;
            line[start..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

async fn return_options_answer_with_esearch(server: TestServer) {
    let (_alice, mut client) = alice(&server).await;
    let capability = client.run("CAPABILITY").await;
    assert!(
        capability.has_untagged(" ESEARCH") && capability.has_untagged(" SEARCHRES"),
        "{capability:?}"
    );
    // RFC 4731 3.1's examples, on our messages; RETURN () is RETURN (ALL);
    // with nothing found MIN, MAX and ALL are left out and COUNT is 0.
    expect_esearch(
        &mut client,
        &[
            ("SEARCH RETURN (MIN COUNT) FLAGGED", "MIN 2 COUNT 3"),
            (
                "UID SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED",
                "UID MIN 2 MAX 5 COUNT 3 ALL 2:3,5",
            ),
            ("SEARCH RETURN () LARGER 1000", "ALL 4:6"),
            (
                "UID SEARCH RETURN (MIN MAX ALL COUNT) SUBJECT nothing-like-this",
                "UID COUNT 0",
            ),
            ("SEARCH RETURN (ALL) SUBJECT nothing", ""),
            ("SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT m", "COUNT 6"),
        ],
    )
    .await;
    // Without RETURN, the RFC 3501 answer.
    let answer = client.run("SEARCH FLAGGED").await;
    assert_eq!(answer.untagged, vec!["* SEARCH 2 3 5".to_owned()]);
}

async fn esearch_carries_the_highest_modseq_of_what_it_returns(server: TestServer) {
    let (_alice, mut client) = alice(&server).await;
    let before = client.run("FETCH 6 (MODSEQ)").await;
    assert!(before.is_ok(), "{before:?}");
    assert!(client.run("STORE 4 +FLAGS (\\Seen)").await.is_ok());
    let modseq_of_4 = {
        let fetch = client.run("FETCH 4 (MODSEQ)").await;
        let line = &fetch.untagged[0];
        let start = line.find("MODSEQ (").unwrap() + 8;
        line[start..line[start..].find(')').unwrap() + start].to_owned()
    };
    let answer = client.run("SEARCH RETURN (ALL) MODSEQ 1").await;
    assert_eq!(esearch(&answer), format!("ALL 1:6 MODSEQ {modseq_of_4}"));
    // MIN alone: the mod-sequence of the message returned.
    let answer = client.run("SEARCH RETURN (MIN) MODSEQ 1").await;
    let min = esearch(&answer);
    assert!(min.starts_with("MIN 1 MODSEQ "), "{min}");
    assert_ne!(min, format!("MIN 1 MODSEQ {modseq_of_4}"));
}

async fn saved_results_feed_every_command_that_takes_a_set(server: TestServer) {
    let (_alice, mut client) = alice(&server).await;
    // SAVE alone sends no ESEARCH (RFC 5182 2.4).
    let saved = client.run("UID SEARCH RETURN (SAVE) FLAGGED").await;
    assert!(saved.is_ok(), "{saved:?}");
    assert!(!saved.has_untagged("ESEARCH"), "{saved:?}");
    assert_eq!(
        fetched_uids(&client.run("UID FETCH $ (UID FLAGS)").await),
        [2, 3, 5]
    );
    // In a sequence-number command, $ is the same messages.
    assert_eq!(fetched_uids(&client.run("FETCH $ (UID)").await), [2, 3, 5]);
    // In a search program, beside other keys; `SUBJECT $` is a string.
    expect_esearch(
        &mut client,
        &[
            ("SEARCH RETURN (ALL) $ LARGER 1000", "ALL 5"),
            ("SEARCH RETURN (COUNT) OR $ UID 6 NOT DELETED", "COUNT 4"),
            ("SEARCH RETURN (COUNT) SUBJECT $", "COUNT 0"),
        ],
    )
    .await;
    // STORE, COPY and MOVE take it too.
    let stored = client.run("STORE $ +FLAGS.SILENT (\\Seen)").await;
    assert!(stored.is_ok(), "{stored:?}");
    let seen = client.run("SEARCH SEEN").await;
    assert_eq!(seen.untagged, vec!["* SEARCH 2 3 5".to_owned()]);
    let copied = client.run("UID COPY $ other@alice.example").await;
    assert!(copied.is_ok(), "{copied:?}");
    assert!(copied.tagged.contains("COPYUID"), "{copied:?}");
    let status = client.run("STATUS other@alice.example (MESSAGES)").await;
    assert!(status.has_untagged("(MESSAGES 3)"), "{status:?}");
    // UID EXPUNGE $: only the saved messages that are \Deleted go.
    assert!(
        client
            .run("STORE 3 +FLAGS.SILENT (\\Deleted)")
            .await
            .is_ok()
    );
    assert!(
        client
            .run("STORE 4 +FLAGS.SILENT (\\Deleted)")
            .await
            .is_ok()
    );
    let expunged = client.run("UID EXPUNGE $").await;
    assert_eq!(expunged.untagged, vec!["* 3 EXPUNGE".to_owned()]);
    // An expunged message has left $; the others are still in it, under
    // their new sequence numbers.
    assert_eq!(fetched_uids(&client.run("UID FETCH $ (UID)").await), [2, 5]);
    assert_eq!(fetched_uids(&client.run("FETCH $ (UID)").await), [2, 5]);
    let moved = client.run("MOVE $ other@alice.example").await;
    assert!(moved.is_ok(), "{moved:?}");
    assert!(moved.has_untagged("EXPUNGE"), "{moved:?}");
    // Every saved message is gone: $ names nothing, which is not an error.
    let nothing = client.run("FETCH $ (UID)").await;
    assert!(
        nothing.is_ok() && nothing.untagged.is_empty(),
        "{nothing:?}"
    );
    let answer = client.run("UID SEARCH RETURN (ALL COUNT) $").await;
    assert_eq!(esearch(&answer), "UID COUNT 0");
}

async fn save_with_min_or_max_keeps_only_those(server: TestServer) {
    let (_alice, mut client) = alice(&server).await;
    let answer = client.run("SEARCH RETURN (MIN SAVE) FLAGGED").await;
    assert_eq!(esearch(&answer), "MIN 2");
    assert_eq!(fetched_uids(&client.run("UID FETCH $ (UID)").await), [2]);
    let answer = client.run("UID SEARCH RETURN (MIN MAX SAVE) FLAGGED").await;
    assert_eq!(esearch(&answer), "UID MIN 2 MAX 5");
    assert_eq!(fetched_uids(&client.run("UID FETCH $ (UID)").await), [2, 5]);
    // With ALL or COUNT beside them, everything found is saved.
    let answer = client.run("SEARCH RETURN (MIN COUNT SAVE) FLAGGED").await;
    assert_eq!(esearch(&answer), "MIN 2 COUNT 3");
    assert_eq!(
        fetched_uids(&client.run("UID FETCH $ (UID)").await),
        [2, 3, 5]
    );
}

async fn what_empties_the_saved_result(server: TestServer) {
    let (_alice, mut client) = alice(&server).await;
    // Before any SAVE, $ is empty.
    let nothing = client.run("UID FETCH $ (UID)").await;
    assert!(
        nothing.is_ok() && nothing.untagged.is_empty(),
        "{nothing:?}"
    );
    // A SEARCH that was to save and failed leaves it empty (RFC 5182 2.1).
    assert!(client.run("UID SEARCH RETURN (SAVE) FLAGGED").await.is_ok());
    let failed = client
        .run("SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT x")
        .await;
    assert!(failed.tagged.contains("NO [BADCHARSET"), "{failed:?}");
    let nothing = client.run("UID FETCH $ (UID)").await;
    assert!(
        nothing.is_ok() && nothing.untagged.is_empty(),
        "{nothing:?}"
    );
    // A search without SAVE leaves it as it is.
    assert!(client.run("UID SEARCH RETURN (SAVE) FLAGGED").await.is_ok());
    assert!(client.run("SEARCH RETURN (ALL) ALL").await.is_ok());
    assert!(client.run("SEARCH ALL").await.is_ok());
    assert_eq!(
        fetched_uids(&client.run("UID FETCH $ (UID)").await),
        [2, 3, 5]
    );
    // A new selection starts with none.
    assert!(client.run("SELECT box@alice.example").await.is_ok());
    let nothing = client.run("UID FETCH $ (UID)").await;
    assert!(
        nothing.is_ok() && nothing.untagged.is_empty(),
        "{nothing:?}"
    );
    // Messages arriving later never join it.
    assert!(client.run("UID SEARCH RETURN (SAVE) ALL").await.is_ok());
    server
        .deliver("box@alice.example", &message("late", 0))
        .await;
    client.run("NOOP").await;
    assert_eq!(
        fetched_uids(&client.run("UID FETCH $ (UID)").await),
        [1, 2, 3, 4, 5, 6]
    );
}

async fn malformed_esearch_and_searchres_are_bad(server: TestServer) {
    let (_alice, mut client) = alice(&server).await;
    client
        .expect_bad(&[
            "SEARCH RETURN (FIRST) ALL",
            "SEARCH RETURN (MIN) ",
            "SEARCH RETURN MIN ALL",
            "SEARCH RETURN (MIN ALL",
            "SEARCH RETURN (MIN MAX ALL COUNT SAVE MIN) ALL",
            "FETCH $,1 (UID)",
            "FETCH $:4 (UID)",
            "UID SEARCH UID $:3",
        ])
        .await;
    // Outside a selection, $ is as invalid as any set.
    client.run("UNSELECT").await;
    let response = client.run("FETCH $ (UID)").await;
    assert_eq!(response.status(), "BAD", "{response:?}");
    client.run("SELECT box@alice.example").await;
    assert!(client.run("SEARCH RETURN (COUNT) ALL").await.is_ok());
}

on_both_backends!(
    return_options_answer_with_esearch,
    esearch_carries_the_highest_modseq_of_what_it_returns,
    saved_results_feed_every_command_that_takes_a_set,
    save_with_min_or_max_keeps_only_those,
    what_empties_the_saved_result,
    malformed_esearch_and_searchres_are_bad,
);
