//! One module per command family. Command modules do not use each other:
//! what two of them share lives here or in the modules beside `commands`.

use crate::mime::StoredColumns;
use crate::store::{Content, MessageData, Wanted};

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

/// Commands read message content in batches of about this many stored bytes
/// (and at most `BATCH_MESSAGES` messages), so that their memory follows the
/// largest message, not the sum of all they read.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;
const BATCH_MESSAGES: usize = 256;

/// Where the content batch that begins at `start` ends, counting the stored
/// size of the messages `wanted` may load.
fn batch_end(messages: &[MessageData], start: usize, wanted: Option<Wanted>) -> usize {
    let mut bytes = 0u64;
    let mut end = start;
    while end < messages.len() && end - start < BATCH_MESSAGES {
        let message = &messages[end];
        if wanted.is_some_and(|w| w.may_want(message)) {
            let size = message.stored_size.max(1);
            if end > start && bytes + size > BATCH_BYTES {
                break;
            }
            bytes += size;
        }
        end += 1;
    }
    end
}
