//! Message access (RFC 3501 6.3-6.4 and the extensions we advertise):
//! SELECT, FETCH, STORE, SEARCH, EXPUNGE, COPY/MOVE, APPEND and IDLE, with
//! the unified INBOX, ban hiding and isolation (docs/ARCHITECTURE.md).

mod support;

use support::{Client, TestServer, User};

const HELLO: &str = "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: Hello\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <hello@example.org>\r\n\r\nHi Alice, the needle is here.\r\n";
const SECOND: &str = "From: carol@example.net\r\nTo: box@alice.example\r\nSubject: Second\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nNothing to see.\r\n";
const THIRD: &str = "From: Dave <dave@example.com>\r\nTo: other@alice.example\r\nCc: carol@example.net\r\n\
Subject: =?UTF-8?Q?Caf=C3=A9?=\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nLong body here.\r\n";

/// Alice with two addresses and three messages: two in box@, one in other@.
async fn alice(server: &TestServer) -> User {
    let alice = server
        .alice_with(&["box@alice.example", "other@alice.example"])
        .await;
    server.deliver("box@alice.example", HELLO).await;
    server.deliver("box@alice.example", SECOND).await;
    server.deliver("other@alice.example", THIRD).await;
    alice
}

fn number_after(line: &str, key: &str) -> u32 {
    let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn select_describes_the_mailbox(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let select = client.run("SELECT INBOX").await;
    assert_eq!(select.tail(), "OK [READ-WRITE] SELECT completed");
    assert_eq!(
        select.untagged[0],
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
    );
    assert_eq!(
        select.untagged[1],
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted"
    );
    assert_eq!(select.untagged[2], "* 3 EXISTS");
    assert_eq!(select.untagged[3], "* 3 RECENT");
    assert_eq!(select.untagged[4], "* OK [UNSEEN 1] First unseen");
    assert!(
        select.untagged[5].starts_with("* OK [UIDVALIDITY "),
        "{select:?}"
    );
    assert_eq!(select.untagged[6], "* OK [UIDNEXT 4] Predicted next UID");
    // The next session sees them as no longer recent; EXAMINE is read-only.
    let mut second = server.login(&alice).await;
    let examine = second.run("EXAMINE box@alice.example").await;
    assert_eq!(examine.tail(), "OK [READ-ONLY] EXAMINE completed");
    assert!(
        examine.untagged.contains(&"* 2 EXISTS".to_owned()),
        "{examine:?}"
    );
    assert!(
        examine
            .untagged
            .contains(&"* OK [PERMANENTFLAGS ()] No permanent flags permitted".to_owned())
    );
    let unknown = second.run("SELECT nothing@alice.example").await;
    assert_eq!(unknown.tail(), "NO [NONEXISTENT] No such mailbox");
    // A failed SELECT leaves nothing selected.
    assert_eq!(
        second.run("FETCH 1 FLAGS").await.tail(),
        "BAD No mailbox selected"
    );
}

async fn fetch_answers_every_item(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    let fast = client
        .run("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)")
        .await;
    assert_eq!(fast.untagged.len(), 1, "{fast:?}");
    let line = &fast.untagged[0];
    assert!(
        line.starts_with(
            "* 1 FETCH (FLAGS (\\Recent) INTERNALDATE \"24-Nov-2026 10:00:00 +0000\" RFC822.SIZE "
        ),
        "{line}"
    );
    let size = number_after(line, "RFC822.SIZE");
    assert_eq!(size as usize, HELLO.len());

    // UID FETCH puts the UID first even when not asked for.
    let uid = client.run("UID FETCH 2 FLAGS").await;
    assert_eq!(uid.untagged, vec!["* 2 FETCH (UID 2 FLAGS (\\Recent))"]);

    let peek = client.run_raw("FETCH 1 BODY.PEEK[]").await;
    assert!(
        peek.contains(&format!("BODY[] {{{}}}\r\n{HELLO})", HELLO.len())),
        "{peek}"
    );
    assert!(
        !peek.contains("\\Seen"),
        "PEEK leaves the message unseen: {peek}"
    );

    let partial = client.run_raw("FETCH 1 BODY.PEEK[]<6.3>").await;
    assert!(partial.contains("BODY[]<6> {3}\r\nBob)"), "{partial}");
    let beyond = client.run_raw("FETCH 1 BODY.PEEK[]<100000.10>").await;
    assert!(beyond.contains("BODY[]<100000> {0}\r\n)"), "{beyond}");

    let fields = client
        .run_raw("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject From)]")
        .await;
    assert!(
        fields.contains("BODY[HEADER.FIELDS (Subject From)] {")
            && fields.contains("From: Bob <bob@example.org>\r\nSubject: Hello\r\n\r\n"),
        "{fields}"
    );
    let text = client.run_raw("FETCH 1 BODY.PEEK[TEXT]").await;
    assert!(
        text.contains("BODY[TEXT] {31}\r\nHi Alice, the needle is here.\r\n)"),
        "{text}"
    );

    let envelope = client.run("FETCH 1 ENVELOPE").await;
    assert!(
        envelope.untagged[0].starts_with("* 1 FETCH (ENVELOPE (\"Tue, 24 Nov 2026 10:00:00 +0000\" \"Hello\" ((\"Bob\" NIL \"bob\" \"example.org\"))"),
        "{envelope:?}"
    );
    let structure = client.run("FETCH 1 BODYSTRUCTURE").await;
    assert!(
        structure.untagged[0].contains("(\"text\" \"plain\" (\"charset\" \"us-ascii\")"),
        "{structure:?}"
    );

    // Reading the body marks it \Seen, and the answer says so.
    let body = client.run_raw("FETCH 1 BODY[]").await;
    assert!(body.contains("FLAGS (\\Seen \\Recent)"), "{body}");
    let flags = client.run("FETCH 1 FLAGS").await;
    assert_eq!(flags.untagged, vec!["* 1 FETCH (FLAGS (\\Seen \\Recent))"]);

    let all = client.run("FETCH 1:* ALL").await;
    assert_eq!(all.untagged.len(), 2, "{all:?}");
    let full = client.run("FETCH 2 FULL").await;
    assert!(full.untagged[0].contains(" BODY ("), "{full:?}");
    let rfc822 = client.run_raw("FETCH 2 (RFC822.HEADER RFC822.TEXT)").await;
    assert!(
        rfc822.contains("RFC822.HEADER {")
            && rfc822.contains("RFC822.TEXT {17}\r\nNothing to see.\r\n"),
        "{rfc822}"
    );
}

async fn sizes_always_match_the_bytes_served(server: TestServer) {
    let alice = alice(&server).await;
    // A row the way the external receiver writes it: columns only, no raw bytes.
    server
        .execute(
            "INSERT INTO emails (mailbox_owner, mailbox, subject, from_addr, to_addrs, body, html)
             VALUES ('box@alice.example', 'INBOX', 'Columns only', 'eve@example.org', 'box@alice.example',
                     'plain text', '<p>html</p>')",
        )
        .await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    for _ in 0..2 {
        let size = client.run("FETCH 3 RFC822.SIZE").await;
        let size = number_after(&size.untagged[0], "RFC822.SIZE") as usize;
        let body = client.run_raw("FETCH 3 BODY.PEEK[]").await;
        let literal = number_after(&body, "BODY[] {") as usize;
        assert_eq!(
            size, literal,
            "RFC822.SIZE equals the length of BODY[]: {body}"
        );
        assert!(body.contains("multipart/alternative"), "{body}");
        assert!(body.contains("Subject: Columns only"), "{body}");
    }
}

async fn store_changes_flags_and_they_are_shared(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    let add = client.run("STORE 1 +FLAGS (\\Flagged $Important)").await;
    // A new keyword is announced before the FETCH that shows it (RFC 3501 7.2.6).
    assert_eq!(
        add.untagged,
        vec![
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted",
            "* 1 FETCH (FLAGS (\\Flagged $Important \\Recent))"
        ]
    );
    let silent = client.run("STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert!(silent.untagged.is_empty() && silent.is_ok(), "{silent:?}");
    let remove = client.run("UID STORE 1 -FLAGS (\\Flagged)").await;
    assert_eq!(
        remove.untagged,
        vec!["* 1 FETCH (UID 1 FLAGS ($Important \\Seen \\Recent))"]
    );
    let replace = client.run("STORE 2 FLAGS (\\Answered)").await;
    assert_eq!(
        replace.untagged,
        vec!["* 2 FETCH (FLAGS (\\Answered \\Recent))"]
    );
    // Persisted, and the same message in INBOX shows the same flags.
    let mut other = server.login(&alice).await;
    other.run("EXAMINE INBOX").await;
    let flags = other.run("FETCH 1:3 FLAGS").await;
    assert_eq!(
        flags.untagged,
        vec![
            "* 1 FETCH (FLAGS ($Important \\Seen \\Recent))",
            "* 2 FETCH (FLAGS (\\Answered \\Recent))",
            "* 3 FETCH (FLAGS (\\Recent))",
        ]
    );
    // The first session hears of a change made in INBOX at its next NOOP.
    let mut third = server.login(&alice).await;
    third.run("SELECT INBOX").await;
    third.run("STORE 2 +FLAGS (\\Deleted)").await;
    let noop = client.run("NOOP").await;
    assert_eq!(
        noop.untagged,
        vec!["* 2 FETCH (UID 2 FLAGS (\\Answered \\Deleted \\Recent))"]
    );
}

/// Runs each command and checks its one untagged answer.
async fn answers_each(client: &mut Client, cases: &[(&str, &str)]) {
    for &(command, expected) in cases {
        let response = client.run(command).await;
        assert!(response.is_ok(), "{command}: {response:?}");
        assert_eq!(response.untagged, vec![expected], "{command}");
    }
}

async fn search_finds_by_every_kind_of_key(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT INBOX").await;
    client.run("STORE 2 +FLAGS (\\Seen)").await;
    let cases = [
        ("SEARCH ALL", "* SEARCH 1 2 3"),
        ("SEARCH SEEN", "* SEARCH 2"),
        ("SEARCH UNSEEN", "* SEARCH 1 3"),
        ("SEARCH FROM bob", "* SEARCH 1"),
        ("SEARCH FROM BOB@EXAMPLE.ORG", "* SEARCH 1"),
        ("SEARCH TO other@alice.example", "* SEARCH 3"),
        ("SEARCH CC carol", "* SEARCH 3"),
        ("SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncafé", "* SEARCH 3"),
        ("SEARCH SUBJECT caf", "* SEARCH 3"),
        ("SEARCH BODY needle", "* SEARCH 1"),
        ("SEARCH TEXT needle", "* SEARCH 1"),
        ("SEARCH TEXT Second", "* SEARCH 2"),
        ("SEARCH HEADER Message-ID hello@example.org", "* SEARCH 1"),
        ("SEARCH NOT FROM bob", "* SEARCH 2 3"),
        ("SEARCH OR FROM bob FROM dave", "* SEARCH 1 3"),
        ("SEARCH (FROM bob) (SUBJECT hello)", "* SEARCH 1"),
        ("SEARCH 2:3 UNSEEN", "* SEARCH 3"),
        ("SEARCH UID 1,3", "* SEARCH 1 3"),
        ("SEARCH SENTBEFORE 25-Nov-2026", "* SEARCH 1"),
        ("SEARCH SENTON 25-Nov-2026", "* SEARCH 2"),
        ("SEARCH SENTSINCE 25-Nov-2026", "* SEARCH 2 3"),
        ("SEARCH LARGER 150", "* SEARCH 1 3"),
        ("SEARCH SMALLER 150", "* SEARCH 2"),
        ("SEARCH LARGER 172", "* SEARCH 1"),
        ("SEARCH NEW", "* SEARCH 1 3"),
        ("SEARCH RECENT", "* SEARCH 1 2 3"),
        ("SEARCH OLD", "* SEARCH"),
        ("SEARCH KEYWORD $Junk", "* SEARCH"),
        ("SEARCH SINCE 1-Jan-2000", "* SEARCH 1 2 3"),
        ("SEARCH BEFORE 1-Jan-2000", "* SEARCH"),
        ("UID SEARCH FROM carol", "* SEARCH 2"),
    ];
    answers_each(&mut client, &cases).await;
    let charset = client.run("SEARCH CHARSET KOI8-R ALL").await;
    assert_eq!(
        charset.tail(),
        "NO [BADCHARSET (US-ASCII UTF-8)] Charset KOI8-R is not supported"
    );
    assert_eq!(client.run("SEARCH FROBNICATED").await.status(), "BAD");
}

/// Header keys read the header sections kept after the first such SEARCH:
/// the answers are the same before and after, for a row stored with its
/// bytes and for one made from its columns, and BODY still reads the body.
async fn header_searches_read_the_kept_header_sections(server: TestServer) {
    let alice = alice(&server).await;
    server
        .execute(
            "INSERT INTO emails (mailbox_owner, mailbox, subject, from_addr, to_addrs, body)
             VALUES ('box@alice.example', 'INBOX', 'Columns only', 'eve@example.org',
                     'box@alice.example', 'plain needle text')",
        )
        .await;
    let kept = "SELECT count(*) FROM emails WHERE header_block IS NOT NULL";
    assert_eq!(server.number(kept).await, 0);
    let mut client = server.login(&alice).await;
    client.run("SELECT INBOX").await;
    let cases = [
        ("SEARCH SUBJECT hello", "* SEARCH 1"),
        ("SEARCH SUBJECT columns", "* SEARCH 4"),
        ("SEARCH FROM eve", "* SEARCH 4"),
        ("SEARCH TO other@alice.example", "* SEARCH 3"),
        ("SEARCH HEADER Message-ID hello@example.org", "* SEARCH 1"),
        ("SEARCH SENTON 25-Nov-2026", "* SEARCH 2"),
        ("SEARCH OR SUBJECT second FROM dave", "* SEARCH 2 3"),
        ("SEARCH BODY needle", "* SEARCH 1 4"),
    ];
    answers_each(&mut client, &cases).await;
    assert_eq!(server.number(kept).await, 4);
    answers_each(&mut client, &cases).await;
}

/// RFC 5322 allows comments and folding whitespace inside an address:
/// FROM, TO, CC and BCC match the parsed addresses as well as the text.
async fn address_keys_match_addresses_written_with_comments(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    let commented = "From: <user-from (comment)@ (comment) domain.org>\r\n\
To: <user-to (c) @ (c) domain.org>\r\nCc: Carol (x) <user-cc(c)@(c)domain.org>\r\n\
Bcc: user-bcc (c)@ domain.org\r\nSubject: comments\r\n\r\nbody\r\n";
    let plain =
        "From: other@domain.org\r\nTo: someone@else.example\r\nSubject: plain\r\n\r\nbody\r\n";
    for message in [commented, plain] {
        let append = format!("APPEND Archive {{{}+}}\r\n{message}", message.len());
        assert!(client.run(&append).await.is_ok());
    }
    client.run("SELECT Archive").await;
    let cases = [
        ("SEARCH FROM user-from@domain.org", "* SEARCH 1"),
        ("SEARCH FROM USER-FROM@Domain.ORG", "* SEARCH 1"),
        ("SEARCH TO user-to@domain.org", "* SEARCH 1"),
        ("SEARCH CC user-cc@domain.org", "* SEARCH 1"),
        ("SEARCH BCC user-bcc@domain.org", "* SEARCH 1"),
        ("SEARCH CC carol", "* SEARCH 1"),
        ("SEARCH NOT FROM user-from@domain.org", "* SEARCH 2"),
        ("SEARCH FROM other@domain.org", "* SEARCH 2"),
        ("SEARCH FROM domain.org", "* SEARCH 1 2"),
        // The text still matches as it is written.
        ("SEARCH FROM \"(comment)\"", "* SEARCH 1"),
        ("SEARCH FROM user-to@domain.org", "* SEARCH"),
        ("SEARCH TO user-from@domain.org", "* SEARCH"),
        ("SEARCH FROM nobody@domain.org", "* SEARCH"),
        ("SEARCH CC user-bcc@domain.org", "* SEARCH"),
        ("SEARCH BCC user-cc@domain.org", "* SEARCH"),
    ];
    answers_each(&mut client, &cases).await;
}

async fn expunge_removes_deleted_messages(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT INBOX").await;
    client.run("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    let only = client.run("UID EXPUNGE 2").await;
    assert_eq!(only.untagged, vec!["* 2 EXPUNGE"]);
    let rest = client.run("EXPUNGE").await;
    assert_eq!(rest.untagged, vec!["* 1 EXPUNGE"]);
    let status = client.run("STATUS box@alice.example (MESSAGES)").await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"box@alice.example\" (MESSAGES 0)"]
    );
    let mut reader = server.login(&alice).await;
    reader.run("EXAMINE INBOX").await;
    assert_eq!(
        reader.run("STORE 1 +FLAGS (\\Seen)").await.tail(),
        "NO [CANNOT] The mailbox is open read-only (EXAMINE)"
    );
    assert_eq!(
        reader.run("EXPUNGE").await.tail(),
        "NO [CANNOT] The mailbox is open read-only (EXAMINE)"
    );
    // CLOSE expunges silently; UNSELECT does not.
    client.run("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let close = client.run("CLOSE").await;
    assert!(close.untagged.is_empty() && close.is_ok(), "{close:?}");
    let status = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(status.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 0)"]);
}

async fn copy_and_move_answer_copyuid(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT INBOX").await;
    let copy = client.run("COPY 1:2 Archive").await;
    let archive_validity = number_after(
        &client.run("STATUS Archive (UIDVALIDITY)").await.untagged[0],
        "UIDVALIDITY",
    );
    assert_eq!(
        copy.tail(),
        format!("OK [COPYUID {archive_validity} 1:2 1:2] COPY completed")
    );
    let missing = client.run("COPY 1 Nowhere").await;
    assert_eq!(missing.tail(), "NO [TRYCREATE] No such mailbox");
    let moved = client.run("MOVE 3 Trash").await;
    let trash_validity = number_after(
        &client.run("STATUS Trash (UIDVALIDITY)").await.untagged[0],
        "UIDVALIDITY",
    );
    assert_eq!(
        moved.untagged,
        vec![
            format!("* OK [COPYUID {trash_validity} 3 1] Moved"),
            "* 3 EXPUNGE".to_owned()
        ]
    );
    assert_eq!(moved.tail(), "OK MOVE completed");
    // The copies are the same messages, byte for byte.
    client.run("SELECT Archive").await;
    let copied = client.run_raw("FETCH 1 BODY.PEEK[]").await;
    assert!(copied.contains(HELLO), "{copied}");
    // Apple Mail moves by UIDs learned from COPYUID before it has seen them.
    let uid_move = client.run("UID MOVE 2 Junk").await;
    assert!(uid_move.is_ok(), "{uid_move:?}");
}

async fn append_stores_and_answers_appenduid(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    let message = "From: me@alice.example\r\nSubject: Draft\r\n\r\nWork in progress\r\n";
    client
        .send(
            format!(
                "a1 APPEND Drafts (\\Draft \\Seen) \"05-Mar-2026 08:30:00 +0100\" {{{}}}\r\n",
                message.len()
            )
            .as_bytes(),
        )
        .await;
    assert!(client.line().await.starts_with("+ "));
    client.send(format!("{message}\r\n").as_bytes()).await;
    let appended = client.until_tagged("a1").await;
    let validity = number_after(
        &client.run("STATUS Drafts (UIDVALIDITY)").await.untagged[0],
        "UIDVALIDITY",
    );
    assert_eq!(
        appended.tail(),
        format!("OK [APPENDUID {validity} 1] APPEND completed")
    );
    client.run("SELECT Drafts").await;
    let fetched = client
        .run_raw("FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])")
        .await;
    assert!(
        fetched.contains(
            "FLAGS (\\Draft \\Seen \\Recent) INTERNALDATE \" 5-Mar-2026 07:30:00 +0000\""
        ),
        "{fetched}"
    );
    assert!(fetched.contains(message), "{fetched}");
    // LITERAL+ needs no continuation.
    let plus = client
        .run_raw(&format!("APPEND INBOX {{{}+}}\r\n{message}", message.len()))
        .await;
    assert!(plus.contains("OK [APPENDUID"), "{plus}");
    let missing = client
        .run(&format!(
            "APPEND Nowhere {{{}+}}\r\n{message}",
            message.len()
        ))
        .await;
    assert_eq!(missing.tail(), "NO [TRYCREATE] No such mailbox");
}

async fn oversized_appends_are_refused_before_the_literal(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.send(b"big APPEND INBOX {999999999}\r\n").await;
    assert_eq!(
        client.line().await,
        "big NO [TOOBIG] Message larger than the limit of 52428800 bytes"
    );
    assert!(client.run("NOOP").await.is_ok());
    let status = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(status.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 3)"]);
}

async fn bad_sequence_sets_get_precise_answers(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    client.run("SELECT Archive").await;
    let empty = client.run("FETCH * FLAGS").await;
    assert_eq!(
        empty.tail(),
        "BAD [CLIENTBUG] Invalid message sequence number: the mailbox is empty"
    );
    let uid_empty = client.run("UID FETCH 1:* FLAGS").await;
    assert!(
        uid_empty.untagged.is_empty() && uid_empty.is_ok(),
        "{uid_empty:?}"
    );
    assert_eq!(client.run("FETCH 0 FLAGS").await.status(), "BAD");
    client.run("APPEND Archive {5+}\r\nHi!\r\n").await;
    client.run("APPEND Archive {5+}\r\nHo!\r\n").await;
    client.run("NOOP").await;
    let reversed = client.run("FETCH 2:1 UID").await;
    assert_eq!(
        reversed.untagged,
        vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)"]
    );
    let beyond = client.run("FETCH 1:5 UID").await;
    assert_eq!(
        beyond.tail(),
        "BAD [CLIENTBUG] Invalid message sequence number 5: the mailbox has 2 messages"
    );
    assert_eq!(
        client.run("FETCH 1 (FLAGS FROBNICATE)").await.status(),
        "BAD"
    );
    let unchanged = client.run("FETCH 1:2 FLAGS").await;
    assert_eq!(
        unchanged.untagged,
        vec![
            "* 1 FETCH (FLAGS (\\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))"
        ]
    );
}

async fn idle_reports_new_mail_and_pipelined_commands_follow(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT INBOX").await;
    client.send(b"i1 IDLE\r\n").await;
    assert_eq!(client.line().await, "+ idling");
    server.deliver("box@alice.example", SECOND).await;
    assert_eq!(client.line().await, "* 4 EXISTS");
    assert_eq!(client.line().await, "* 4 RECENT");
    // iOS sends DONE and its next commands together.
    client.send(b"DONE\r\ni2 NOOP\r\ni3 FETCH 4 UID\r\n").await;
    assert_eq!(client.until_tagged("i1").await.tail(), "OK IDLE terminated");
    assert!(client.until_tagged("i2").await.is_ok());
    let fetched = client.until_tagged("i3").await;
    assert_eq!(fetched.untagged, vec!["* 4 FETCH (UID 4)"]);
}

async fn idle_hears_appends_from_another_connection(server: TestServer) {
    let alice = alice(&server).await;
    let mut idler = server.login(&alice).await;
    idler.run("SELECT Drafts").await;
    idler.send(b"i1 IDLE\r\n").await;
    assert_eq!(idler.line().await, "+ idling");
    let mut writer = server.login(&alice).await;
    assert!(writer.run("APPEND Drafts {5+}\r\nHi!\r\n").await.is_ok());
    assert_eq!(idler.line().await, "* 1 EXISTS");
    idler.send(b"DONE\r\n").await;
    assert!(idler.until_tagged("i1").await.is_ok());
}

async fn the_unified_inbox_follows_addresses(server: TestServer) {
    let alice = alice(&server).await;
    server.deliver("new@alice.example", HELLO).await;
    let mut idler = server.login(&alice).await;
    idler.run("SELECT INBOX").await;
    idler.send(b"i1 IDLE\r\n").await;
    assert_eq!(idler.line().await, "+ idling");
    // Creating an address that already has mail brings that mail in as new.
    let mut other = server.login(&alice).await;
    assert!(other.run("CREATE new@alice.example").await.is_ok());
    assert_eq!(idler.line().await, "* 4 EXISTS");
    assert_eq!(idler.line().await, "* 4 RECENT");
    // Deleting an address takes its mail out of INBOX.
    assert!(other.run("DELETE other@alice.example").await.is_ok());
    assert_eq!(idler.line().await, "* 3 EXPUNGE");
    idler.send(b"DONE\r\n").await;
    assert!(idler.until_tagged("i1").await.is_ok());
    let uids = idler.run("FETCH 1:* UID").await;
    assert_eq!(
        uids.untagged,
        vec![
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 4)"
        ]
    );
}

async fn a_new_sender_ban_hides_mail_from_an_open_mailbox(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = server.login(&alice).await;
    client.run("SELECT INBOX").await;
    server.ban("sender", "carol@example.net", "exact").await;
    let noop = client.run("NOOP").await;
    assert_eq!(noop.untagged, vec!["* 2 EXPUNGE"]);
    let search = client.run("SEARCH ALL").await;
    assert_eq!(search.untagged, vec!["* SEARCH 1 2"]);
    let mut fresh = server.login(&alice).await;
    let select = fresh.run("SELECT INBOX").await;
    assert!(
        select.untagged.contains(&"* 2 EXISTS".to_owned()),
        "{select:?}"
    );
    // Carol's message (UID 2) is gone; Dave's, which only copies her, stays.
    let fetch = fresh.run("FETCH 1:* UID").await;
    assert_eq!(
        fetch.untagged,
        vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"]
    );
}

async fn other_customers_mailboxes_look_like_nothing(server: TestServer) {
    let alice = alice(&server).await;
    let bob = server.user("bob@example.com").await;
    server.domain("bob.example", Some(&bob), true, false).await;
    server.address(&bob, "secret@bob.example").await;
    server.deliver("secret@bob.example", HELLO).await;
    let mut client = server.login(&alice).await;
    for (theirs, nobodys) in [
        ("SELECT secret@bob.example", "SELECT nobody@bob.example"),
        ("EXAMINE secret@bob.example", "EXAMINE nobody@bob.example"),
        (
            "APPEND secret@bob.example {5+}\r\nHi!\r\n",
            "APPEND nobody@bob.example {5+}\r\nHi!\r\n",
        ),
    ] {
        let a = client.run(theirs).await;
        let b = client.run(nobodys).await;
        assert_eq!((a.tail(), &a.untagged), (b.tail(), &b.untagged), "{theirs}");
        assert_eq!(a.status(), "NO", "{theirs}");
    }
    client.run("SELECT INBOX").await;
    for verb in ["COPY", "MOVE"] {
        let a = client.run(&format!("{verb} 1 secret@bob.example")).await;
        let b = client.run(&format!("{verb} 1 nobody@bob.example")).await;
        assert_eq!(a.tail(), "NO [TRYCREATE] No such mailbox", "{verb}");
        assert_eq!(a.tail(), b.tail(), "{verb}");
    }
    let mut bobs = server.login(&bob).await;
    let status = bobs.run("STATUS secret@bob.example (MESSAGES)").await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"secret@bob.example\" (MESSAGES 1)"]
    );
}

/// A client that has not enabled UTF8=ACCEPT (none can) never gets a raw
/// 8-bit byte in ENVELOPE or BODYSTRUCTURE: such header text comes as RFC 2047
/// encoded words in a quoted string (ARCHITECTURE: answers clients rely on).
async fn raw_utf8_headers_reach_the_client_as_encoded_words(server: TestServer) {
    let alice = alice(&server).await;
    server
        .deliver(
            "box@alice.example",
            "From: Zoë <zoe@example.de>\r\nSubject: café\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8; name=\"café.txt\"\r\n\r\nhi\r\n",
        )
        .await;
    let mut client = server.login(&alice).await;
    client.run("SELECT box@alice.example").await;
    let answer = client.run_raw("FETCH 3 (ENVELOPE BODYSTRUCTURE)").await;
    assert!(answer.is_ascii(), "{answer}");
    assert!(
        answer.contains(
            "ENVELOPE (NIL \"=?UTF-8?B?Y2Fmw6k=?=\" ((\"=?UTF-8?B?Wm/Dqw==?=\" NIL \"zoe\" \"example.de\"))"
        ),
        "{answer}"
    );
    assert!(
        answer.contains("(\"charset\" \"utf-8\" \"name\" \"=?UTF-8?B?Y2Fmw6kudHh0?=\")"),
        "{answer}"
    );
}

on_both_backends!(
    select_describes_the_mailbox,
    fetch_answers_every_item,
    sizes_always_match_the_bytes_served,
    store_changes_flags_and_they_are_shared,
    search_finds_by_every_kind_of_key,
    header_searches_read_the_kept_header_sections,
    address_keys_match_addresses_written_with_comments,
    expunge_removes_deleted_messages,
    copy_and_move_answer_copyuid,
    append_stores_and_answers_appenduid,
    oversized_appends_are_refused_before_the_literal,
    bad_sequence_sets_get_precise_answers,
    idle_reports_new_mail_and_pipelined_commands_follow,
    idle_hears_appends_from_another_connection,
    the_unified_inbox_follows_addresses,
    a_new_sender_ban_hides_mail_from_an_open_mailbox,
    other_customers_mailboxes_look_like_nothing,
    raw_utf8_headers_reach_the_client_as_encoded_words,
);

/// An external writer's plain INSERT reaches an idling client through
/// LISTEN/NOTIFY, also when it idles on another server process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_insert_wakes_idle_clients_on_every_node() {
    let first = TestServer::start(support::Backend::Postgres).await;
    let alice = alice(&first).await;
    let second = TestServer::start_on(support::Backend::Postgres, first.url.clone()).await;
    let mut idlers: Vec<Client> = Vec::new();
    for server in [&first, &second] {
        let mut client = server.login(&alice).await;
        client.run("SELECT box@alice.example").await;
        client.send(b"i1 IDLE\r\n").await;
        assert_eq!(client.line().await, "+ idling");
        idlers.push(client);
    }
    first
        .execute("INSERT INTO emails (mailbox_owner, subject, from_addr, body) VALUES ('box@alice.example', 'x', 'y@z.example', 'hi')")
        .await;
    for client in &mut idlers {
        assert_eq!(client.line().await, "* 3 EXISTS");
    }
}
