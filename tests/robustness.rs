//! Bad input gets a clear answer and loses nothing (ARCHITECTURE: answers clients rely on): malformed
//! commands, HTTP requests, echoed responses, over-long lines, oversized
//! literals, floods of random bytes, silence.

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::{Backend, Client, Options, TestServer};

async fn an_http_request_is_closed_with_bye(server: TestServer) {
    let mut client = server.connect().await;
    client
        .send(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await;
    let rest = client.rest().await;
    assert_eq!(
        rest,
        vec!["* BYE This is an IMAP server, not an HTTP server"]
    );
}

async fn echoed_responses_are_ignored(server: TestServer) {
    let mut client = server.connect().await;
    client
        .send(b"OK [CAPABILITY IMAP4rev1] ready\r\n* OK hello\r\n\r\na1 NOOP\r\n")
        .await;
    let response = client.until_tagged("a1").await;
    assert!(response.untagged.is_empty(), "{response:?}");
    assert_eq!(response.tail(), "OK NOOP completed");
}

async fn malformed_commands_get_a_tagged_bad(server: TestServer) {
    let mut client = server.connect().await;
    let unknown = client.run("FROBNICATE now").await;
    assert_eq!(unknown.tail(), "BAD [PARSE] Unknown command FROBNICATE");
    let arguments = client.run("LOGIN onlyone").await;
    assert_eq!(arguments.tail(), "BAD [PARSE] Invalid arguments for LOGIN");
    client.send(b"+bad NOOP\r\n").await;
    assert_eq!(client.line().await, "* BAD [PARSE] Missing or invalid tag");
    client.send(b"(((\r\n").await;
    assert_eq!(client.line().await, "* BAD [PARSE] Missing or invalid tag");
    assert!(client.run("NOOP").await.is_ok(), "still usable");
}

async fn pipelined_commands_are_answered_in_order(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let mut client = server.connect().await;
    let batch = format!(
        "p1 CAPABILITY\r\np2 LOGIN alice@example.com {}\r\np3 CREATE Pipelined\r\np4 LIST \"\" Pipelined\r\np5 NOOP\r\n",
        alice.token
    );
    client.send(batch.as_bytes()).await;
    for tag in ["p1", "p2", "p3", "p4", "p5"] {
        let response = client.until_tagged(tag).await;
        assert!(response.is_ok(), "{tag}: {response:?}");
        if tag == "p4" {
            assert_eq!(
                response.untagged,
                vec!["* LIST (\\HasNoChildren) \"/\" \"Pipelined\""]
            );
        }
    }
}

async fn bare_empty_lines_between_commands_are_ignored(server: TestServer) {
    let mut client = server.connect().await;
    // iOS sends an empty line between commands (ARCHITECTURE: answers clients rely on).
    client.send(b"\r\ne1 NOOP\r\n\r\n\r\ne2 NOOP\r\n").await;
    assert_eq!(client.line().await, "e1 OK NOOP completed");
    assert_eq!(client.line().await, "e2 OK NOOP completed");
}

async fn an_over_long_line_is_refused_and_the_connection_stays_usable(server: TestServer) {
    let mut client = server.connect().await;
    let mut line = b"long NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 200_000));
    line.extend_from_slice(b"\r\n");
    client.send(&line).await;
    assert_eq!(
        client.line().await,
        "long BAD [LIMIT] Command line longer than 65536 bytes"
    );
    assert!(client.run("NOOP").await.is_ok());
}

async fn an_oversized_literal_is_refused_before_it_is_sent(server: TestServer) {
    let mut client = server.connect().await;
    client.send(b"big LOGIN {10000000}\r\n").await;
    assert_eq!(
        client.line().await,
        "big BAD [TOOBIG] Literal larger than 65536 bytes"
    );
    assert!(client.run("NOOP").await.is_ok());
    // A non-synchronizing one arrives anyway: it is skipped, and the session goes on.
    let mut command = b"plus LOGIN {100000+}\r\n".to_vec();
    command.extend(std::iter::repeat_n(b'y', 100_000));
    command.extend_from_slice(b" token\r\n");
    client.send(&command).await;
    assert_eq!(
        client.line().await,
        "plus BAD [TOOBIG] Literal larger than 65536 bytes"
    );
    assert!(client.run("NOOP").await.is_ok());
}

async fn random_bytes_neither_crash_nor_stall_the_server(server: TestServer) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1a9);
    let mut noise = vec![0u8; 2 * 1024 * 1024];
    rng.fill(&mut noise[..]);
    let mut client = Client::connect(server.addr).await;
    client.send(&noise).await;
    // Whatever it answered, it ends with a BYE rather than silence or a crash.
    let rest = client.rest().await;
    assert!(
        rest.last().is_some_and(|l| l.starts_with("* BYE")),
        "{:?}",
        rest.last()
    );
    let mut fresh = server.connect().await;
    assert!(fresh.run("NOOP").await.is_ok());
}

async fn too_many_bad_commands_end_with_bye(server: TestServer) {
    let mut client = server.connect().await;
    for _ in 0..25 {
        client.send(b"x BOGUS\r\n").await;
    }
    let rest = client.rest().await;
    assert_eq!(
        rest.last().map(String::as_str),
        Some("* BYE Too many invalid commands")
    );
    assert_eq!(rest.len(), 21, "20 BADs then BYE: {rest:?}");
}

on_both_backends!(
    an_http_request_is_closed_with_bye,
    echoed_responses_are_ignored,
    malformed_commands_get_a_tagged_bad,
    pipelined_commands_are_answered_in_order,
    bare_empty_lines_between_commands_are_ignored,
    an_over_long_line_is_refused_and_the_connection_stays_usable,
    an_oversized_literal_is_refused_before_it_is_sent,
    random_bytes_neither_crash_nor_stall_the_server,
    too_many_bad_commands_end_with_bye,
);

#[tokio::test]
async fn a_silent_client_is_logged_out_before_login() {
    let mut options = Options::default();
    options.limits.login_timeout = Duration::from_secs(1);
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let mut client = server.connect().await;
    let rest = client.rest().await;
    assert_eq!(rest, vec!["* BYE Login timed out"]);
}

#[tokio::test]
async fn a_silent_client_is_logged_out_after_login_too() {
    let mut options = Options::default();
    options.limits.idle_timeout = Duration::from_secs(1);
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    let rest = client.rest().await;
    assert_eq!(rest, vec!["* BYE Autologout; idle for too long"]);
}

#[tokio::test]
async fn an_idling_client_that_vanished_is_logged_out_too() {
    // The poll wakes the session often; that must not keep it alive.
    let mut options = Options::default();
    options.limits.idle_timeout = Duration::from_secs(1);
    options.limits.idle_poll = Duration::from_millis(100);
    let server = TestServer::start_with(Backend::Postgres, options).await;
    let alice = server.user("alice@example.com").await;
    let mut client = server.login(&alice).await;
    assert!(client.run("SELECT INBOX").await.is_ok());
    client.send(b"i IDLE\r\n").await;
    assert_eq!(client.line().await, "+ idling");
    let rest = client.rest().await;
    assert_eq!(rest, vec!["* BYE Autologout; idle for too long"]);
}
