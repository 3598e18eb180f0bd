//! The IMAP protocol: the session state machine and one module per command
//! family. Sees storage and the directory only through their traits.

pub mod commands;
mod dispatch;
pub mod names;
pub mod outcome;
pub mod response;
pub mod session;
pub mod utf7;
pub mod view;

use std::sync::Arc;

use crate::config::Limits;
use crate::directory::Directory;
use crate::store::MailStore;

pub use session::Session;

/// What every session shares.
pub struct Services {
    pub store: Arc<dyn MailStore>,
    pub directory: Arc<dyn Directory>,
    pub limits: Limits,
}

/// Capabilities before login (RFC 3501 7.2.1). Nothing is advertised that
/// is not implemented.
pub const CAPABILITIES_BEFORE_LOGIN: &str = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS MOVE NAMESPACE UNSELECT SPECIAL-USE CHILDREN AUTH=PLAIN";

/// Capabilities once logged in.
pub const CAPABILITIES: &str =
    "IMAP4rev1 LITERAL+ ID ENABLE IDLE UIDPLUS MOVE NAMESPACE UNSELECT SPECIAL-USE CHILDREN";

/// The hierarchy delimiter (DESIGN §4).
pub const DELIMITER: char = '/';

/// The personal folders every user has from the start.
pub const SPECIAL_FOLDER_NAMES: [&str; 5] = ["Sent", "Drafts", "Trash", "Junk", "Archive"];
