//! Sessions follow the account (IMAP_SESSION_RECHECK): a revoked or expired
//! token and a lapsed subscription end the sessions behind them, idling or
//! not, with LOGIN's own answers; one batched look per interval, and an
//! unreadable directory ends nobody.

mod support;

use std::time::Duration;

use support::supabase::Fault;
use support::{Backend, Client, Options, TestServer, User};

const RECHECK: Duration = Duration::from_secs(1);

fn options(supabase: bool) -> Options {
    let mut options = if supabase {
        Options::supabase()
    } else {
        Options::default()
    };
    options.limits.session_recheck = RECHECK;
    options
}

/// Runs each scenario on PostgreSQL, on SQLite and in Supabase mode.
macro_rules! in_every_directory {
    ($($scenario:ident),* $(,)?) => {
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let options = super::options(false);
                    super::$scenario(super::TestServer::start_with(super::Backend::Postgres, options).await).await;
                }
            )*
        }
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let options = super::options(false);
                    super::$scenario(super::TestServer::start_with(super::Backend::Sqlite, options).await).await;
                }
            )*
        }
        mod supabase_mode {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let options = super::options(true);
                    super::$scenario(super::TestServer::start_with(super::Backend::Postgres, options).await).await;
                }
            )*
        }
    };
}

/// One plain session and one in IDLE, both logged in as `user`.
async fn two_sessions(server: &TestServer, user: &User) -> (Client, Client) {
    let plain = server.login(user).await;
    let mut idling = server.login(user).await;
    assert!(idling.run("SELECT INBOX").await.is_ok());
    idling.send(b"i1 IDLE\r\n").await;
    assert_eq!(idling.line().await, "+ idling");
    (plain, idling)
}

async fn assert_ended_with(sessions: (Client, Client), bye: &str) {
    for mut session in [sessions.0, sessions.1] {
        let rest = session.rest().await;
        assert_eq!(rest, vec![bye.to_owned()]);
    }
}

async fn a_revoked_token_ends_its_sessions(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let sessions = two_sessions(&server, &alice).await;
    match &server.supabase {
        Some(fake) => fake.revoke_token(&alice.token),
        None => {
            server
                .execute(
                    "DELETE FROM imap_tokens WHERE user_id IN
                     (SELECT id FROM users WHERE email = 'alice@example.com')",
                )
                .await
        }
    }
    assert_ended_with(sessions, "* BYE [AUTHENTICATIONFAILED] Invalid IMAP token").await;
}

async fn an_expired_token_ends_its_sessions(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let sessions = two_sessions(&server, &alice).await;
    match &server.supabase {
        Some(fake) => fake.set_token_expiry(
            &alice.token,
            chrono::Utc::now() - chrono::Duration::hours(1),
        ),
        None => {
            server
                .execute(
                    "UPDATE imap_tokens SET expires_at = '2020-01-01 00:00:00' WHERE user_id IN
                     (SELECT id FROM users WHERE email = 'alice@example.com')",
                )
                .await
        }
    }
    assert_ended_with(sessions, "* BYE [EXPIRED] IMAP token has expired").await;
}

async fn a_cancelled_subscription_ends_its_sessions(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let sessions = two_sessions(&server, &alice).await;
    match &server.supabase {
        Some(fake) => fake.set_subscription(&alice.id, "canceled"),
        None => {
            server
                .execute(
                    "UPDATE users SET subscription_status = 'canceled'
                     WHERE email = 'alice@example.com'",
                )
                .await
        }
    }
    assert_ended_with(
        sessions,
        "* BYE [CONTACTADMIN] Your subscription is not active. Please renew your subscription to use IMAP.",
    )
    .await;
}

async fn a_session_in_good_standing_stays_and_others_are_not_touched(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let bob = server.user("bob@example.com").await;
    let mut alices = server.login(&alice).await;
    let (bob_plain, bob_idling) = two_sessions(&server, &bob).await;
    match &server.supabase {
        Some(fake) => fake.revoke_token(&bob.token),
        None => {
            server
                .execute(
                    "DELETE FROM imap_tokens WHERE user_id IN
                     (SELECT id FROM users WHERE email = 'bob@example.com')",
                )
                .await
        }
    }
    assert_ended_with(
        (bob_plain, bob_idling),
        "* BYE [AUTHENTICATIONFAILED] Invalid IMAP token",
    )
    .await;
    // Several more intervals: alice is still welcome.
    tokio::time::sleep(RECHECK * 3).await;
    assert!(alices.run("NOOP").await.is_ok());
}

async fn a_token_given_to_someone_else_ends_its_sessions(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let bob = server.user("bob@example.com").await;
    let sessions = two_sessions(&server, &alice).await;
    match &server.supabase {
        Some(fake) => fake.set_token_owner(&alice.token, Some(&bob.id)),
        None => {
            server
                .execute(
                    "UPDATE imap_tokens SET user_id =
                       (SELECT id FROM users WHERE email = 'bob@example.com')
                     WHERE user_id IN (SELECT id FROM users WHERE email = 'alice@example.com')",
                )
                .await
        }
    }
    assert_ended_with(sessions, "* BYE [AUTHENTICATIONFAILED] Invalid IMAP token").await;
}

in_every_directory!(
    a_revoked_token_ends_its_sessions,
    an_expired_token_ends_its_sessions,
    a_cancelled_subscription_ends_its_sessions,
    a_token_given_to_someone_else_ends_its_sessions,
    a_session_in_good_standing_stays_and_others_are_not_touched,
);

/// The SQL directory's tables cannot be read (the table is renamed away, as
/// a botched migration would leave it): nobody is closed, and once they are
/// back the re-check goes on.
async fn an_unreadable_database_ends_no_session(server: TestServer) {
    let alice = server.user("alice@example.com").await;
    let (mut plain, mut idling) = two_sessions(&server, &alice).await;
    server
        .execute("ALTER TABLE imap_tokens RENAME TO imap_tokens_away")
        .await;
    tokio::time::sleep(RECHECK * 3).await;
    idling.send(b"DONE\r\n").await;
    assert!(idling.until_tagged("i1").await.is_ok());
    assert!(plain.run("NOOP").await.is_ok());
    server
        .execute("ALTER TABLE imap_tokens_away RENAME TO imap_tokens")
        .await;
    server.execute("DELETE FROM imap_tokens").await;
    assert_eq!(
        plain.rest().await,
        vec!["* BYE [AUTHENTICATIONFAILED] Invalid IMAP token"]
    );
}

mod unreadable_postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_database_ends_no_session() {
        let options = super::options(false);
        let server = super::TestServer::start_with(super::Backend::Postgres, options).await;
        super::an_unreadable_database_ends_no_session(server).await;
    }
}

mod unreadable_sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_database_ends_no_session() {
        let options = super::options(false);
        let server = super::TestServer::start_with(super::Backend::Sqlite, options).await;
        super::an_unreadable_database_ends_no_session(server).await;
    }
}

/// The lookups of `table` the re-check sent to the fake Supabase: their id lists.
fn recheck_lookups(server: &TestServer, table: &str) -> Vec<Vec<String>> {
    let path = format!("/rest/v1/{table}");
    server
        .fake()
        .requests()
        .iter()
        .filter(|r| r.path == path && r.method == "GET")
        .filter_map(|r| r.param("id"))
        .filter_map(|ids| {
            ids.strip_prefix("in.(")?
                .strip_suffix(')')
                .map(str::to_owned)
        })
        .map(|ids| ids.split(',').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recheck_asks_once_per_interval_not_once_per_session() {
    let server = TestServer::start_with(Backend::Postgres, options(true)).await;
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        let user = server.user(&format!("{name}@example.com")).await;
        clients.push(server.login(&user).await);
        clients.push(server.login(&user).await);
    }
    server.fake().clear_requests();
    tokio::time::sleep(RECHECK * 3 + RECHECK / 2).await;
    let lookups = recheck_lookups(&server, "imap_tokens");
    assert!(
        (2..=4).contains(&lookups.len()),
        "one lookup per interval for six sessions: {lookups:?}"
    );
    for ids in &lookups {
        assert_eq!(ids.len(), 3, "the three tokens in one request: {ids:?}");
    }
    let subscriptions = recheck_lookups(&server, "users");
    assert_eq!(
        subscriptions.len(),
        lookups.len(),
        "one subscription lookup per token lookup: {subscriptions:?}"
    );
    for ids in &subscriptions {
        assert_eq!(ids.len(), 3, "the three owners in one request: {ids:?}");
    }
    for client in &mut clients {
        assert!(client.run("NOOP").await.is_ok());
    }
}

/// More sessions than one request line can name (the gateway refuses
/// lines over 8 KB; a UUID takes 39 bytes encoded): the ids are spread
/// over several requests, and the re-check still sees a revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tokens_are_asked_about_in_requests_the_gateway_accepts() {
    let mut options = options(true);
    options.limits.max_connections_per_ip = 0;
    let server = TestServer::start_with(Backend::Postgres, options).await;
    let alice = server.user("alice@example.com").await;
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..250 {
        let token = server.token(&alice.id, None).await;
        let (addr, email) = (server.addr, alice.email.clone());
        logins.spawn(async move {
            let mut client = Client::connect(addr).await;
            let login = client.run(&format!("LOGIN {email} {token}")).await;
            assert!(login.is_ok(), "{login:?}");
            client
        });
    }
    let mut sessions = logins.join_all().await;
    let mut first = server.login(&alice).await;
    server.fake().revoke_token(&alice.token);
    assert_eq!(
        first.rest().await,
        vec!["* BYE [AUTHENTICATIONFAILED] Invalid IMAP token"]
    );
    let sizes: Vec<usize> = recheck_lookups(&server, "imap_tokens")
        .iter()
        .map(Vec::len)
        .collect();
    assert!(
        !sizes.is_empty() && sizes.iter().all(|&n| n < 251),
        "251 tokens spread over requests: {sizes:?}"
    );
    for session in sessions.iter_mut().take(3) {
        assert!(session.run("NOOP").await.is_ok());
    }
}

/// A deployment whose token ids are not UUIDs: an id holding PostgREST's
/// reserved characters travels quoted, and its session is judged on its
/// own row (not ended for want of asking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_id_with_reserved_characters_is_asked_about_quoted() {
    let server = TestServer::start_with(Backend::Postgres, options(true)).await;
    let alice = server.user("alice@example.com").await;
    let token = "tok-legacy-7";
    server
        .fake()
        .add_token("legacy:7,\"x\"", &alice.id, token, None);
    let user = User {
        token: token.to_owned(),
        ..alice.clone()
    };
    let mut session = server.login(&user).await;
    tokio::time::sleep(RECHECK * 3).await;
    assert!(session.run("NOOP").await.is_ok());
    server.fake().revoke_token(token);
    assert_eq!(
        session.rest().await,
        vec!["* BYE [AUTHENTICATIONFAILED] Invalid IMAP token"]
    );
}

/// A token row whose owner was cleared (`user_id` null): its session ends,
/// and the row does not stop the re-check of everyone else on its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_an_owner_ends_only_its_session() {
    let server = TestServer::start_with(Backend::Postgres, options(true)).await;
    let alice = server.user("alice@example.com").await;
    let bob = server.user("bob@example.com").await;
    let mut alices = server.login(&alice).await;
    let mut bobs = server.login(&bob).await;
    server.fake().set_token_owner(&alice.token, None);
    server.fake().set_subscription(&bob.id, "canceled");
    assert_eq!(
        alices.rest().await,
        vec!["* BYE [AUTHENTICATIONFAILED] Invalid IMAP token"]
    );
    assert_eq!(
        bobs.rest().await,
        vec![
            "* BYE [CONTACTADMIN] Your subscription is not active. Please renew your subscription to use IMAP."
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_directory_ends_no_session() {
    let server = TestServer::start_with(Backend::Postgres, options(true)).await;
    let alice = server.user("alice@example.com").await;
    let (mut plain, mut idling) = two_sessions(&server, &alice).await;
    server.fake().fail("", Fault::ServerError);
    tokio::time::sleep(RECHECK * 3).await;
    // Still there, idling and not.
    idling.send(b"DONE\r\n").await;
    assert!(idling.until_tagged("i1").await.is_ok());
    assert!(plain.run("NOOP").await.is_ok());
    // And once Supabase is back, a revocation still takes effect.
    server.fake().heal();
    server.fake().revoke_token(&alice.token);
    assert_eq!(
        plain.rest().await,
        vec!["* BYE [AUTHENTICATIONFAILED] Invalid IMAP token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_turns_the_recheck_off() {
    let mut options = Options::default();
    options.limits.session_recheck = Duration::ZERO;
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let alice = server.user("alice@example.com").await;
    let mut session = server.login(&alice).await;
    server
        .execute(
            "DELETE FROM imap_tokens WHERE user_id IN
             (SELECT id FROM users WHERE email = 'alice@example.com')",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(session.run("NOOP").await.is_ok());
}
