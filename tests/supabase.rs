//! Supabase mode (README: Supabase mode) beyond the shared login and mailbox scenarios
//! (those run in Supabase mode from tests/login.rs and tests/mailbox.rs):
//! exactly what is sent, injection attempts, the account cache, outages, and
//! the domain and ban caches over HTTP.

mod support;

use std::time::Duration;

use support::supabase::{Fault, Request, SERVICE_KEY};
use support::{Backend, Options, SupabaseOptions, TestServer, User};

const UNAVAILABLE: &str =
    "NO [UNAVAILABLE] Authentication is temporarily unavailable, try again later";
const INVALID: &str = "NO [AUTHENTICATIONFAILED] Invalid IMAP token";
const INACTIVE: &str = "NO [CONTACTADMIN] Your subscription is not active. Please renew your subscription to use IMAP.";

async fn supabase_server(mode: SupabaseOptions) -> TestServer {
    TestServer::start_with(Backend::Postgres, Options::supabase_with(mode)).await
}

/// The answer to a LOGIN with the user's token on a fresh connection.
async fn login_answer(server: &TestServer, user: &User) -> String {
    let mut client = server.connect().await;
    let command = format!("LOGIN {} {}", user.email, user.token);
    client.run(&command).await.tail().to_owned()
}

fn token_id(server: &TestServer, token: &str) -> String {
    server
        .fake()
        .row("imap_tokens", "token", token)
        .and_then(|row| row.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .expect("the token exists")
}

fn assert_keyed(request: &Request) {
    assert_eq!(request.apikey.as_deref(), Some(SERVICE_KEY), "{request:?}");
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {SERVICE_KEY}").as_str()),
        "{request:?}"
    );
}

fn pairs(request: &Request) -> Vec<(&str, &str)> {
    request
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_sends_exactly_the_deployments_requests() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    let id = token_id(&server, &alice.token);
    server.login(&alice).await;
    let patch_filter = format!("eq.{id}");
    server
        .fake()
        .wait_for_request(|r| r.method == "PATCH")
        .await;
    let mut requests = server.fake().requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    requests.iter().for_each(assert_keyed);

    let token = &requests[0];
    assert_eq!(
        (token.method.as_str(), token.path.as_str()),
        ("GET", "/rest/v1/imap_tokens")
    );
    let token_filter = format!("eq.{}", alice.token);
    assert_eq!(
        pairs(token),
        vec![
            ("select", "id,user_id,token,expires_at"),
            ("token", token_filter.as_str())
        ]
    );
    // The account is read from GoTrue and PostgREST at the same time: either order.
    let mut middle: Vec<Request> = requests.drain(1..3).collect();
    middle.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(middle[0].method, "GET");
    assert_eq!(middle[0].path, format!("/auth/v1/admin/users/{}", alice.id));
    assert_eq!(middle[0].raw_query, "");
    assert_eq!(middle[1].path, "/rest/v1/users");
    let user_filter = format!("eq.{}", alice.id);
    assert_eq!(
        pairs(&middle[1]),
        vec![
            ("select", "subscription_status,subscription_end_date"),
            ("id", user_filter.as_str())
        ]
    );

    let patch = &requests[1];
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", "/rest/v1/imap_tokens")
    );
    assert_eq!(pairs(patch), vec![("id", patch_filter.as_str())]);
    let body = patch
        .body
        .as_ref()
        .and_then(|b| b.as_object())
        .expect("a JSON object");
    assert_eq!(body.keys().collect::<Vec<_>>(), vec!["last_used_at"]);
    assert!(server.last_used_at(&alice.token).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_postgrest_syntax_are_sent_encoded_and_match_nothing() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    let attempts = [
        // Pasted into a query, each of these would select other rows.
        "x&token=neq.x".to_owned(),
        "x,token.neq.x".to_owned(),
        "x)or=(token.neq.x".to_owned(),
        "%25".to_owned(),
        "tok-*".to_owned(),
        format!("{}.*", &alice.token[..8]),
        "a&b,c(d)e%f.g*h".to_owned(),
        "x=eq.y&select=*".to_owned(),
    ];
    for attempt in &attempts {
        server.fake().clear_requests();
        // A fresh connection each time: repeated failures close one.
        let mut client = server.connect().await;
        let response = client
            .run(&format!("LOGIN alice@example.com \"{attempt}\""))
            .await;
        assert_eq!(response.tail(), INVALID, "{attempt}");
        let requests = server.fake().requests();
        assert_eq!(requests.len(), 1, "only the token lookup: {requests:#?}");
        let expected = format!("eq.{attempt}");
        assert_eq!(
            pairs(&requests[0]),
            vec![
                ("select", "id,user_id,token,expires_at"),
                ("token", expected.as_str())
            ],
            "{attempt}"
        );
        // Two parameters on the wire: nothing in the value became a separator.
        assert_eq!(requests[0].raw_query.matches('&').count(), 1, "{attempt}");
        assert!(
            !requests[0].raw_query.contains(['(', ')', ',']),
            "{attempt}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_never_reach_a_supabase_query() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    server
        .domain("alice.example", Some(&alice), true, false)
        .await;
    let mut client = server.login(&alice).await;
    // The login's last_used_at PATCH runs in the background: let it land
    // before listening to what CREATE asks.
    server
        .fake()
        .wait_for_request(|r| r.method == "PATCH")
        .await;
    server.fake().clear_requests();
    let response = client.run("CREATE \"a&-b*c%d'e@alice.example\"").await;
    assert!(response.is_ok(), "{response:?}");
    for request in server.fake().requests() {
        assert!(!request.raw_query.contains("alice.example"), "{request:?}");
        assert!(request.path == "/rest/v1/domains" || request.path == "/rest/v1/bans");
    }
    // The inbox row lives in DATABASE_URL.
    let addresses = server
        .database
        .accounts
        .addresses(Some(&alice.id))
        .await
        .unwrap();
    assert_eq!(addresses.len(), 1);
    assert_eq!(addresses[0].address, "a&b*c%d'e@alice.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_is_cached_but_the_token_is_checked_every_time() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    server.login(&alice).await;
    server
        .fake()
        .wait_for_request(|r| r.method == "PATCH")
        .await;
    server.fake().clear_requests();

    server.login(&alice).await;
    server
        .fake()
        .wait_for_request(|r| r.method == "PATCH")
        .await;
    let paths: Vec<String> = server
        .fake()
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        vec!["GET /rest/v1/imap_tokens", "PATCH /rest/v1/imap_tokens"]
    );

    // A revoked token stops working at once, cache or not.
    server.fake().revoke_token(&alice.token);
    assert_eq!(login_answer(&server, &alice).await, INVALID);
}

/// Only accounts that may log in are cached: renewing works at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_subscription_works_at_the_next_login() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server
        .user_with("alice@example.com", "canceled", None)
        .await;
    assert_eq!(login_answer(&server, &alice).await, INACTIVE);
    server.fake().set_subscription(&alice.id, "active");
    assert!(login_answer(&server, &alice).await.starts_with("OK "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_account_cache_every_login_asks_again() {
    let mode = SupabaseOptions {
        account_ttl: Duration::ZERO,
        ..SupabaseOptions::default()
    };
    let server = supabase_server(mode).await;
    let alice = server.user("alice@example.com").await;
    server.login(&alice).await;
    server.fake().set_subscription(&alice.id, "canceled");
    assert_eq!(login_answer(&server, &alice).await, INACTIVE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_a_users_row_has_no_subscription() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    server.fake().remove_subscription_row(&alice.id);
    assert_eq!(login_answer(&server, &alice).await, INACTIVE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_user_is_gone_answers_like_an_unknown_one() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let token = server
        .token("6f1c2a9e-8b1d-4c1a-9a35-0f0e7d1b2c3d", None)
        .await;
    let mut client = server.connect().await;
    let response = client
        .run(&format!("LOGIN ghost@example.com {token}"))
        .await;
    assert_eq!(response.tail(), INVALID);
}

/// Each way Supabase can fail during a login is `NO [UNAVAILABLE]`, never a
/// success and never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_failures_during_login_are_unavailable() {
    let mode = SupabaseOptions {
        timeout: Duration::from_secs(1),
        ..SupabaseOptions::default()
    };
    let server = supabase_server(mode).await;
    let alice = server.user("alice@example.com").await;
    let login = format!("LOGIN alice@example.com {}", alice.token);
    for (prefix, fault) in [
        ("", Fault::ServerError),
        ("", Fault::MalformedJson),
        ("", Fault::Hang),
        ("/auth/", Fault::ServerError),
        ("/auth/", Fault::MalformedJson),
        ("/rest/v1/users", Fault::Hang),
    ] {
        server.fake().fail(prefix, fault);
        let mut client = server.connect().await;
        assert_eq!(
            client.run(&login).await.tail(),
            UNAVAILABLE,
            "{prefix} {fault:?}"
        );
        server.fake().heal();
    }
    let mut client = server.connect().await;
    assert!(client.run(&login).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_last_used_update_does_not_fail_the_login() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    server.fake().fail("PATCH ", Fault::ServerError);
    server.login(&alice).await;
    server
        .fake()
        .wait_for_request(|r| r.method == "PATCH")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_service_key_is_unavailable_not_invalid() {
    let mode = SupabaseOptions {
        key: "not-the-key".into(),
        ..SupabaseOptions::default()
    };
    let server = supabase_server(mode).await;
    let alice = server.user("alice@example.com").await;
    assert_eq!(login_answer(&server, &alice).await, UNAVAILABLE);
}

/// A closed port refuses at once: the answer comes long before the request
/// timeout (set far beyond the test client's own patience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_supabase_is_unavailable_at_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mode = SupabaseOptions {
        url: Some(url),
        timeout: Duration::from_secs(600),
        ..SupabaseOptions::default()
    };
    let server = supabase_server(mode).await;
    let alice = server.user("alice@example.com").await;
    assert_eq!(login_answer(&server, &alice).await, UNAVAILABLE);
}

/// Domains and bans are refreshed on every use here (TTL zero): a failing
/// refresh keeps serving the last good copy; with no copy yet, CREATE is
/// `UNAVAILABLE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_domain_and_ban_refreshes_keep_the_cached_copy() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    server
        .domain("alice.example", Some(&alice), true, false)
        .await;
    server.ban("email", "admin@alice.example", "exact").await;
    let mut client = server.login(&alice).await;

    server.fake().fail("/rest/v1/domains", Fault::ServerError);
    server.fake().fail("/rest/v1/bans", Fault::ServerError);
    assert_eq!(
        client.run("CREATE x@alice.example").await.tail(),
        "NO [UNAVAILABLE] Domain and ban data are temporarily unavailable, try again later",
        "nothing cached yet"
    );
    server.fake().heal();
    assert!(client.run("CREATE a@alice.example").await.is_ok());

    for fault in [Fault::ServerError, Fault::MalformedJson] {
        server.fake().fail("/rest/v1/domains", fault);
        server.fake().fail("/rest/v1/bans", fault);
        server.fake().clear_requests();
        let name = format!("b{}@alice.example", fault as u8);
        assert!(
            client.run(&format!("CREATE {name}")).await.is_ok(),
            "{fault:?}"
        );
        assert_eq!(
            client.run("CREATE admin@alice.example").await.tail(),
            "NO [NOPERM] This address is banned",
            "{fault:?}"
        );
        let tried: Vec<String> = server
            .fake()
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect();
        assert!(tried.contains(&"/rest/v1/domains".to_owned()), "{tried:?}");
        assert!(tried.contains(&"/rest/v1/bans".to_owned()), "{tried:?}");
        server.fake().heal();
    }
}

/// Supabase answers at most `max_rows` rows; longer tables are read in pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_domain_and_ban_tables_are_read_page_by_page() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    for i in 0..5 {
        server
            .domain(&format!("d{i}.example"), Some(&alice), true, false)
            .await;
    }
    server.fake().set_max_rows(2);
    let mut client = server.login(&alice).await;
    server.fake().clear_requests();
    for i in 0..5 {
        let response = client.run(&format!("CREATE x@d{i}.example")).await;
        assert!(response.is_ok(), "d{i}: {response:?}");
    }
    let pages: Vec<(String, String)> = server
        .fake()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/rest/v1/domains")
        .take(4)
        .map(|r| {
            let param = |name| r.param(name).unwrap_or("").to_owned();
            (param("order"), param("offset"))
        })
        .collect();
    let expected: Vec<(String, String)> = ["0", "2", "4", "5"]
        .iter()
        .map(|offset| ("id".to_owned(), (*offset).to_owned()))
        .collect();
    assert_eq!(pages, expected, "pages until an empty one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_active_bans_are_asked_for() {
    let server = supabase_server(SupabaseOptions::default()).await;
    let alice = server.user("alice@example.com").await;
    server
        .domain("alice.example", Some(&alice), true, false)
        .await;
    server
        .fake()
        .add_ban("b1", "email", "old@alice.example", "exact", "inactive");
    let mut client = server.login(&alice).await;
    assert!(client.run("CREATE old@alice.example").await.is_ok());
    let bans = server
        .fake()
        .requests()
        .into_iter()
        .find(|r| r.path == "/rest/v1/bans")
        .expect("bans were read");
    assert_keyed(&bans);
    assert_eq!(bans.param("status"), Some("eq.active"));
    assert_eq!(
        bans.param("select"),
        Some("id,scope,value,match_type,status")
    );
}

/// The fake itself behaves like PostgREST where the server could rely on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_speaks_postgrest() {
    let server = supabase_server(SupabaseOptions::default()).await;
    server
        .fake()
        .add_ban("1", "email", "a,b@x.example", "exact", "active");
    server
        .fake()
        .add_ban("2", "domain", "y.example", "exact", "active");
    let http = reqwest::Client::new();
    let get = |query: &str, key: Option<&str>| {
        let mut request = http.get(format!("{}/rest/v1/bans?{query}", server.fake().url()));
        if let Some(key) = key {
            request = request.header("apikey", key).bearer_auth(key);
        }
        request.send()
    };
    let ok = get(
        "select=id&or=(value.eq.%22a%2Cb%40x.example%22,value.eq.nothing)",
        Some(SERVICE_KEY),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), r#"[{"id":"1"}]"#);
    for malformed in [
        "or=(value.eq.a,b)c)",
        "value=like.a",
        "nope=eq.a",
        "select=nope",
    ] {
        let answer = get(malformed, Some(SERVICE_KEY)).await.unwrap();
        assert_eq!(answer.status(), 400, "{malformed}");
    }
    let anonymous = get("select=id", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let user = http
        .get(format!(
            "{}/auth/v1/admin/users/nobody",
            server.fake().url()
        ))
        .header("apikey", SERVICE_KEY)
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 404);
    let body: serde_json::Value = user.json().await.unwrap();
    assert_eq!(body["error_code"], "user_not_found");
}
