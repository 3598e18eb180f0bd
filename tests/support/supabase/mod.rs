//! A stand-in for the hosted Supabase API (which cannot run here), faithful
//! where the server depends on it:
//!
//! - PostgREST (`/rest/v1/{table}`): `select=`, `eq.`/`neq.`/`is.` filters on
//!   any column, `or=(col.eq.v,col.eq."quoted")`, `order=`, `limit=`,
//!   `offset=`, a `max_rows` cap, percent- and `+`-decoding of the query,
//!   JSON arrays of rows, 400 for malformed filters and unknown columns, 404
//!   for unknown tables, `PATCH` with a JSON body answered 204.
//! - GoTrue (`/auth/v1/admin/users/{id}`): the user object, or 404
//!   `user_not_found`.
//! - The gateway: 401 without the right `apikey` or `Authorization: Bearer`,
//!   414 for a request line longer than 8 KB (nginx's default buffer; hosted
//!   Supabase answers "URI too long" from about 400 UUIDs in an `in.(…)`).
//!
//! It records every request (method, path, raw and decoded query, the two
//! key headers, the body) so that tests assert exactly what was sent, and it
//! can be told to fail: HTTP 500, malformed JSON, or no answer at all.
//! HTTP/1.1 with keep-alive, written by hand on tokio: enough for reqwest.

mod postgrest;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use self::postgrest::{Answer, Query, error};

pub const SERVICE_KEY: &str = "test-service-role-key";

/// The columns of each table, as the deployment created them.
const TABLES: &[(&str, &[&str])] = &[
    (
        "imap_tokens",
        &[
            "id",
            "user_id",
            "token",
            "expires_at",
            "last_used_at",
            "created_at",
        ],
    ),
    (
        "users",
        &[
            "id",
            "subscription_status",
            "subscription_end_date",
            "created_at",
        ],
    ),
    (
        "domains",
        &[
            "id",
            "domain",
            "user_id",
            "active",
            "cloudflare_domain",
            "created_at",
        ],
    ),
    (
        "bans",
        &["id", "scope", "value", "match_type", "status", "created_at"],
    ),
];

/// A way to fail, for requests whose path (or `METHOD path`) starts with a
/// given prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with a PostgREST-style error body.
    ServerError,
    /// HTTP 200 whose body is not JSON.
    MalformedJson,
    /// Never answer.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The query string exactly as sent.
    pub raw_query: String,
    /// The query decoded as PostgREST decodes it.
    pub query: Vec<(String, String)>,
    pub apikey: Option<String>,
    pub authorization: Option<String>,
    pub body: Option<Value>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    tables: HashMap<String, Vec<Map<String, Value>>>,
    auth_users: HashMap<String, Value>,
    log: Vec<Request>,
    faults: Vec<(String, Fault)>,
    max_rows: Option<usize>,
}

pub struct FakeSupabase {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

/// The longest request line the gateway reads (nginx's
/// `large_client_header_buffers` default).
const MAX_REQUEST_LINE: usize = 8 * 1024;

/// What a test waits for at most before calling the server stuck.
const WAIT: Duration = Duration::from_secs(20);

impl FakeSupabase {
    pub async fn start() -> FakeSupabase {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Supabase");
        let addr = listener.local_addr().expect("local address");
        let mut tables = HashMap::new();
        for (name, _) in TABLES {
            tables.insert((*name).to_owned(), Vec::new());
        }
        let state = Arc::new(Mutex::new(State {
            tables,
            ..State::default()
        }));
        let changed = Arc::new(Notify::new());
        let (s, c) = (state.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, s.clone(), c.clone()));
            }
        });
        FakeSupabase {
            addr,
            state,
            changed,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().expect("fake Supabase state");
        let result = f(&mut state);
        drop(state);
        self.changed.notify_waiters();
        result
    }

    fn insert(&self, table: &str, row: Value) {
        let Value::Object(row) = row else {
            panic!("rows are objects")
        };
        self.with(|s| s.tables.entry(table.to_owned()).or_default().push(row));
    }

    /// An account: a GoTrue user plus its `public.users` row.
    pub fn add_user(
        &self,
        id: &str,
        email: &str,
        status: Option<&str>,
        end: Option<DateTime<Utc>>,
    ) {
        self.with(|s| {
            s.auth_users.insert(
                id.to_owned(),
                json!({
                    "id": id, "aud": "authenticated", "role": "authenticated",
                    "email": email, "email_confirmed_at": timestamp(Utc::now()),
                    "app_metadata": {"provider": "email"}, "user_metadata": {},
                    "created_at": timestamp(Utc::now()), "is_anonymous": false,
                }),
            )
        });
        self.insert(
            "users",
            json!({
                "id": id, "subscription_status": status,
                "subscription_end_date": end.map(timestamp), "created_at": timestamp(Utc::now()),
            }),
        );
    }

    /// A GoTrue user with no `public.users` row.
    pub fn remove_subscription_row(&self, user_id: &str) {
        self.with(|s| {
            if let Some(rows) = s.tables.get_mut("users") {
                rows.retain(|r| r.get("id") != Some(&json!(user_id)));
            }
        });
    }

    pub fn add_token(
        &self,
        id: &str,
        user_id: &str,
        token: &str,
        expires_at: Option<DateTime<Utc>>,
    ) {
        self.insert(
            "imap_tokens",
            json!({
                "id": id, "user_id": user_id, "token": token,
                "expires_at": expires_at.map(timestamp), "last_used_at": null,
                "created_at": timestamp(Utc::now()),
            }),
        );
    }

    /// Deletes a token row, as revoking it in the dashboard does.
    pub fn revoke_token(&self, token: &str) {
        self.with(|s| {
            if let Some(rows) = s.tables.get_mut("imap_tokens") {
                rows.retain(|r| r.get("token") != Some(&json!(token)));
            }
        });
    }

    /// Sets a token's expiry, as editing its row does.
    pub fn set_token_expiry(&self, token: &str, expires_at: DateTime<Utc>) {
        self.with(|s| {
            for row in s.tables.get_mut("imap_tokens").into_iter().flatten() {
                if row.get("token") == Some(&json!(token)) {
                    row.insert("expires_at".into(), json!(timestamp(expires_at)));
                }
            }
        });
    }

    /// Gives a token to another user (or to none), as editing its row does.
    pub fn set_token_owner(&self, token: &str, user_id: Option<&str>) {
        self.with(|s| {
            for row in s.tables.get_mut("imap_tokens").into_iter().flatten() {
                if row.get("token") == Some(&json!(token)) {
                    row.insert("user_id".into(), json!(user_id));
                }
            }
        });
    }

    pub fn set_subscription(&self, user_id: &str, status: &str) {
        self.with(|s| {
            for row in s.tables.get_mut("users").into_iter().flatten() {
                if row.get("id") == Some(&json!(user_id)) {
                    row.insert("subscription_status".into(), json!(status));
                }
            }
        });
    }

    pub fn add_domain(
        &self,
        id: &str,
        name: &str,
        owner: Option<&str>,
        active: bool,
        global: bool,
    ) {
        self.insert(
            "domains",
            json!({
                "id": id, "domain": name, "user_id": owner, "active": active,
                "cloudflare_domain": global, "created_at": timestamp(Utc::now()),
            }),
        );
    }

    pub fn add_ban(&self, id: &str, scope: &str, value: &str, match_type: &str, status: &str) {
        self.insert(
            "bans",
            json!({
                "id": id, "scope": scope, "value": value, "match_type": match_type,
                "status": status, "created_at": timestamp(Utc::now()),
            }),
        );
    }

    /// The first row of `table` whose `column` is the string `value`.
    pub fn row(&self, table: &str, column: &str, value: &str) -> Option<Map<String, Value>> {
        self.with(|s| {
            s.tables.get(table).and_then(|rows| {
                rows.iter()
                    .find(|r| r.get(column) == Some(&json!(value)))
                    .cloned()
            })
        })
    }

    /// Caps every answer at this many rows, as Supabase's `max_rows` does.
    pub fn set_max_rows(&self, rows: usize) {
        self.with(|s| s.max_rows = Some(rows));
    }

    /// Requests whose path or `METHOD path` starts with `prefix` fail this
    /// way ("" for all).
    pub fn fail(&self, prefix: &str, fault: Fault) {
        self.with(|s| s.faults.push((prefix.to_owned(), fault)));
    }

    pub fn heal(&self) {
        self.with(|s| s.faults.clear());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.with(|s| s.log.clone())
    }

    pub fn clear_requests(&self) {
        self.with(|s| s.log.clear());
    }

    /// Waits until `ready` holds of the recorded requests.
    pub async fn wait_for_request(&self, ready: impl Fn(&Request) -> bool) -> Request {
        let found = || self.with(|s| s.log.iter().find(|r| ready(r)).cloned());
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(request) = found() {
                    return request;
                }
                notified.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the expected request reached the fake Supabase")
    }
}

/// PostgREST's rendering of `timestamptz`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

async fn serve_connection(stream: TcpStream, state: Arc<Mutex<State>>, changed: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader).await {
        let (fault, answer) = {
            let mut state = state.lock().expect("fake Supabase state");
            state.log.push(request.clone());
            let fault = state
                .faults
                .iter()
                .find(|(prefix, _)| {
                    request.path.starts_with(prefix.as_str())
                        || format!("{} {}", request.method, request.path)
                            .starts_with(prefix.as_str())
                })
                .map(|(_, fault)| *fault);
            (fault, handle(&mut state, &request))
        };
        changed.notify_waiters();
        let (status, body) = match fault {
            None => answer,
            Some(Fault::ServerError) => (
                500,
                json!({"code": "XX000", "details": null, "hint": null, "message": "internal error"})
                    .to_string(),
            ),
            Some(Fault::MalformedJson) => (200, "[{\"id\": oops".to_owned()),
            Some(Fault::Hang) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        let reason = match status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            414 => "URI Too Long",
            _ => "Internal Server Error",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if write.write_all(head.as_bytes()).await.is_err()
            || write.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request {
        method,
        path: path.to_owned(),
        raw_query: raw_query.to_owned(),
        query: url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        apikey: headers.get("apikey").cloned(),
        authorization: headers.get("authorization").cloned(),
        body: (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap_or(Value::Null)),
    })
}

fn handle(state: &mut State, request: &Request) -> Answer {
    // `GET /path?query HTTP/1.1`
    let request_line = request.method.len() + request.path.len() + request.raw_query.len() + 11;
    if request_line > MAX_REQUEST_LINE {
        return (414, "URI too long\n".into());
    }
    match request.apikey.as_deref() {
        None => {
            return (
                401,
                json!({"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}).to_string(),
            );
        }
        Some(key) if key != SERVICE_KEY => {
            return (401, json!({"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}).to_string());
        }
        Some(_) => {}
    }
    if request.authorization.as_deref() != Some(&format!("Bearer {SERVICE_KEY}")) {
        return (
            401,
            json!({"code": 401, "error_code": "bad_jwt", "msg": "invalid JWT"}).to_string(),
        );
    }
    if let Some(id) = request.path.strip_prefix("/auth/v1/admin/users/") {
        if request.method != "GET" {
            return (405, "{}".into());
        }
        return match state.auth_users.get(id) {
            Some(user) => (200, user.to_string()),
            None => (
                404,
                json!({"code": 404, "error_code": "user_not_found", "msg": "User not found"})
                    .to_string(),
            ),
        };
    }
    let Some(table) = request.path.strip_prefix("/rest/v1/") else {
        return (404, json!({"message": "no Route matched"}).to_string());
    };
    let Some(columns) = TABLES.iter().find(|(t, _)| *t == table).map(|(_, c)| *c) else {
        return (
            404,
            error(
                "PGRST205",
                &format!("Could not find the table 'public.{table}' in the schema cache"),
            ),
        );
    };
    let query = match Query::parse(table, columns, &request.query) {
        Ok(query) => query,
        Err(answer) => return answer,
    };
    let max_rows = state.max_rows;
    let rows = state.tables.entry(table.to_owned()).or_default();
    match request.method.as_str() {
        "GET" => (200, query.select(rows, max_rows)),
        "PATCH" => {
            let Some(Value::Object(changes)) = &request.body else {
                return (400, error("PGRST102", "Empty or invalid json"));
            };
            if let Some(bad) = changes.keys().find(|k| !columns.contains(&k.as_str())) {
                return (
                    400,
                    error(
                        "PGRST204",
                        &format!(
                            "Could not find the '{bad}' column of '{table}' in the schema cache"
                        ),
                    ),
                );
            }
            for row in rows.iter_mut().filter(|r| query.matches(r)) {
                for (k, v) in changes {
                    row.insert(k.clone(), v.clone());
                }
            }
            (204, String::new())
        }
        _ => (405, error("PGRST117", "Unsupported HTTP method")),
    }
}
