//! One module per command family. Command modules do not use each other:
//! what two of them share lives here or in the modules beside `commands`.

use crate::mime::StoredColumns;
use crate::store::{Content, MessageData};

pub mod any;
pub mod append;
pub mod auth;
pub mod copy;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod mailbox;
pub mod search;
pub mod select;
pub mod status;
pub mod store;

/// The columns a message's bytes are made from.
fn stored_columns<'a>(message: &'a MessageData, content: &'a Content) -> StoredColumns<'a> {
    StoredColumns {
        id: &message.id,
        raw: content.raw.as_deref(),
        body: content.body.as_deref(),
        html: content.html.as_deref(),
        subject: content.subject.as_deref(),
        from_addr: content.from_addr.as_deref(),
        to_addrs: content.to_addrs.as_deref(),
        timestamp: message.timestamp,
    }
}
