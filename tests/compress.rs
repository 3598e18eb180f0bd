//! COMPRESS=DEFLATE (RFC 4978) over TCP: offered only once logged in, once
//! per connection, and then every command and answer (literals, long
//! FETCH answers, IDLE's news) flows compressed; a client sending garbage
//! loses its connection and nothing else.

mod support;

use support::compressed::Compressed;
use support::{TestServer, User};
use tokio::net::TcpStream;

/// A message whose body compresses well: 200 KB of one repeated line.
fn large_message() -> String {
    format!(
        "From: Bob <bob@example.org>\r\nTo: box@alice.example\r\nSubject: Big\r\n\r\n{}",
        "All work and no play makes Jack a dull boy.\r\n".repeat(4600)
    )
}

async fn alice(server: &TestServer) -> User {
    let alice = server.alice_with(&["box@alice.example"]).await;
    server.deliver("box@alice.example", &large_message()).await;
    alice
}

/// Logged in, with COMPRESS DEFLATE answered OK.
async fn compressed(server: &TestServer, alice: &User) -> Compressed<TcpStream> {
    let mut client = server.login(alice).await;
    let answer = client.run("COMPRESS DEFLATE").await;
    assert!(answer.is_ok(), "{answer:?}");
    assert!(answer.untagged.is_empty(), "{answer:?}");
    Compressed::new(client.into_stream())
}

async fn commands_and_answers_flow_compressed(server: TestServer) {
    let alice = alice(&server).await;
    let mut before = server.connect().await;
    let capability = before.run("CAPABILITY").await;
    assert!(!capability.has_untagged("COMPRESS"), "{capability:?}");
    let refused = before.run("COMPRESS DEFLATE").await;
    assert_eq!(refused.status(), "BAD", "{refused:?}");

    let mut client = compressed(&server, &alice).await;
    let capability = client.run("c1", "CAPABILITY").await;
    assert!(
        capability[0].contains(" COMPRESS=DEFLATE"),
        "{capability:?}"
    );
    assert_eq!(
        client.run("c2", "COMPRESS DEFLATE").await,
        vec!["c2 NO [COMPRESSIONACTIVE] Compression is already on"]
    );
    let select = client.run("c3", "SELECT box@alice.example").await;
    assert!(select.last().unwrap().starts_with("c3 OK"), "{select:?}");

    // A 200 KB body: its literal arrives whole, in far fewer bytes.
    let expected = large_message();
    let wire_before = client.wire_bytes;
    client.send(b"c4 FETCH 1 BODY.PEEK[]\r\n").await;
    let head = client.line().await;
    assert_eq!(
        head,
        format!("* 1 FETCH (BODY[] {{{}}}", expected.len()),
        "{head}"
    );
    let body = client.bytes(expected.len()).await;
    assert_eq!(body, expected.as_bytes());
    assert_eq!(client.line().await, ")");
    let done = client.until_tagged("c4").await;
    assert!(done[0].starts_with("c4 OK"), "{done:?}");
    let wire = client.wire_bytes - wire_before;
    assert!(
        wire * 20 < expected.len(),
        "{wire} bytes for {}",
        expected.len()
    );

    // A synchronizing literal: the continuation comes back compressed.
    let appended = "From: a@b.example\r\nSubject: up\r\n\r\nhi\r\n";
    client
        .send(format!("c5 APPEND box@alice.example {{{}}}\r\n", appended.len()).as_bytes())
        .await;
    assert!(client.line().await.starts_with("+ "));
    client.send(format!("{appended}\r\n").as_bytes()).await;
    let done = client.until_tagged("c5").await;
    assert!(
        done.last().unwrap().starts_with("c5 OK [APPENDUID"),
        "{done:?}"
    );

    // IDLE: news from a delivery arrives while the client waits.
    client.send(b"c6 IDLE\r\n").await;
    assert!(client.line().await.starts_with("+ "));
    server
        .deliver("box@alice.example", "Subject: news\r\n\r\nnew\r\n")
        .await;
    let mut news = client.line().await;
    while news.contains("RECENT") {
        news = client.line().await;
    }
    assert_eq!(news, "* 3 EXISTS");
    client.send(b"DONE\r\n").await;
    let done = client.until_tagged("c6").await;
    assert!(done.last().unwrap().starts_with("c6 OK"), "{done:?}");

    let bye = client.run("c7", "LOGOUT").await;
    assert!(bye[0].starts_with("* BYE"), "{bye:?}");
}

async fn garbage_ends_only_its_own_connection(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = compressed(&server, &alice).await;
    client.send_raw(&[0xff; 256]).await;
    assert_eq!(client.try_line().await, None, "the connection closes");
    // Everyone else is served as before.
    let mut other = server.login(&alice).await;
    assert!(other.run("SELECT box@alice.example").await.is_ok());
}

async fn a_compressed_bomb_is_read_as_plain_bytes_would_be(server: TestServer) {
    let alice = alice(&server).await;
    let mut client = compressed(&server, &alice).await;
    // 64 MB of one byte compress to some 64 KB: one endless line, which the
    // framer refuses at its limit as it would refuse it uncompressed.
    let chunk = vec![b'a'; 1024 * 1024];
    client.send(b"c1 NOOP ").await;
    for _ in 0..64 {
        client.send(&chunk).await;
    }
    client.send(b"\r\n").await;
    let answer = client.until_tagged("c1").await;
    assert!(answer.last().unwrap().contains("BAD [LIMIT]"), "{answer:?}");
    let select = client.run("c2", "NOOP").await;
    assert!(select.last().unwrap().starts_with("c2 OK"), "{select:?}");
}

on_both_backends!(
    commands_and_answers_flow_compressed,
    garbage_ends_only_its_own_connection,
    a_compressed_bomb_is_read_as_plain_bytes_would_be,
);
