//! APPEND (RFC 3501 6.3.11) with APPENDUID (RFC 4315). The size limit is
//! enforced by the framer before the literal is read (`NO [TOOBIG]`).

use chrono::{DateTime, Utc};
use imap_types::datetime::DateTime as ImapDateTime;
use imap_types::flag::Flag;
use imap_types::mailbox::Mailbox;

use crate::imap::names;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::Code;
use crate::imap::session::Session;

pub async fn append(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    flags: &[Flag<'_>],
    date: Option<&ImapDateTime>,
    message: &[u8],
) -> Outcome {
    let services = session.services.clone();
    let account = session.require_account()?.clone();
    let target = names::resolve_target(&services, &account, mailbox).await?;
    let limit = services.limits.max_message_size as usize;
    if message.len() > limit {
        return Err(Failure::no(
            Code::TooBig,
            format!("Message larger than the limit of {limit} bytes"),
        ));
    }
    if message.is_empty() {
        return Err(Failure::no(
            Code::Cannot,
            "An empty message cannot be stored",
        ));
    }
    let flags: Vec<String> = flags
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    let received: DateTime<Utc> = date.map_or_else(Utc::now, |d| d.as_ref().with_timezone(&Utc));
    let mut new = crate::imap::new_message(message.to_vec(), flags, received);
    // INTERNALDATE is the APPEND date (or now), whatever the Date header says.
    new.timestamp = received;
    let stored = services.store.append(&target.id, &new).await?;
    Ok(Done::with_code(
        Code::AppendUid {
            uidvalidity: stored.uidvalidity,
            uid: stored.uid,
        },
        "APPEND completed",
    ))
}
