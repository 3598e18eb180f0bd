//! `imap-server demo`: the first minute. One account with an address and a
//! few realistic messages, made with the admin commands themselves, and the
//! settings to type into a mail client. Running it again reuses everything
//! and only issues a fresh token; the messages are delivered once.

use std::net::SocketAddr;

use chrono::Utc;

use super::{
    AdminError, AdminResult, DomainCommand, Expiry, InboxCommand, TokenCommand, UserCommand,
    deliver, domains, inboxes, tokens, users,
};
use crate::store::{Database, MailboxId};

pub const DEMO_EMAIL: &str = "demo@demo.example";
pub const DEMO_DOMAIN: &str = "demo.example";
pub const DEMO_ADDRESS: &str = "hello@demo.example";

/// How a mail client reaches the server `demo` is about to start.
pub struct Listening {
    pub imap: SocketAddr,
    /// STARTTLS on `imap` (TLS_CERT and TLS_KEY are set).
    pub starttls: bool,
    pub imaps: Option<SocketAddr>,
}

/// Creates what is missing, issues a token, and returns what to print.
pub async fn demo(database: &Database, listening: &Listening) -> AdminResult {
    let created = ensure_account(database).await?;
    let token = issue_token(database).await?;
    let delivered = seed_messages(database).await?;
    Ok(instructions(listening, &token, created, delivered))
}

/// The user, the domain and the address; `true` when the user is new.
async fn ensure_account(database: &Database) -> Result<bool, AdminError> {
    let created = already_there(
        users(
            database,
            UserCommand::Add {
                email: DEMO_EMAIL.into(),
                status: "active".into(),
                end_date: None,
            },
        )
        .await,
    )?;
    already_there(
        domains(
            database,
            DomainCommand::Add {
                domain: DEMO_DOMAIN.into(),
                owner: Some(DEMO_EMAIL.into()),
                global: false,
                inactive: false,
            },
        )
        .await,
    )?;
    already_there(
        inboxes(
            database,
            InboxCommand::Add {
                email: DEMO_EMAIL.into(),
                address: DEMO_ADDRESS.into(),
            },
        )
        .await,
    )?;
    Ok(created)
}

/// An admin command's answer where "already exists" is success: `true`
/// when it created something.
fn already_there(result: AdminResult) -> Result<bool, AdminError> {
    match result {
        Ok(_) => Ok(true),
        Err(AdminError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// A new token, as `admin tokens create` prints it; earlier ones stay valid
/// (a mail client set up with one keeps working).
async fn issue_token(database: &Database) -> Result<String, AdminError> {
    let text = tokens(
        database,
        TokenCommand::Create {
            email: DEMO_EMAIL.into(),
            expiry: Expiry {
                days: 365,
                expires: None,
                never: false,
            },
        },
    )
    .await?;
    text.lines()
        .find_map(|line| line.strip_prefix("token: "))
        .map(str::to_owned)
        .ok_or_else(|| AdminError::Invalid("the token command printed no token".into()))
}

/// Delivers the messages unless the address ever received mail (its next
/// UID is past 1): a second run must not duplicate them, nor bring back
/// what the user deleted. Returns how many were delivered.
async fn seed_messages(database: &Database) -> Result<usize, AdminError> {
    let mailbox = MailboxId::Address {
        address: DEMO_ADDRESS.into(),
        user_id: demo_user_id(database).await?,
    };
    let state = database.mail.mailbox_state(&mailbox).await?;
    if state.is_some_and(|state| state.uidnext > 1) {
        return Ok(0);
    }
    let messages = messages();
    for raw in &messages {
        deliver(database, DEMO_ADDRESS, "INBOX", raw.clone().into_bytes()).await?;
    }
    Ok(messages.len())
}

async fn demo_user_id(database: &Database) -> Result<String, AdminError> {
    Ok(super::user_by_email(database, DEMO_EMAIL).await?.id)
}

fn instructions(listening: &Listening, token: &str, created: bool, delivered: usize) -> String {
    let account = if created {
        "created"
    } else {
        "already there, reused"
    };
    let mail = match delivered {
        0 => "its messages were delivered on the first run".to_owned(),
        n => format!("{n} messages delivered to it"),
    };
    let host = client_host(listening.imap);
    let (port, security) = match (listening.imaps, listening.starttls) {
        (Some(imaps), _) => (imaps.port(), "SSL/TLS"),
        (None, true) => (listening.imap.port(), "STARTTLS"),
        (None, false) => (
            listening.imap.port(),
            "none (no TLS configured; fine on this machine, set TLS_CERT and TLS_KEY before going further)",
        ),
    };
    format!(
        "Demo account {account}.\n\
         \n\
         email: {DEMO_EMAIL}\n\
         token: {token}\n\
         address: {DEMO_ADDRESS} ({mail})\n\
         \n\
         Mail client settings (incoming mail, IMAP):\n\
         \x20 server:   {host}\n\
         \x20 port:     {port}\n\
         \x20 security: {security}\n\
         \x20 username: {DEMO_EMAIL}\n\
         \x20 password: {token}\n\
         \x20 (authentication: normal password)\n\
         \n\
         Or from a terminal:\n\
         \x20 curl --url imap://{host}:{imap_port}/INBOX --user '{DEMO_EMAIL}:{token}' -X 'FETCH 1:* ENVELOPE'\n\
         \n\
         Each run prints a new token; earlier ones keep working. Serving now (Ctrl-C stops).",
        imap_port = listening.imap.port(),
    )
}

/// What a client on this machine types: a wildcard bind is reached as
/// localhost.
fn client_host(bind: SocketAddr) -> String {
    match bind.ip() {
        ip if ip.is_unspecified() => "localhost".into(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

/// Three messages a real inbox would hold: plain text, HTML with a text
/// alternative, and one with a small attachment.
fn messages() -> Vec<String> {
    let plain = format!(
        "{}\
         Hello,\r\n\
         \r\n\
         this is your demo mailbox. Mail sent to {DEMO_ADDRESS} lands here;\r\n\
         add addresses with `imap-server admin inboxes add`.\r\n\
         \r\n\
         -- \r\n\
         imap-server\r\n",
        header(
            "imap-server <team@demo.example>",
            "Welcome to imap-server",
            "welcome@demo.example",
            "text/plain; charset=utf-8"
        )
    );
    let html = format!(
        "{}\
         --alt-7f3a\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Your week in three links:\r\n\
         1. Release notes: https://demo.example/notes\r\n\
         2. A guide to IDLE: https://demo.example/idle\r\n\
         3. Tokens, not passwords: https://demo.example/tokens\r\n\
         --alt-7f3a\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         \r\n\
         <html><body><h1>Your week in three links</h1><ol>\r\n\
         <li><a href=\"https://demo.example/notes\">Release notes</a></li>\r\n\
         <li><a href=\"https://demo.example/idle\">A guide to IDLE</a></li>\r\n\
         <li><a href=\"https://demo.example/tokens\">Tokens, not passwords</a></li>\r\n\
         </ol></body></html>\r\n\
         --alt-7f3a--\r\n",
        header(
            "Weekly Digest <digest@news.demo.example>",
            "Your week in three links",
            "digest-1@news.demo.example",
            "multipart/alternative; boundary=\"alt-7f3a\""
        )
    );
    let attachment = format!(
        "{}\
         --mix-91c2\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Thank you for your order. The invoice is attached.\r\n\
         --mix-91c2\r\n\
         Content-Type: text/csv; name=\"invoice-1042.csv\"\r\n\
         Content-Disposition: attachment; filename=\"invoice-1042.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {}\r\n\
         --mix-91c2--\r\n",
        header(
            "Billing <billing@shop.demo.example>",
            "Invoice 1042",
            "invoice-1042@shop.demo.example",
            "multipart/mixed; boundary=\"mix-91c2\""
        ),
        invoice_csv_base64()
    );
    vec![plain, html, attachment]
}

/// A message's header block, blank line included, dated now.
fn header(from: &str, subject: &str, message_id: &str, content_type: &str) -> String {
    let date = Utc::now().to_rfc2822();
    format!(
        "From: {from}\r\nTo: {DEMO_ADDRESS}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n"
    )
}

fn invoice_csv_base64() -> String {
    use base64::Engine;
    let csv = "item,quantity,price\r\nDisposable addresses (month),1,4.00\r\nTotal,,4.00\r\n";
    base64::engine::general_purpose::STANDARD.encode(csv)
}
