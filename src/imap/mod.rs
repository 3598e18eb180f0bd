//! The IMAP protocol: the session state machine and one module per command
//! family. Sees storage and the directory only through their traits.

pub mod commands;
mod dispatch;
pub mod grammar;
pub mod heavy;
pub mod names;
pub mod outcome;
pub mod pattern;
pub mod penalty;
pub mod refusal;
pub mod response;
pub mod session;
pub mod state;
pub mod utf7;
pub mod view;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Limits;
use crate::directory::Directory;
use crate::store::{MailStore, NewMessage};

pub use session::Session;

/// What every session shares.
pub struct Services {
    pub store: Arc<dyn MailStore>,
    pub directory: Arc<dyn Directory>,
    pub limits: Limits,
    /// Failed logins per client address, for the whole process.
    pub penalties: penalty::LoginPenalties,
    /// This server's metrics (`METRICS_BIND`).
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    /// What `/health/ready` checks.
    pub health: crate::ops::health::Health,
}

/// A message to store, its columns read from its bytes (what the
/// deployment's receiver would have stored) and its INTERNALDATE taken from
/// the `Date` header, else `received`.
pub fn new_message(raw: Vec<u8>, flags: Vec<String>, received: DateTime<Utc>) -> NewMessage {
    let columns = crate::mime::columns(&raw);
    NewMessage {
        subject: columns.subject,
        from_addr: columns.from_addr,
        to_addrs: columns.to_addrs,
        body: columns.body,
        html: columns.html,
        timestamp: columns.date.unwrap_or(received),
        flags,
        raw,
    }
}

/// Capabilities once logged in. Nothing is advertised that is not implemented.
pub const CAPABILITIES: &str = "IMAP4rev1 LITERAL+ ID ENABLE IDLE UIDPLUS MOVE NAMESPACE UNSELECT SPECIAL-USE CHILDREN CONDSTORE QRESYNC ESEARCH SEARCHRES";

/// Capabilities offered only once logged in: compressing a stream that
/// carries a token invites CRIME-style guessing, and there is nothing to
/// gain before.
pub const AFTER_LOGIN: &str = "COMPRESS=DEFLATE";

/// Capabilities before login (RFC 3501 7.2.1): the same, plus what the
/// transport allows: STARTTLS where TLS can start, and either the login
/// mechanisms or LOGINDISABLED where tokens must not travel in clear.
pub fn capabilities_before_login(transport: &Transport) -> String {
    let mut list = String::from(CAPABILITIES);
    if transport.can_start_tls && !transport.encrypted {
        list.push_str(" STARTTLS");
    }
    if transport.login_allowed() {
        list.push_str(" SASL-IR AUTH=PLAIN");
    } else {
        list.push_str(" LOGINDISABLED");
    }
    list
}

/// What the connection's transport allows, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// TLS is active (implicit TLS, or after STARTTLS).
    pub encrypted: bool,
    /// STARTTLS is possible: TLS is configured.
    pub can_start_tls: bool,
    /// LOGIN and AUTHENTICATE are allowed without TLS: TLS is not configured,
    /// the peer is on loopback, or the operator allowed it.
    pub cleartext_login: bool,
}

impl Transport {
    /// A connection without TLS on a server without TLS: logins are allowed,
    /// since there is no way to protect them.
    pub const PLAIN: Transport = Transport {
        encrypted: false,
        can_start_tls: false,
        cleartext_login: true,
    };

    pub fn login_allowed(&self) -> bool {
        self.encrypted || self.cleartext_login
    }
}

/// The hierarchy delimiter (ARCHITECTURE: mailboxes).
pub const DELIMITER: char = '/';

/// The personal folders every user has from the start.
pub const SPECIAL_FOLDER_NAMES: [&str; 5] = ["Sent", "Drafts", "Trash", "Junk", "Archive"];
