//! The HTTP side of Supabase mode: PostgREST (`/rest/v1/…`) and GoTrue's
//! admin API (`/auth/v1/admin/users/…`), with the service key.
//!
//! Filter values only ever travel as URL-encoded query values after `eq.`
//! (never pasted into a query string), and user ids in paths must be UUIDs, so
//! nothing a client types can change which rows a request selects. Errors and
//! logs name the request path only: query values hold tokens, and the service
//! key is never printed.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ops::metrics::{RequestOutcome, SupabaseMetrics};
use crate::store::{BanRecord, DomainRecord, ban_from_row};

/// How many rows one PostgREST request asks for. Supabase caps responses at
/// 1000 rows by default (`max_rows`, which a project may lower), so tables
/// are read page by page.
const PAGE_SIZE: usize = 1000;

/// Why a request to Supabase failed.
#[derive(Debug, thiserror::Error)]
pub enum SupabaseError {
    #[error("{path}: no answer within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("{path}: {reason}")]
    Transport { path: String, reason: String },
    #[error("{path}: answered HTTP {status}")]
    Status { path: String, status: StatusCode },
    #[error("{path}: malformed answer: {reason}")]
    Malformed { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Setup(String),
}

/// An `imap_tokens` row.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub token: String,
    #[serde(default, deserialize_with = "timestamp")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as the re-check of live sessions sees it.
#[derive(Debug, Clone)]
pub struct TokenNow {
    pub id: String,
    pub user_id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct TokenStandingRow {
    id: serde_json::Value,
    /// Optional here, unlike at login: one row whose owner was cleared must
    /// not make the whole page unreadable, which would stop every re-check.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct UserSubscriptionRow {
    id: serde_json::Value,
    #[serde(flatten)]
    subscription: SubscriptionRow,
}

/// A `public.users` row: the subscription half of an account.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SubscriptionRow {
    #[serde(default)]
    pub subscription_status: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub subscription_end_date: Option<DateTime<Utc>>,
}

/// GoTrue's user object; only the email matters here.
#[derive(Debug, Clone, Deserialize)]
struct AuthUser {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DomainRow {
    id: serde_json::Value,
    domain: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    cloudflare_domain: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct BanRow {
    id: serde_json::Value,
    scope: String,
    value: String,
    #[serde(default)]
    match_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// One shared client: connections are reused across logins, and every
/// request has a deadline so an outage answers `UNAVAILABLE` instead of hanging.
pub struct SupabaseClient {
    http: reqwest::Client,
    /// `{SUPABASE_URL}` without a trailing slash.
    base: String,
    key: String,
    timeout: Duration,
    metrics: Option<SupabaseMetrics>,
}

impl SupabaseClient {
    /// Counts every request from now on in `metrics`.
    pub fn observe_with(&mut self, metrics: SupabaseMetrics) {
        self.metrics = Some(metrics);
    }

    pub fn new(url: &str, key: &str, timeout: Duration) -> Result<SupabaseClient, SupabaseError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SupabaseError::Setup(e.without_url().to_string()))?;
        Ok(SupabaseClient {
            http,
            base: url.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            timeout,
            metrics: None,
        })
    }

    /// The token row for this exact token, if any.
    pub async fn token(&self, token: &str) -> Result<Option<TokenRow>, SupabaseError> {
        let rows: Vec<TokenRow> = self
            .select(
                "imap_tokens",
                "id,user_id,token,expires_at",
                &[("token", token)],
                &[],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The account's email from GoTrue; `None` when the user does not exist.
    pub async fn email(&self, user_id: &str) -> Result<Option<String>, SupabaseError> {
        let path = format!("/auth/v1/admin/users/{}", uuid_segment(user_id)?);
        let user: Option<AuthUser> = self.fetch(Method::GET, &path, &[], None).await?;
        Ok(user.and_then(|u| u.email))
    }

    /// The account's `public.users` row, if any.
    pub async fn subscription(
        &self,
        user_id: &str,
    ) -> Result<Option<SubscriptionRow>, SupabaseError> {
        let rows: Vec<SubscriptionRow> = self
            .select(
                "users",
                "subscription_status,subscription_end_date",
                &[("id", user_id)],
                &[],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The token rows with these ids (those that exist): one request per
    /// `in.(…)` list that fits a request line.
    pub async fn tokens_by_id(&self, ids: &[String]) -> Result<Vec<TokenNow>, SupabaseError> {
        let mut found = Vec::new();
        for list in in_lists(ids) {
            let rows: Vec<TokenStandingRow> = self
                .select_in("imap_tokens", "id,user_id,expires_at", &list)
                .await?;
            // A token that opens no account is as good as gone.
            found.extend(rows.into_iter().filter_map(|row| {
                Some(TokenNow {
                    id: id_text(row.id),
                    user_id: row.user_id?,
                    expires_at: row.expires_at,
                })
            }));
        }
        Ok(found)
    }

    /// The `public.users` rows of these users (those that exist): one
    /// request per `in.(…)` list that fits a request line.
    pub async fn subscriptions(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<(String, SubscriptionRow)>, SupabaseError> {
        let mut found = Vec::new();
        for list in in_lists(user_ids) {
            let rows: Vec<UserSubscriptionRow> = self
                .select_in(
                    "users",
                    "id,subscription_status,subscription_end_date",
                    &list,
                )
                .await?;
            found.extend(
                rows.into_iter()
                    .map(|row| (id_text(row.id), row.subscription)),
            );
        }
        Ok(found)
    }

    /// `GET /rest/v1/{table}?select=…&id=in.(list)`, `list` from `in_lists`.
    async fn select_in<T: DeserializeOwned>(
        &self,
        table: &str,
        columns: &str,
        list: &str,
    ) -> Result<Vec<T>, SupabaseError> {
        let query = [
            ("select".to_owned(), columns.to_owned()),
            ("id".to_owned(), format!("in.({list})")),
        ];
        let path = format!("/rest/v1/{table}");
        let rows: Option<Vec<T>> = self.fetch(Method::GET, &path, &query, None).await?;
        rows.ok_or_else(|| SupabaseError::Malformed {
            path,
            reason: "an empty answer where rows were expected".into(),
        })
    }

    /// Records a login on the token row.
    pub async fn touch_token(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), SupabaseError> {
        let body = serde_json::json!({ "last_used_at": at.to_rfc3339() });
        let query = [("id".to_owned(), format!("eq.{token_id}"))];
        let _: Option<serde_json::Value> = self
            .fetch(Method::PATCH, "/rest/v1/imap_tokens", &query, Some(body))
            .await?;
        Ok(())
    }

    /// Every domain row.
    pub async fn domains(&self) -> Result<Vec<DomainRecord>, SupabaseError> {
        let rows: Vec<DomainRow> = self
            .select_all("domains", "id,domain,user_id,active,cloudflare_domain", &[])
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| DomainRecord {
                id: id_text(row.id),
                domain: row.domain,
                user_id: row.user_id,
                // A row with no flag is treated as switched off rather than guessed on.
                active: row.active.unwrap_or(false),
                global: row.cloudflare_domain.unwrap_or(false),
            })
            .collect())
    }

    /// The active ban rows.
    pub async fn bans(&self) -> Result<Vec<BanRecord>, SupabaseError> {
        let rows: Vec<BanRow> = self
            .select_all(
                "bans",
                "id,scope,value,match_type,status",
                &[("status", "active")],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                ban_from_row((
                    id_text(row.id),
                    row.scope,
                    row.value,
                    row.match_type,
                    row.status,
                ))
            })
            .collect())
    }

    /// Every row matching the filters, page by page in `id` order. A page
    /// may come back shorter than asked when the project's `max_rows` is
    /// lower than `PAGE_SIZE`, so only an empty page ends the table.
    async fn select_all<T: DeserializeOwned>(
        &self,
        table: &str,
        columns: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<T>, SupabaseError> {
        let mut all = Vec::new();
        loop {
            let paging = [
                ("order", "id".to_owned()),
                ("limit", PAGE_SIZE.to_string()),
                ("offset", all.len().to_string()),
            ];
            let page: Vec<T> = self.select(table, columns, filters, &paging).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// `GET /rest/v1/{table}?select=…&col=eq.value…`: every filter is an
    /// equality whose value reqwest URL-encodes; after `eq.` PostgREST takes the
    /// rest of the value literally, so `,` `(` `)` `.` `*` in it are plain text.
    async fn select<T: DeserializeOwned>(
        &self,
        table: &str,
        columns: &str,
        filters: &[(&str, &str)],
        extra: &[(&str, String)],
    ) -> Result<Vec<T>, SupabaseError> {
        let mut query = vec![("select".to_owned(), columns.to_owned())];
        query.extend(
            filters
                .iter()
                .map(|(column, value)| ((*column).to_owned(), format!("eq.{value}"))),
        );
        query.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let path = format!("/rest/v1/{table}");
        let rows: Option<Vec<T>> = self.fetch(Method::GET, &path, &query, None).await?;
        rows.ok_or_else(|| SupabaseError::Malformed {
            path,
            reason: "an empty answer where rows were expected".into(),
        })
    }

    /// One request with the service key. `Ok(None)` is a 404 (GoTrue's
    /// "user not found") or an empty 2xx body (PATCH's 204); any other non-2xx
    /// answer, a transport failure or a deadline is an error.
    async fn fetch<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, SupabaseError> {
        let started = std::time::Instant::now();
        let result = self.fetch_once(method, path, query, body).await;
        if let Some(metrics) = &self.metrics {
            let outcome = match &result {
                Ok(_) => RequestOutcome::Ok,
                Err(SupabaseError::Status { .. }) => RequestOutcome::Status,
                Err(SupabaseError::Timeout { .. }) => RequestOutcome::Timeout,
                Err(SupabaseError::Malformed { .. }) => RequestOutcome::Malformed,
                Err(SupabaseError::Transport { .. } | SupabaseError::Setup(_)) => {
                    RequestOutcome::Transport
                }
            };
            metrics.request(outcome, started.elapsed());
        }
        result
    }

    async fn fetch_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, SupabaseError> {
        let url = Url::parse(&format!("{}{path}", self.base)).map_err(|e| {
            SupabaseError::Setup(format!("SUPABASE_URL does not make a valid URL: {e}"))
        })?;
        let mut request = self
            .http
            .request(method, url)
            .query(query)
            .header("apikey", &self.key)
            .bearer_auth(&self.key)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let failed = |error: reqwest::Error| self.transport_error(path, error);
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && path.starts_with("/auth/") {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(SupabaseError::Status {
                path: path.to_owned(),
                status,
            });
        }
        let bytes = response.bytes().await.map_err(failed)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SupabaseError::Malformed {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    fn transport_error(&self, path: &str, error: reqwest::Error) -> SupabaseError {
        if error.is_timeout() {
            SupabaseError::Timeout {
                path: path.to_owned(),
                timeout: self.timeout,
            }
        } else {
            // Without the URL: its query holds the token being checked.
            SupabaseError::Transport {
                path: path.to_owned(),
                reason: error_chain(&error.without_url()),
            }
        }
    }
}

/// How many URL-encoded bytes of ids one `in.(…)` filter carries. The
/// gateway in front of PostgREST refuses long request lines (nginx reads
/// 8 KB by default; hosted Supabase answers "URI too long" from about 400
/// UUIDs), and a refused request would stop every re-check. 6 KB is about
/// 150 UUIDs.
const IN_LIST_BUDGET: usize = 6 * 1024;

/// The items of `in.(…)` filters naming every id, comma-separated, each list
/// within `IN_LIST_BUDGET` (an id longer than that goes alone). Every id
/// can be asked about, and none can end the list or add a filter: an id
/// other than letters, digits, `-` and `_` is double-quoted with `"` and `\`
/// escaped, PostgREST's rule for values holding its reserved characters.
fn in_lists(ids: &[String]) -> Vec<String> {
    let mut lists = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for id in ids {
        let item = in_list_item(id);
        let item_len = encoded_len(&item);
        if !current.is_empty() && current_len + ENCODED_COMMA + item_len > IN_LIST_BUDGET {
            lists.push(std::mem::take(&mut current));
            current_len = 0;
        }
        if !current.is_empty() {
            current.push(',');
            current_len += ENCODED_COMMA;
        }
        current.push_str(&item);
        current_len += item_len;
    }
    if !current.is_empty() {
        lists.push(current);
    }
    lists
}

/// `,` once URL-encoded (`%2C`).
const ENCODED_COMMA: usize = 3;

fn in_list_item(id: &str) -> String {
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return id.to_owned();
    }
    let mut quoted = String::with_capacity(id.len() + 2);
    quoted.push('"');
    for c in id.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The length of `text` once reqwest has URL-encoded it as a query value
/// (letters, digits and `*-._` stay; everything else is `%XX` per byte).
fn encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"*-._ ".contains(&b) {
                1
            } else {
                3
            }
        })
        .sum()
}

/// reqwest's top-level message is generic ("error sending request"); the
/// cause (connection refused, DNS failure) is what an operator needs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The user id as a path segment: only a UUID is accepted, so the path
/// cannot be steered elsewhere.
fn uuid_segment(user_id: &str) -> Result<String, SupabaseError> {
    uuid::Uuid::parse_str(user_id)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| SupabaseError::Malformed {
            path: "/rest/v1/imap_tokens".into(),
            reason: "a token's user_id is not a UUID".into(),
        })
}

/// Ids are UUIDs in Supabase, but a deployment may use integer keys.
fn id_text(id: serde_json::Value) -> String {
    match id {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

/// PostgREST writes `timestamptz` as ISO 8601 with an offset
/// (`2026-03-01T12:00:00+00:00`, fractions optional); a `date` column
/// (`2026-03-01`) is taken as midnight UTC.
fn timestamp<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    parse_timestamp(&text)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {text:?}")))
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
}

/// reqwest is built without a bundled TLS crypto provider (to keep aws-lc
/// out); ring, which sqlx's TLS already uses, becomes the process default.
/// Installing twice is harmless: the first one stays.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgrest_timestamps_parse_in_their_usual_forms() {
        let expected = "2026-03-01T12:00:00Z";
        for text in [
            "2026-03-01T12:00:00+00:00",
            "2026-03-01T14:00:00+02:00",
            "2026-03-01T12:00:00.000000+00:00",
            "2026-03-01 12:00:00+00",
        ] {
            let parsed =
                parse_timestamp(text).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            assert_eq!(parsed.as_deref(), Some(expected), "{text}");
        }
        assert!(parse_timestamp("2026-03-01").is_some());
        assert!(parse_timestamp("soon").is_none());
    }

    #[test]
    fn in_lists_quote_reserved_characters_and_fit_the_budget() {
        let odd = vec!["a-1_b".to_owned(), "x,y".to_owned(), r#"q"\"#.to_owned()];
        assert_eq!(in_lists(&odd), vec![r#"a-1_b,"x,y","q\"\\""#.to_owned()]);
        let uuids: Vec<String> = (0..1000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let lists = in_lists(&uuids);
        assert!(lists.len() > 1);
        assert!(lists.iter().all(|list| encoded_len(list) <= IN_LIST_BUDGET));
        let rejoined: Vec<String> = lists.join(",").split(',').map(str::to_owned).collect();
        assert_eq!(rejoined, uuids);
        assert!(in_lists(&[]).is_empty());
    }

    #[test]
    fn only_uuids_become_path_segments() {
        assert!(uuid_segment("6f1c2a9e-8b1d-4c1a-9a35-0f0e7d1b2c3d").is_ok());
        assert!(uuid_segment("../../rest/v1/users").is_err());
        assert!(uuid_segment("x?y=1").is_err());
    }
}
