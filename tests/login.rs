//! Logging in with an IMAP token (RFC 3501 6.2; ARCHITECTURE: accounts), on both backends,
//! and every scenario again in Supabase mode (README: Supabase mode): same answers.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use support::TestServer;

async fn a_valid_token_logs_in_and_announces_capabilities(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    assert!(
        client.greeting.contains("[CAPABILITY IMAP4rev1"),
        "{}",
        client.greeting
    );
    assert!(
        client.greeting.contains("AUTH=PLAIN"),
        "{}",
        client.greeting
    );
    let response = client
        .run(&format!("LOGIN alice@example.com {}", alice.token))
        .await;
    assert!(
        response.tail().starts_with("OK [CAPABILITY IMAP4rev1"),
        "{response:?}"
    );
    let capability = client.run("CAPABILITY").await;
    assert!(
        capability.untagged[0].starts_with("* CAPABILITY IMAP4rev1 "),
        "{capability:?}"
    );
    assert!(
        !capability.untagged[0].contains("AUTH="),
        "no AUTH= after login"
    );
}

async fn the_login_name_is_case_insensitive(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let response = client
        .run(&format!("LOGIN Alice@Example.COM {}", alice.token))
        .await;
    assert!(response.is_ok(), "{response:?}");
}

async fn an_unknown_token_is_refused(server: TestServer) {
    server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let response = client.run("LOGIN alice@example.com not-a-token").await;
    assert_eq!(
        response.tail(),
        "NO [AUTHENTICATIONFAILED] Invalid IMAP token"
    );
}

async fn an_expired_token_is_refused(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let expired = server
        .token(&alice.id, Some(Utc::now() - Duration::hours(1)))
        .await;
    let mut client = server.connect().await;
    let response = client
        .run(&format!("LOGIN alice@example.com {expired}"))
        .await;
    assert_eq!(response.tail(), "NO [EXPIRED] IMAP token has expired");
}

async fn a_token_without_expiry_never_expires(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let forever = server.token(&alice.id, None).await;
    let mut client = server.connect().await;
    assert!(
        client
            .run(&format!("LOGIN alice@example.com {forever}"))
            .await
            .is_ok()
    );
}

async fn another_users_token_answers_like_an_unknown_one(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    server.user("bob@example.com").await;
    let mut client = server.connect().await;
    let response = client
        .run(&format!("LOGIN bob@example.com {}", alice.token))
        .await;
    assert_eq!(
        response.tail(),
        "NO [AUTHENTICATIONFAILED] Invalid IMAP token"
    );
    // Even an expired token of someone else's says nothing about itself.
    let expired = server
        .token(&alice.id, Some(Utc::now() - Duration::hours(1)))
        .await;
    let response = client
        .run(&format!("LOGIN bob@example.com {expired}"))
        .await;
    assert_eq!(
        response.tail(),
        "NO [AUTHENTICATIONFAILED] Invalid IMAP token"
    );
}

const INACTIVE: &str = "NO [CONTACTADMIN] Your subscription is not active. Please renew your subscription to use IMAP.";

async fn subscriptions_gate_the_login(server: TestServer) {
    let cases = [
        ("active@example.com", "active", None, true),
        ("trialing@example.com", "trialing", None, true),
        (
            "due-later@example.com",
            "past_due",
            Some(Utc::now() + Duration::days(3)),
            true,
        ),
        (
            "due-gone@example.com",
            "past_due",
            Some(Utc::now() - Duration::days(3)),
            false,
        ),
        ("due-never@example.com", "past_due", None, false),
        (
            "canceled@example.com",
            "canceled",
            Some(Utc::now() + Duration::days(30)),
            false,
        ),
        ("inactive@example.com", "inactive", None, false),
    ];
    for (email, status, end, allowed) in cases {
        let user = server.user_with(email, status, end).await;
        let mut client = server.connect().await;
        let response = client.run(&format!("LOGIN {email} {}", user.token)).await;
        if allowed {
            assert!(response.is_ok(), "{status}: {response:?}");
        } else {
            assert_eq!(response.tail(), INACTIVE, "{status}");
        }
    }
}

async fn a_login_records_when_the_token_was_used(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    assert!(server.last_used_at(&alice.token).await.is_none());
    let started = Utc::now() - Duration::seconds(2);
    server.login(&alice).await;
    let used = server
        .settled_last_used_at(&alice.token)
        .await
        .expect("last_used_at is set");
    assert!(
        used >= started && used <= Utc::now() + Duration::seconds(2),
        "{used}"
    );
}

async fn login_takes_quoted_strings_and_literals(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let quoted = client
        .run(&format!("LOGIN \"alice@example.com\" \"{}\"", alice.token))
        .await;
    assert!(quoted.is_ok(), "{quoted:?}");

    let mut client = server.connect().await;
    client.send(b"a1 LOGIN {17}\r\n").await;
    assert!(client.line().await.starts_with("+ "));
    client
        .send(format!("alice@example.com {{{}}}\r\n", alice.token.len()).as_bytes())
        .await;
    assert!(client.line().await.starts_with("+ "));
    client.send(format!("{}\r\n", alice.token).as_bytes()).await;
    let literal = client.until_tagged("a1").await;
    assert!(literal.is_ok(), "{literal:?}");

    let mut client = server.connect().await;
    client
        .send(format!("a2 LOGIN {{17+}}\r\nalice@example.com {}\r\n", alice.token).as_bytes())
        .await;
    let non_synchronizing = client.until_tagged("a2").await;
    assert!(non_synchronizing.is_ok(), "{non_synchronizing:?}");
}

fn plain(authzid: &str, user: &str, token: &str) -> String {
    STANDARD.encode(format!("{authzid}\0{user}\0{token}"))
}

async fn authenticate_plain_with_an_initial_response(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let response = client
        .run(&format!(
            "AUTHENTICATE PLAIN {}",
            plain("", "alice@example.com", &alice.token)
        ))
        .await;
    assert!(
        response.tail().starts_with("OK [CAPABILITY"),
        "{response:?}"
    );
    assert!(client.run("LIST \"\" INBOX").await.is_ok());
}

async fn authenticate_plain_with_a_continuation(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    client.send(b"a1 AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(client.line().await, "+ ");
    client
        .send(
            format!(
                "{}\r\n",
                plain("alice@example.com", "alice@example.com", &alice.token)
            )
            .as_bytes(),
        )
        .await;
    let response = client.until_tagged("a1").await;
    assert!(response.is_ok(), "{response:?}");
}

async fn authenticate_failures_are_precise(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    server.user("bob@example.com").await;
    let mut client = server.connect().await;
    let wrong = client
        .run(&format!(
            "AUTHENTICATE PLAIN {}",
            plain("", "alice@example.com", "nope")
        ))
        .await;
    assert_eq!(wrong.tail(), "NO [AUTHENTICATIONFAILED] Invalid IMAP token");
    let other = client
        .run(&format!(
            "AUTHENTICATE PLAIN {}",
            plain("bob@example.com", "alice@example.com", &alice.token)
        ))
        .await;
    assert!(
        other.tail().starts_with("NO [AUTHORIZATIONFAILED]"),
        "{other:?}"
    );
    client.send(b"a9 AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(client.line().await, "+ ");
    client.send(b"*\r\n").await;
    assert_eq!(
        client.until_tagged("a9").await.tail(),
        "BAD Authentication cancelled"
    );
    let garbage = client.run("AUTHENTICATE PLAIN !!!!").await;
    assert_eq!(garbage.status(), "BAD", "{garbage:?}");
    let mechanism = client.run("AUTHENTICATE CRAM-MD5").await;
    assert!(mechanism.tail().starts_with("NO [CANNOT]"), "{mechanism:?}");
}

async fn repeated_failures_close_the_connection(server: TestServer) {
    server.user("alice@example.com").await;
    let mut client = server.connect().await;
    for _ in 0..4 {
        let response = client.run("LOGIN alice@example.com wrong").await;
        assert_eq!(response.status(), "NO");
    }
    client.send(b"last LOGIN alice@example.com wrong\r\n").await;
    let rest = client.rest().await;
    assert_eq!(rest[0], "last NO [AUTHENTICATIONFAILED] Invalid IMAP token");
    assert_eq!(rest[1], "* BYE Too many failed login attempts");
}

async fn commands_need_the_right_state(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let early = client.run("LIST \"\" *").await;
    assert_eq!(early.tail(), "BAD LIST is not valid before logging in");
    assert!(
        client
            .run(&format!("LOGIN alice@example.com {}", alice.token))
            .await
            .is_ok()
    );
    let again = client
        .run(&format!("LOGIN alice@example.com {}", alice.token))
        .await;
    assert_eq!(again.tail(), "BAD Already logged in");
    let fetch = client.run("FETCH 1 FLAGS").await;
    assert_eq!(fetch.tail(), "BAD No mailbox selected");
    let logout = client.run("LOGOUT").await;
    assert_eq!(logout.untagged, vec!["* BYE Logging out"]);
    assert!(logout.is_ok());
    assert!(client.is_closed().await);
}

async fn id_namespace_and_enable_answer(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let id = client.run("ID (\"name\" \"test-client\")").await;
    assert!(
        id.untagged[0].starts_with("* ID (\"name\" \"imap-server\""),
        "{id:?}"
    );
    client
        .run(&format!("LOGIN alice@example.com {}", alice.token))
        .await;
    let namespace = client.run("NAMESPACE").await;
    assert_eq!(
        namespace.untagged,
        vec!["* NAMESPACE ((\"\" \"/\")) NIL NIL"]
    );
    // CONDSTORE is enabled once; an unknown capability is ignored.
    let enable = client.run("ENABLE CONDSTORE X-UNKNOWN").await;
    assert_eq!(enable.untagged, vec!["* ENABLED CONDSTORE"]);
    assert!(enable.is_ok());
    assert!(client.run("NOOP").await.is_ok());
}

in_every_mode!(
    a_valid_token_logs_in_and_announces_capabilities,
    the_login_name_is_case_insensitive,
    an_unknown_token_is_refused,
    an_expired_token_is_refused,
    a_token_without_expiry_never_expires,
    another_users_token_answers_like_an_unknown_one,
    subscriptions_gate_the_login,
    a_login_records_when_the_token_was_used,
    login_takes_quoted_strings_and_literals,
    authenticate_plain_with_an_initial_response,
    authenticate_plain_with_a_continuation,
    authenticate_failures_are_precise,
    repeated_failures_close_the_connection,
    commands_need_the_right_state,
    id_namespace_and_enable_answer,
);
