//! Mailboxes as a customer sees them (ARCHITECTURE: mailboxes; accounts): addresses created on
//! the right domains only, personal folders, LIST, STATUS and isolation.

mod support;

use std::time::Duration;

use support::{Backend, Options, TestServer, User};

async fn customer(server: &TestServer, email: &str, domain: &str) -> User {
    let user = server.user(email).await;
    server.domain(domain, Some(&user), true, false).await;
    user
}

const SAMPLE: &str = "From: Bob <bob@example.org>\r\nTo: x\r\nSubject: Hello\r\n\r\nHi\r\n";

async fn addresses_are_created_on_owned_subdomain_and_global_domains(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server.domain("global.example", None, true, true).await;
    let mut client = server.login(&alice).await;
    for name in [
        "box@alice.example",
        "Box2@Deep.Sub.Alice.Example",
        "x@global.example",
    ] {
        let response = client.run(&format!("CREATE {name}")).await;
        assert!(response.is_ok(), "{name}: {response:?}");
    }
    let list = client.run("LIST \"\" *").await;
    for name in [
        "box@alice.example",
        "box2@deep.sub.alice.example",
        "x@global.example",
    ] {
        assert!(
            list.untagged
                .contains(&format!("* LIST (\\HasNoChildren) \"/\" \"{name}\"")),
            "{name} missing: {list:?}"
        );
    }
    // Addresses are case-insensitive everywhere.
    let status = client.run("STATUS BOX@ALICE.EXAMPLE (MESSAGES)").await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"box@alice.example\" (MESSAGES 0)"]
    );
}

async fn addresses_on_other_domains_are_refused(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    let bob = customer(&server, "bob@example.com", "bob.example").await;
    server
        .domain("off.example", Some(&alice), false, false)
        .await;
    server.domain("global-off.example", None, false, true).await;
    let mut client = server.login(&alice).await;
    let cases = [
        (
            "x@bob.example",
            "NO [NOPERM] You can only create addresses on your own domains or a global domain",
        ),
        (
            "x@sub.bob.example",
            "NO [NOPERM] You can only create addresses on your own domains or a global domain",
        ),
        (
            "x@nobody.example",
            "NO [NOPERM] You can only create addresses on your own domains or a global domain",
        ),
        ("x@off.example", "NO [NOPERM] This domain is not active"),
        (
            "x@global-off.example",
            "NO [NOPERM] This domain is not active",
        ),
        ("not an address@", "NO [CANNOT] Not a valid email address"),
    ];
    for (name, expected) in cases {
        let response = client.run(&format!("CREATE \"{name}\"")).await;
        assert_eq!(response.tail(), expected, "{name}");
    }
    let _ = bob;
}

async fn banned_domains_and_addresses_are_refused(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server
        .domain("spam.alice.example", Some(&alice), true, false)
        .await;
    server
        .domain("evil.example", Some(&alice), true, false)
        .await;
    server.ban("domain", "evil.example", "exact").await;
    server.ban("domain", "spam", "contains").await;
    server.ban("email", "admin@alice.example", "exact").await;
    server.ban("email", "contains:root", "exact").await;
    let mut client = server.login(&alice).await;
    let cases = [
        ("x@evil.example", "NO [NOPERM] This domain is banned"),
        ("x@spam.alice.example", "NO [NOPERM] This domain is banned"),
        ("ADMIN@alice.example", "NO [NOPERM] This address is banned"),
        (
            "superroot@alice.example",
            "NO [NOPERM] This address is banned",
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(
            client.run(&format!("CREATE {name}")).await.tail(),
            expected,
            "{name}"
        );
    }
    assert!(client.run("CREATE fine@alice.example").await.is_ok());
}

async fn a_taken_address_cannot_be_created_again(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "shared.example").await;
    let bob = server.user("bob@example.com").await;
    server.domain("global.example", None, true, true).await;
    server.address(&alice, "taken@global.example").await;
    let mut client = server.login(&bob).await;
    let response = client.run("CREATE taken@global.example").await;
    assert_eq!(
        response.tail(),
        "NO [ALREADYEXISTS] This address is already taken"
    );
    let mut client = server.login(&alice).await;
    let response = client.run("CREATE Taken@Global.example").await;
    assert_eq!(
        response.tail(),
        "NO [ALREADYEXISTS] This address is already taken"
    );
}

async fn deleting_an_address_releases_it_and_its_mail(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server.address(&alice, "box@alice.example").await;
    server.deliver("box@alice.example", SAMPLE).await;
    let mut client = server.login(&alice).await;
    let status = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(status.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 1)"]);
    assert!(client.run("DELETE box@alice.example").await.is_ok());
    let status = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(status.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 0)"]);
    assert_eq!(
        client
            .run("STATUS box@alice.example (MESSAGES)")
            .await
            .tail(),
        "NO [NONEXISTENT] No such mailbox"
    );
    // Created again, it is a new mailbox: empty, with a larger UIDVALIDITY.
    assert!(client.run("CREATE box@alice.example").await.is_ok());
    let status = client
        .run("STATUS box@alice.example (MESSAGES UIDNEXT)")
        .await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"box@alice.example\" (MESSAGES 0 UIDNEXT 2)"]
    );
}

async fn mail_that_arrived_before_the_address_was_created_is_adopted(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server.deliver("early@alice.example", SAMPLE).await;
    server.deliver("early@alice.example", SAMPLE).await;
    let mut client = server.login(&alice).await;
    assert!(client.run("CREATE early@alice.example").await.is_ok());
    let inbox = client.run("STATUS INBOX (MESSAGES UIDNEXT UNSEEN)").await;
    assert_eq!(
        inbox.untagged,
        vec!["* STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)"]
    );
    let address = client
        .run("STATUS early@alice.example (MESSAGES UIDNEXT)")
        .await;
    assert_eq!(
        address.untagged,
        vec!["* STATUS \"early@alice.example\" (MESSAGES 2 UIDNEXT 3)"]
    );
}

async fn personal_folders_are_created_renamed_and_deleted(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    assert!(client.run("CREATE Projects").await.is_ok());
    assert_eq!(
        client.run("CREATE Projects").await.tail(),
        "NO [ALREADYEXISTS] Mailbox already exists"
    );
    assert!(client.run("CREATE \"Sent Items\"").await.is_ok());
    assert!(client.run("CREATE \"Deleted Messages\"").await.is_ok());
    // Superior levels are created as needed (RFC 3501 6.3.3).
    assert!(client.run("CREATE Work/2026/Q1").await.is_ok());
    assert!(client.run("CREATE \"Entw&APw-rfe\"").await.is_ok());
    let list = client.run("LIST \"\" *").await;
    for expected in [
        "* LIST (\\HasNoChildren) \"/\" \"Projects\"",
        "* LIST (\\HasNoChildren) \"/\" \"Sent Items\"",
        "* LIST (\\HasChildren) \"/\" \"Work\"",
        "* LIST (\\HasChildren) \"/\" \"Work/2026\"",
        "* LIST (\\HasNoChildren) \"/\" \"Work/2026/Q1\"",
        "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"",
    ] {
        assert!(
            list.untagged.iter().any(|l| l == expected),
            "{expected} missing: {list:?}"
        );
    }
    assert_eq!(
        client.run("DELETE Work").await.tail(),
        "NO [HASCHILDREN] Mailbox has children; delete them first"
    );
    assert!(client.run("RENAME Work Archive/Work").await.is_ok());
    let list = client.run("LIST Archive/ *").await;
    assert_eq!(
        list.untagged,
        vec![
            "* LIST (\\HasChildren) \"/\" \"Archive/Work\"",
            "* LIST (\\HasChildren) \"/\" \"Archive/Work/2026\"",
            "* LIST (\\HasNoChildren) \"/\" \"Archive/Work/2026/Q1\"",
        ]
    );
    assert_eq!(
        client.run("STATUS Work (MESSAGES)").await.tail(),
        "NO [NONEXISTENT] No such mailbox"
    );
    assert!(client.run("DELETE Projects").await.is_ok());
    assert_eq!(
        client.run("DELETE Projects").await.tail(),
        "NO [NONEXISTENT] No such mailbox"
    );
    assert_eq!(
        client.run("RENAME Projects P2").await.tail(),
        "NO [NONEXISTENT] No such mailbox"
    );
    assert_eq!(
        client.run("RENAME \"Sent Items\" Drafts").await.tail(),
        "NO [ALREADYEXISTS] Mailbox already exists"
    );
}

async fn a_folder_created_again_gets_a_new_uidvalidity(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    client.run("CREATE Temp").await;
    let first = client.run("STATUS Temp (UIDVALIDITY)").await.untagged[0].clone();
    client.run("DELETE Temp").await;
    client.run("CREATE Temp").await;
    let second = client.run("STATUS Temp (UIDVALIDITY)").await.untagged[0].clone();
    let number = |line: &str| -> u64 {
        line.trim_end_matches(')')
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(number(&second) > number(&first), "{first} then {second}");
}

async fn inbox_and_addresses_cannot_be_deleted_or_renamed_wrongly(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server.address(&alice, "box@alice.example").await;
    let mut client = server.login(&alice).await;
    assert_eq!(
        client.run("DELETE INBOX").await.tail(),
        "NO [CANNOT] Cannot delete INBOX"
    );
    assert_eq!(
        client.run("DELETE inbox").await.tail(),
        "NO [CANNOT] Cannot delete INBOX"
    );
    assert_eq!(
        client.run("CREATE INBOX").await.tail(),
        "NO [ALREADYEXISTS] INBOX always exists"
    );
    assert!(
        client
            .run("RENAME box@alice.example other@alice.example")
            .await
            .tail()
            .starts_with("NO [CANNOT]")
    );
    assert!(
        client
            .run("RENAME INBOX Old")
            .await
            .tail()
            .starts_with("NO [CANNOT]")
    );
    assert!(client.run("CREATE Folder").await.is_ok());
    assert!(
        client
            .run("RENAME Folder new@alice.example")
            .await
            .tail()
            .starts_with("NO [CANNOT]")
    );
}

async fn list_shows_only_the_customers_own_mailboxes_with_attributes(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    let bob = customer(&server, "bob@example.com", "bob.example").await;
    server.address(&alice, "a1@alice.example").await;
    server.address(&bob, "b1@bob.example").await;
    let mut client = server.login(&alice).await;
    let list = client.run("LIST \"\" *").await;
    assert_eq!(
        list.untagged,
        vec![
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
            "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "* LIST (\\HasNoChildren) \"/\" \"a1@alice.example\"",
        ]
    );
    let root = client.run("LIST \"\" \"\"").await;
    assert_eq!(root.untagged, vec!["* LIST (\\Noselect) \"/\" \"\""]);
    let percent = client.run("LIST \"\" %@%").await;
    assert_eq!(
        percent.untagged,
        vec!["* LIST (\\HasNoChildren) \"/\" \"a1@alice.example\""]
    );
    let other = client.run("LIST \"\" b1@bob.example").await;
    assert!(other.untagged.is_empty(), "{other:?}");
    let lsub = client.run("LSUB \"\" *").await;
    assert_eq!(lsub.untagged.len(), 7, "{lsub:?}");
    assert!(client.run("UNSUBSCRIBE Junk").await.is_ok());
    let lsub = client.run("LSUB \"\" *").await;
    assert!(!lsub.has_untagged("\"Junk\""), "{lsub:?}");
    assert!(client.run("SUBSCRIBE Junk").await.is_ok());
    assert!(client.run("LSUB \"\" Junk").await.has_untagged("\"Junk\""));
}

/// RFC 3501 6.3.9: with `%`, a level that is not subscribed but has a
/// subscribed name below it, at any depth, is answered as `\Noselect`; `*`
/// and a pattern without `%` answer subscribed names only.
async fn lsub_percent_answers_unsubscribed_parents_as_noselect(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    for folder in ["a/b/c", "box/parent/child/leaf"] {
        assert!(client.run(&format!("CREATE {folder}")).await.is_ok());
    }
    for parent in ["a", "a/b", "box", "box/parent", "box/parent/child"] {
        assert!(client.run(&format!("UNSUBSCRIBE {parent}")).await.is_ok());
    }
    let cases: [(&str, &[&str]); 10] = [
        ("\"a/%\"", &["* LSUB (\\Noselect) \"/\" \"a/b\""]),
        ("\"a/b/%\"", &["* LSUB (\\HasNoChildren) \"/\" \"a/b/c\""]),
        ("\"a*\"", &["* LSUB (\\HasNoChildren) \"/\" \"a/b/c\""]),
        (
            "\"%/%\"",
            &[
                "* LSUB (\\Noselect) \"/\" \"a/b\"",
                "* LSUB (\\Noselect) \"/\" \"box/parent\"",
            ],
        ),
        ("\"box/%\"", &["* LSUB (\\Noselect) \"/\" \"box/parent\""]),
        (
            "\"box/%/%\"",
            &["* LSUB (\\Noselect) \"/\" \"box/parent/child\""],
        ),
        (
            "\"box/*\"",
            &["* LSUB (\\HasNoChildren) \"/\" \"box/parent/child/leaf\""],
        ),
        // Without `%` an unsubscribed level is not answered at all.
        ("\"a/b\"", &[]),
        ("\"*b\"", &[]),
        ("\"a/%/x\"", &[]),
    ];
    for (pattern, expected) in cases {
        let lsub = client.run(&format!("LSUB \"\" {pattern}")).await;
        assert!(lsub.is_ok(), "{pattern}: {lsub:?}");
        assert_eq!(lsub.untagged, expected, "LSUB {pattern}");
    }
    let top = client.run("LSUB \"\" %").await;
    for expected in [
        "* LSUB (\\Noselect) \"/\" \"a\"",
        "* LSUB (\\Noselect) \"/\" \"box\"",
    ] {
        assert!(
            top.untagged.iter().any(|l| l == expected),
            "{expected}: {top:?}"
        );
    }
    let all = client.run("LSUB \"\" *").await;
    assert!(!all.has_untagged("\"a/b\""), "{all:?}");
    assert!(!all.has_untagged("Noselect"), "{all:?}");
    // LIST is unchanged: every level, subscribed or not.
    let list = client.run("LIST \"\" \"a/%\"").await;
    assert_eq!(list.untagged, vec!["* LIST (\\HasChildren) \"/\" \"a/b\""]);
    // Subscribed again, the level answers for itself.
    assert!(client.run("SUBSCRIBE a/b").await.is_ok());
    let lsub = client.run("LSUB \"\" \"a/%\"").await;
    assert_eq!(lsub.untagged, vec!["* LSUB (\\HasChildren) \"/\" \"a/b\""]);
}

/// RFC 3501 5.1.3: a quoted name with `&` runs that are not modified UTF-7
/// is well-formed IMAP that names nothing. It is answered as an unknown
/// mailbox (or, for a new name, one that cannot be made), never BAD; real
/// grammar errors stay BAD.
async fn names_that_are_not_modified_utf7_are_unknown_mailboxes(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    assert!(client.run("CREATE Temp").await.is_ok());
    assert!(client.run("APPEND INBOX {5+}\r\nHi!\r\n").await.is_ok());
    // COPY and MOVE first: a failed SELECT leaves no mailbox selected.
    let refusals: [(&[&str], &str); 3] = [
        (
            &[
                "APPEND {} {5+}\r\nHi!\r\n",
                "COPY 1 {}",
                "MOVE 1 {}",
                "UID COPY 1 {}",
            ],
            "NO [TRYCREATE] No such mailbox",
        ),
        (
            &[
                "SELECT {}",
                "EXAMINE {}",
                "STATUS {} (MESSAGES)",
                "DELETE {}",
                "RENAME {} Other",
                "SUBSCRIBE {}",
                "UNSUBSCRIBE {}",
            ],
            "NO [NONEXISTENT] No such mailbox",
        ),
        (
            &["CREATE {}", "RENAME Temp {}"],
            "NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 5.1.3)",
        ),
    ];
    for name in ["\"!#$&'+,-.0123456789:;<=>?@^_`|[}\"", "\"bad&name\""] {
        client.run("SELECT INBOX").await;
        for (commands, expected) in refusals {
            for command in commands {
                let command = command.replace("{}", name);
                assert_eq!(client.run(&command).await.tail(), expected, "{command}");
            }
        }
        let pattern = format!("{}%*\"", name.trim_end_matches('"'));
        for command in [
            format!("LIST \"\" {pattern}"),
            format!("LSUB \"\" {pattern}"),
            format!("LIST {name} *"),
        ] {
            let answer = client.run(&command).await;
            assert!(
                answer.is_ok() && answer.untagged.is_empty(),
                "{command}: {answer:?}"
            );
        }
    }
    // Nothing was made, moved or lost.
    assert!(client.run("STATUS Temp (MESSAGES)").await.is_ok());
    let inbox = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(inbox.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 1)"]);
    // Grammar errors are still BAD.
    for command in ["SELECT", "CREATE", "LIST \"\"", "RENAME Temp"] {
        assert_eq!(client.run(command).await.status(), "BAD", "{command}");
    }
    assert!(client.run("NOOP").await.is_ok());
}

async fn another_customers_address_looks_like_nothing_at_all(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    let bob = customer(&server, "bob@example.com", "bob.example").await;
    server.address(&bob, "secret@bob.example").await;
    server.deliver("secret@bob.example", SAMPLE).await;
    let mut client = server.login(&alice).await;
    for command in [
        "STATUS {} (MESSAGES)",
        "DELETE {}",
        "SUBSCRIBE {}",
        "UNSUBSCRIBE {}",
        "RENAME {} mine",
    ] {
        let theirs = client
            .run(&command.replace("{}", "secret@bob.example"))
            .await;
        let nobodys = client
            .run(&command.replace("{}", "nobody@bob.example"))
            .await;
        assert_eq!(
            theirs.tail(),
            "NO [NONEXISTENT] No such mailbox",
            "{command}"
        );
        assert_eq!(theirs.tail(), nobodys.tail(), "{command}");
        assert_eq!(theirs.untagged, nobodys.untagged, "{command}");
    }
    // Bob's mail is still there.
    let mut bobs = server.login(&bob).await;
    let status = bobs.run("STATUS secret@bob.example (MESSAGES)").await;
    assert_eq!(
        status.untagged,
        vec!["* STATUS \"secret@bob.example\" (MESSAGES 1)"]
    );
}

async fn status_counts_only_visible_mail(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server.address(&alice, "box@alice.example").await;
    server.deliver("box@alice.example", SAMPLE).await;
    server
        .deliver(
            "box@alice.example",
            "From: Casino <win@casino.example>\r\nSubject: $$$\r\n\r\nwin\r\n",
        )
        .await;
    server
        .deliver(
            "box@alice.example",
            "From: spammer@bad.example\r\nSubject: x\r\n\r\nx\r\n",
        )
        .await;
    server.ban("sender", "casino", "contains").await;
    server.ban("sender", "SPAMMER@bad.example", "exact").await;
    let mut client = server.login(&alice).await;
    let status = client
        .run("STATUS box@alice.example (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY)")
        .await;
    let line = &status.untagged[0];
    assert!(
        line.starts_with(
            "* STATUS \"box@alice.example\" (MESSAGES 1 UNSEEN 1 RECENT 1 UIDNEXT 4 UIDVALIDITY "
        ),
        "{line}"
    );
    let inbox = client.run("STATUS INBOX (MESSAGES)").await;
    assert_eq!(inbox.untagged, vec!["* STATUS \"INBOX\" (MESSAGES 1)"]);
}

async fn a_banned_address_cannot_be_opened(server: TestServer) {
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    server.address(&alice, "box@alice.example").await;
    server.ban("email", "box@alice.example", "exact").await;
    let mut client = server.login(&alice).await;
    assert_eq!(
        client
            .run("STATUS box@alice.example (MESSAGES)")
            .await
            .tail(),
        "NO [NOPERM] This address is banned"
    );
}

on_both_backends!(
    addresses_are_created_on_owned_subdomain_and_global_domains,
    addresses_on_other_domains_are_refused,
    banned_domains_and_addresses_are_refused,
    a_taken_address_cannot_be_created_again,
    deleting_an_address_releases_it_and_its_mail,
    mail_that_arrived_before_the_address_was_created_is_adopted,
    personal_folders_are_created_renamed_and_deleted,
    a_folder_created_again_gets_a_new_uidvalidity,
    inbox_and_addresses_cannot_be_deleted_or_renamed_wrongly,
    list_shows_only_the_customers_own_mailboxes_with_attributes,
    lsub_percent_answers_unsubscribed_parents_as_noselect,
    names_that_are_not_modified_utf7_are_unknown_mailboxes,
    another_customers_address_looks_like_nothing_at_all,
    status_counts_only_visible_mail,
    a_banned_address_cannot_be_opened,
);

/// Long enough that the steps between two refreshes fit in it on a busy machine.
const TTL: Duration = Duration::from_secs(3);

/// The domain cache: new domains become usable within the TTL, and a failed
/// refresh keeps the last good copy.
async fn domain_cache(backend: Backend) {
    let options = Options {
        domain_ttl: TTL,
        ..Options::default()
    };
    let server = TestServer::start_with(backend, options).await;
    let alice = customer(&server, "alice@example.com", "alice.example").await;
    let mut client = server.login(&alice).await;
    assert!(client.run("CREATE a@alice.example").await.is_ok());
    // Loaded now: a domain added afterwards is not known yet...
    server
        .domain("later.example", Some(&alice), true, false)
        .await;
    assert_eq!(client.run("CREATE a@later.example").await.status(), "NO");
    // ...and is once the cache time has passed.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    assert!(client.run("CREATE a@later.example").await.is_ok());
    // The domains table disappears: refreshes fail, the last copy is served.
    server
        .execute("ALTER TABLE domains RENAME TO domains_gone")
        .await;
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    assert!(client.run("CREATE b@alice.example").await.is_ok());
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    assert!(client.run("CREATE c@later.example").await.is_ok());
    server
        .execute("ALTER TABLE domains_gone RENAME TO domains")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_cache_on_postgres() {
    domain_cache(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_cache_on_sqlite() {
    domain_cache(Backend::Sqlite).await;
}

in_supabase_mode!(
    addresses_are_created_on_owned_subdomain_and_global_domains,
    addresses_on_other_domains_are_refused,
    banned_domains_and_addresses_are_refused,
    a_taken_address_cannot_be_created_again,
    deleting_an_address_releases_it_and_its_mail,
    another_customers_address_looks_like_nothing_at_all,
    status_counts_only_visible_mail,
    a_banned_address_cannot_be_opened,
);

/// Mixed mode: accounts in Supabase, domains and bans in `DATABASE_URL`
/// (`USE_SUPABASE_DOMAINS=false`, `USE_SUPABASE_BANS=false`). The fixtures
/// follow the toggles, so the same scenarios prove the rows are read there.
mod supabase_accounts_with_local_rules {
    use super::support::{Backend, Options, SupabaseOptions, TestServer};

    async fn mixed(backend: Backend, use_domains: bool, use_bans: bool) -> TestServer {
        let mode = SupabaseOptions {
            use_domains,
            use_bans,
            ..SupabaseOptions::default()
        };
        TestServer::start_with(backend, Options::supabase_with(mode)).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn domains_and_bans_from_postgres() {
        let server = mixed(Backend::Postgres, false, false).await;
        super::banned_domains_and_addresses_are_refused(server).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn domains_from_postgres_bans_from_supabase() {
        let server = mixed(Backend::Postgres, false, true).await;
        super::banned_domains_and_addresses_are_refused(server).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn domains_from_supabase_bans_from_postgres() {
        let server = mixed(Backend::Postgres, true, false).await;
        super::banned_domains_and_addresses_are_refused(server).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_domains_refused_from_sqlite() {
        let server = mixed(Backend::Sqlite, false, false).await;
        super::addresses_on_other_domains_are_refused(server).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_banned_address_from_sqlite_cannot_be_opened() {
        let server = mixed(Backend::Sqlite, false, false).await;
        super::a_banned_address_cannot_be_opened(server).await;
    }
}
