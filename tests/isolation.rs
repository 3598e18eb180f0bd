//! Isolation between customers (docs/ARCHITECTURE.md, "Isolation"): a
//! selection is one incarnation of a mailbox, mail given to one owner of an
//! address never reaches the next, addresses are one whatever their case,
//! and rows the deployment writes itself behave like ours.

mod support;

use support::{Client, TestServer, User};

const ALICE_SECRET: &str = "From: Bank <bank@example.org>\r\nTo: victim@global.test\r\nSubject: alice-secret\r\n\r\nPIN 1234\r\n";
const BOB_OLD: &str = "From: Shop <shop@example.org>\r\nTo: victim@global.test\r\nSubject: bob-old\r\n\r\nreceipt\r\n";
const STRAY: &str =
    "From: News <news@example.org>\r\nTo: victim@global.test\r\nSubject: unowned\r\n\r\nhello\r\n";

const GONE: &str = "* BYE [NONEXISTENT] Selected mailbox was deleted";

async fn global_customers(server: &TestServer) -> (User, User) {
    server.domain("global.test", None, true, true).await;
    let bob = server.user("bob@example.com").await;
    let alice = server.user("alice@example.com").await;
    (bob, alice)
}

/// bob selects victim@global.test, which is then deleted and taken by
/// alice, who gets mail for it. Returns bob's still-open selection.
async fn stale_selection(server: &TestServer, bob: &User, alice: &User) -> Client {
    let mut bob_session = server.login(bob).await;
    assert!(bob_session.run("CREATE victim@global.test").await.is_ok());
    server.deliver("victim@global.test", BOB_OLD).await;
    let selected = bob_session.run("SELECT victim@global.test").await;
    assert!(selected.has_untagged("* 1 EXISTS"), "{selected:?}");
    let mut bob_other = server.login(bob).await;
    assert!(bob_other.run("DELETE victim@global.test").await.is_ok());
    let mut alice_session = server.login(alice).await;
    assert!(alice_session.run("CREATE victim@global.test").await.is_ok());
    server.deliver("victim@global.test", ALICE_SECRET).await;
    bob_session
}

/// Reads everything the server still sends, then checks the session ended
/// with the BYE and nothing of alice's mail came before it.
async fn assert_ended_without_leak(client: &mut Client, first: String) {
    let mut lines = vec![first];
    lines.extend(client.rest().await);
    let text = lines.join("\n");
    assert!(lines.iter().any(|l| l == GONE), "{text}");
    for leak in ["alice-secret", "PIN 1234", "EXISTS"] {
        assert!(!text.contains(leak), "{leak} reached bob: {text}");
    }
    assert!(client.is_closed().await, "the session must end: {text}");
}

async fn a_stale_selection_ends_at_its_next_command_and_never_shows_the_new_owners_mail(
    server: TestServer,
) {
    let (bob, alice) = global_customers(&server).await;
    for command in [
        "NOOP",
        "FETCH 1:* BODY.PEEK[]",
        "UID FETCH 1:* (FLAGS BODY.PEEK[])",
        "STORE 1:* +FLAGS (\\Deleted)",
        "EXPUNGE",
        "COPY 1:* INBOX",
        "SEARCH ALL",
    ] {
        let mut bob_session = stale_selection(&server, &bob, &alice).await;
        bob_session
            .send(format!("s1 {command}\r\n").as_bytes())
            .await;
        let first = bob_session.line().await;
        assert_ended_without_leak(&mut bob_session, first).await;
        // Nothing of alice's changed, and nothing reached bob's INBOX.
        let mut alice_session = server.login(&alice).await;
        let status = alice_session
            .run("STATUS victim@global.test (MESSAGES UNSEEN)")
            .await;
        assert_eq!(
            status.untagged,
            vec!["* STATUS \"victim@global.test\" (MESSAGES 1 UNSEEN 1)"],
            "after bob's {command}"
        );
        let mut bob_check = server.login(&bob).await;
        let inbox = bob_check.run("STATUS INBOX (MESSAGES)").await;
        assert_eq!(
            inbox.untagged,
            vec!["* STATUS \"INBOX\" (MESSAGES 0)"],
            "after bob's {command}"
        );
        assert!(alice_session.run("DELETE victim@global.test").await.is_ok());
    }
}

async fn an_idling_stale_selection_is_ended_instead_of_told_of_the_new_owners_mail(
    server: TestServer,
) {
    let (bob, alice) = global_customers(&server).await;
    let mut bob_session = server.login(&bob).await;
    assert!(bob_session.run("CREATE victim@global.test").await.is_ok());
    assert!(bob_session.run("SELECT victim@global.test").await.is_ok());
    bob_session.send(b"i1 IDLE\r\n").await;
    assert_eq!(bob_session.line().await, "+ idling");
    let mut bob_other = server.login(&bob).await;
    assert!(bob_other.run("DELETE victim@global.test").await.is_ok());
    let first = bob_session.line().await;
    let mut alice_session = server.login(&alice).await;
    assert!(alice_session.run("CREATE victim@global.test").await.is_ok());
    server.deliver("victim@global.test", ALICE_SECRET).await;
    assert_ended_without_leak(&mut bob_session, first).await;
}

async fn deleting_the_selected_address_in_the_same_session_ends_it_after_the_answer(
    server: TestServer,
) {
    let (bob, _) = global_customers(&server).await;
    let mut session = server.login(&bob).await;
    assert!(session.run("CREATE victim@global.test").await.is_ok());
    assert!(session.run("SELECT victim@global.test").await.is_ok());
    session.send(b"d1 DELETE victim@global.test\r\n").await;
    assert_eq!(session.line().await, "d1 OK DELETE completed");
    assert_eq!(session.line().await, GONE);
    assert!(session.is_closed().await);
}

async fn a_selection_ends_when_the_deployment_removes_the_address_row(server: TestServer) {
    let (bob, _) = global_customers(&server).await;
    let mut session = server.login(&bob).await;
    assert!(session.run("CREATE victim@global.test").await.is_ok());
    assert!(session.run("SELECT victim@global.test").await.is_ok());
    server
        .execute("DELETE FROM inbox WHERE email_address = 'victim@global.test'")
        .await;
    noop_until_ended(&mut session).await;
}

async fn a_selection_ends_when_its_address_is_banned(server: TestServer) {
    let (bob, _) = global_customers(&server).await;
    let mut session = server.login(&bob).await;
    assert!(session.run("CREATE victim@global.test").await.is_ok());
    assert!(session.run("SELECT victim@global.test").await.is_ok());
    server.ban("email", "victim@global.test", "exact").await;
    noop_until_ended(&mut session).await;
}

/// A change made outside the server (SQL, a ban) reaches it when its
/// notification or cache refresh does: NOOP until then, as a client would.
async fn noop_until_ended(session: &mut Client) {
    for attempt in 0.. {
        session
            .send(format!("n{attempt} NOOP\r\n").as_bytes())
            .await;
        let first = session.line().await;
        if first != format!("n{attempt} OK NOOP completed") {
            assert_ended_without_leak(session, first).await;
            return;
        }
        assert!(
            attempt < 50,
            "the session never learned its mailbox went away"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn selecting_another_mailbox_simply_replaces_a_stale_selection(server: TestServer) {
    let (bob, alice) = global_customers(&server).await;
    let mut bob_session = stale_selection(&server, &bob, &alice).await;
    let selected = bob_session.run("SELECT INBOX").await;
    assert!(selected.is_ok(), "{selected:?}");
    assert!(selected.has_untagged("* 0 EXISTS"), "{selected:?}");
}

async fn create_never_adopts_mail_given_to_an_earlier_owner(server: TestServer) {
    let (bob, alice) = global_customers(&server).await;
    let mut bob_session = server.login(&bob).await;
    assert!(bob_session.run("CREATE victim@global.test").await.is_ok());
    server.deliver("victim@global.test", BOB_OLD).await;
    // The deployment releases the address but keeps its mail; more mail
    // arrives while nobody owns it.
    server
        .execute("DELETE FROM inbox WHERE email_address = 'victim@global.test'")
        .await;
    server.deliver("victim@global.test", STRAY).await;
    let mut alice_session = server.login(&alice).await;
    assert!(alice_session.run("CREATE victim@global.test").await.is_ok());
    for mailbox in ["victim@global.test", "INBOX"] {
        assert!(
            alice_session
                .run(&format!("SELECT {mailbox}"))
                .await
                .is_ok()
        );
        let subjects = alice_session
            .run("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
            .await;
        let text = subjects.untagged.join("\n");
        assert!(text.contains("unowned"), "{mailbox}: {text}");
        assert!(!text.contains("bob-old"), "{mailbox}: {text}");
        assert_eq!(text.matches(" FETCH ").count(), 1, "{mailbox}: {text}");
    }
    // What bob was given stays bob's.
    let mut bob_again = server.login(&bob).await;
    assert!(bob_again.run("SELECT INBOX").await.is_ok());
    let subjects = bob_again
        .run("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        .await
        .untagged
        .join("\n");
    assert!(subjects.contains("bob-old"), "{subjects}");
    assert!(!subjects.contains("unowned"), "{subjects}");
}

async fn addresses_that_differ_only_in_case_are_one_address(server: TestServer) {
    let (_bob, alice) = global_customers(&server).await;
    // A legacy row written by the deployment, in mixed case.
    server
        .execute(
            "INSERT INTO inbox (email_address, user_id)
             SELECT 'Box@Global.test', id FROM users WHERE email = 'bob@example.com'",
        )
        .await;
    let mut session = server.login(&alice).await;
    let created = session.run("CREATE box@global.test").await;
    assert_eq!(
        created.tail(),
        "NO [ALREADYEXISTS] This address is already taken"
    );
    let status = session.run("STATUS BOX@GLOBAL.TEST (MESSAGES)").await;
    assert_eq!(
        status.tail(),
        "NO [NONEXISTENT] No such mailbox",
        "{status:?}"
    );
}

async fn an_address_inserted_by_the_deployment_is_usable_at_once(server: TestServer) {
    let (_bob, alice) = global_customers(&server).await;
    let mut session = server.login(&alice).await;
    server
        .execute(
            "INSERT INTO inbox (email_address, user_id)
             SELECT 'web@global.test', id FROM users WHERE email = 'alice@example.com'",
        )
        .await;
    let status = session
        .run("STATUS web@global.test (MESSAGES UIDNEXT UIDVALIDITY)")
        .await;
    assert!(status.is_ok(), "{status:?}");
    assert!(
        status.untagged[0].starts_with("* STATUS \"web@global.test\" (MESSAGES 0 UIDNEXT 1 "),
        "{status:?}"
    );
    let selected = session.run("SELECT web@global.test").await;
    assert!(selected.is_ok(), "{selected:?}");
    assert!(selected.has_untagged("* 0 EXISTS"), "{selected:?}");
    server.deliver("web@global.test", STRAY).await;
    let noop = session.run("NOOP").await;
    assert!(noop.has_untagged("* 1 EXISTS"), "{noop:?}");
}

async fn a_body_column_cannot_forge_the_sender(server: TestServer) {
    let (_bob, alice) = global_customers(&server).await;
    let mut session = server.login(&alice).await;
    assert!(session.run("CREATE box@global.test").await.is_ok());
    // A row as the deployment's receiver may write it: no raw bytes, and a
    // text body that happens to start like a header block.
    server
        .execute(
            "INSERT INTO emails (mailbox_owner, subject, body, from_addr, to_addrs)
             VALUES ('box@global.test', 'Your order', 'From: Security Team <security@bank.example>
MIME-Version: 1.0

Your account is locked, log in at http://bank.example.evil/', 'orders@shop.example', 'box@global.test')",
        )
        .await;
    assert!(session.run("SELECT box@global.test").await.is_ok());
    let fetched = session
        .run("FETCH 1 (ENVELOPE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM)] BODY.PEEK[])")
        .await;
    let text = fetched.untagged.join("\n");
    assert!(
        text.contains("(NIL NIL \"orders\" \"shop.example\")"),
        "{text}"
    );
    assert!(text.contains("From: orders@shop.example"), "{text}");
    assert!(!text.contains("security@bank.example>\r\nMIME"), "{text}");
    // Built from the columns: ends with a line break, and its size is true.
    let whole = session.run_raw("FETCH 1 BODY.PEEK[]").await;
    let (head, rest) = whole.split_once("BODY[] {").expect("a literal");
    let (length, literal) = rest.split_once("}\r\n").expect("a literal length");
    let length: usize = length.parse().expect("a number");
    let body = &literal.as_bytes()[..length];
    assert!(body.ends_with(b"\r\n"), "{head}{rest}");
    assert!(text.contains(&format!("RFC822.SIZE {length}")), "{text}");
}

/// The race behind APPEND and COPY: the name was resolved for bob, and the
/// address changed hands before the write. The write must not land in
/// alice's mailbox.
async fn a_write_for_a_released_address_never_lands_with_its_new_owner(server: TestServer) {
    use imap_server::store::{MailboxId, StoreError};
    let (bob, alice) = global_customers(&server).await;
    server.address(&bob, "victim@global.test").await;
    let bobs = MailboxId::Address {
        address: "victim@global.test".into(),
        user_id: bob.id.clone(),
    };
    server
        .database
        .mail
        .delete_address(&bob.id, "victim@global.test")
        .await
        .unwrap();
    server.address(&alice, "victim@global.test").await;
    let message =
        imap_server::imap::new_message(BOB_OLD.as_bytes().to_vec(), Vec::new(), chrono::Utc::now());
    let appended = server.database.mail.append(&bobs, &message).await;
    assert!(
        matches!(appended, Err(StoreError::NotFound)),
        "{appended:?}"
    );
    let bobs_drafts = MailboxId::Folder {
        user_id: bob.id.clone(),
        name: "Drafts".into(),
    };
    server
        .database
        .mail
        .provision_user(&bob.id, &["Drafts"])
        .await
        .unwrap();
    let stored = server
        .database
        .mail
        .append(&bobs_drafts, &message)
        .await
        .unwrap();
    let copied = server
        .database
        .mail
        .copy(&bobs_drafts, &[stored.uid], &bobs)
        .await;
    assert!(matches!(copied, Err(StoreError::NotFound)), "{copied:?}");
    let mut alice_session = server.login(&alice).await;
    let status = alice_session
        .run("STATUS victim@global.test (MESSAGES)")
        .await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"victim@global.test\" (MESSAGES 0)"]
    );
}

on_both_backends!(
    a_write_for_a_released_address_never_lands_with_its_new_owner,
    a_stale_selection_ends_at_its_next_command_and_never_shows_the_new_owners_mail,
    an_idling_stale_selection_is_ended_instead_of_told_of_the_new_owners_mail,
    deleting_the_selected_address_in_the_same_session_ends_it_after_the_answer,
    a_selection_ends_when_the_deployment_removes_the_address_row,
    a_selection_ends_when_its_address_is_banned,
    selecting_another_mailbox_simply_replaces_a_stale_selection,
    create_never_adopts_mail_given_to_an_earlier_owner,
    addresses_that_differ_only_in_case_are_one_address,
    an_address_inserted_by_the_deployment_is_usable_at_once,
    a_body_column_cannot_forge_the_sender,
);

/// Supabase mode: accounts in the fake Supabase, inboxes and mail in the
/// database; the selection rule does not depend on where accounts live.
async fn supabase_stale_selection_ends(server: TestServer) {
    let (bob, alice) = global_customers(&server).await;
    let mut bob_session = stale_selection(&server, &bob, &alice).await;
    bob_session.send(b"n1 NOOP\r\n").await;
    let first = bob_session.line().await;
    assert_ended_without_leak(&mut bob_session, first).await;
}

in_supabase_mode!(
    supabase_stale_selection_ends,
    a_selection_ends_when_its_address_is_banned
);
