//! The one place that maps a parsed command to its handler, by state, and
//! that reports changes to the selected mailbox after each command.

use imap_types::command::{CommandBody, SelectParameter};
use imap_types::mailbox::Mailbox;
use imap_types::status::StatusDataItemName;

use super::commands::{
    any, append, auth, copy, expunge, fetch, idle, list, mailbox, search, select, status, store,
};
use super::grammar::Extras;
use super::outcome::{Failure, Outcome};
use super::response::{Code, Out, Status};
use super::session::{Next, Session};
use super::state::{Selected, State};
use super::view::{Freshness, GONE_TEXT, View};
use crate::directory::Account;

/// Every command name RFC 3501 and our extensions know, to tell "unknown
/// command" from "bad arguments" when a command does not parse.
const KNOWN_COMMANDS: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ENABLE",
    "ID",
    "NAMESPACE",
    "UNSELECT",
    "COMPRESS",
];

pub fn is_known_command(name: &str) -> bool {
    KNOWN_COMMANDS.contains(&name)
}

/// The metrics label for a command name: the name when we know it, else
/// "other", so that a client cannot create series by inventing commands.
pub fn command_label(name: &str) -> &'static str {
    KNOWN_COMMANDS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("other")
}

/// How a command may report changes to the selected mailbox afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Updates {
    /// Always look (NOOP, CHECK).
    Always,
    /// Look when something changed; EXPUNGE allowed.
    WhenStale,
    /// Look when something changed, but no EXPUNGE: FETCH, STORE and SEARCH
    /// by sequence number (RFC 3501 7.4.1).
    NoExpunge,
    /// The command itself changed the selection.
    Never,
}

/// Commands that end or replace the selection: a selection that outlived
/// its mailbox is simply dropped by them.
fn leaves_selection(body: &CommandBody<'_>) -> bool {
    matches!(
        body,
        CommandBody::Select { .. }
            | CommandBody::Examine { .. }
            | CommandBody::Unselect
            | CommandBody::Logout
    )
}

fn updates_after(body: &CommandBody<'_>) -> Updates {
    match body {
        CommandBody::Noop | CommandBody::Check => Updates::Always,
        CommandBody::Fetch { uid: false, .. }
        | CommandBody::Store { uid: false, .. }
        | CommandBody::Search { uid: false, .. } => Updates::NoExpunge,
        CommandBody::Select { .. }
        | CommandBody::Examine { .. }
        | CommandBody::Close
        | CommandBody::Unselect
        | CommandBody::Logout
        | CommandBody::Idle => Updates::Never,
        _ => Updates::WhenStale,
    }
}

impl Session {
    pub(super) async fn execute(
        &mut self,
        tag: &str,
        body: CommandBody<'_>,
        extras: Extras,
        out: &mut Out<'_>,
    ) -> Next {
        self.running = Some((command_label(body.name()), std::time::Instant::now()));
        let updates = updates_after(&body);
        if !leaves_selection(&body) && self.selection_is_gone().await {
            return self.end_gone_selection(out);
        }
        let outcome = match body {
            CommandBody::Capability => any::capability(&self.capabilities(), out),
            CommandBody::StartTLS => match auth::start_tls(self) {
                Ok(done) => {
                    self.finish(tag, Ok(done), out);
                    return Next::StartTls;
                }
                Err(failure) => Err(failure),
            },
            CommandBody::Compress { algorithm } if self.account().is_some() => {
                match any::compress(&algorithm, self.compressed) {
                    Ok(done) => {
                        self.compressed = true;
                        self.finish(tag, Ok(done), out);
                        return Next::Compress;
                    }
                    Err(failure) => Err(failure),
                }
            }
            CommandBody::Noop => any::noop(),
            CommandBody::Logout => {
                out.bye("Logging out");
                self.finish(tag, any::logout(), out);
                self.state.log_out();
                return Next::Close;
            }
            CommandBody::Id { parameters } => any::id(parameters, &self.peer, out),
            CommandBody::Idle if self.account().is_some() => return idle::start(self, tag, out),
            body => match &self.state {
                State::NotAuthenticated => match body {
                    CommandBody::Login { username, password } => {
                        auth::login(self, username.as_ref(), password.declassify().as_ref()).await
                    }
                    CommandBody::Authenticate {
                        mechanism,
                        initial_response,
                    } => match auth::authenticate(self, tag, &mechanism, initial_response, out)
                        .await
                    {
                        Some(outcome) => outcome,
                        None => return Next::Line,
                    },
                    other => Err(Failure::bad(format!(
                        "{} is not valid before logging in",
                        other.name()
                    ))),
                },
                State::Authenticated { .. } | State::Selected { .. } => {
                    self.authenticated(tag, body, &extras, out).await
                }
                // These states read lines, not commands (see `Session::handle`).
                State::Authenticating { .. } | State::Idling { .. } => {
                    Err(Failure::bad("A command is not valid here"))
                }
                State::Logout => return Next::Close,
            },
        };
        if let Some(view) = self.state.view_mut() {
            self.condstore |= view.condstore;
        }
        let freshness = self.report_changes(updates, out).await;
        self.finish(tag, outcome, out);
        if freshness == Freshness::Gone {
            return self.end_gone_selection(out);
        }
        Next::Command
    }

    /// Whether the selected mailbox stopped existing for this user since
    /// the last look (another session's DELETE, the deployment removing the
    /// address, a ban). Cheap when nothing was announced.
    async fn selection_is_gone(&mut self) -> bool {
        let services = self.services.clone();
        let Some(view) = self.state.view_mut() else {
            return false;
        };
        // A store that cannot be read now is no proof the mailbox is gone:
        // the command runs and answers the trouble itself.
        matches!(view.check(&services).await, Ok(Freshness::Gone))
    }

    /// A selection outlived its mailbox: the session ends, as Dovecot's
    /// does, since nothing that is there now may reach it.
    pub(crate) fn end_gone_selection(&mut self, out: &mut Out<'_>) -> Next {
        self.state.log_out();
        out.bye_with(&Code::NonExistent, GONE_TEXT);
        Next::Close
    }

    async fn authenticated(
        &mut self,
        tag: &str,
        mut body: CommandBody<'_>,
        extras: &Extras,
        out: &mut Out<'_>,
    ) -> Outcome {
        let account = self.require_account()?.clone();
        let services = self.services.clone();
        let name = body.name();
        if extras.saved.as_command_set && !use_saved_set(&mut body, self.selected()?.view) {
            // `$` names no message: nothing to do, and no error (RFC 5182 2.1).
            return Ok(super::outcome::Done::ok(format!("{name} completed")));
        }
        match body {
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                Err(Failure::bad("Already logged in"))
            }
            CommandBody::StartTLS => Err(Failure::bad("STARTTLS is only valid before logging in")),
            CommandBody::Enable { capabilities } => {
                let mut enabled = any::Enabled {
                    condstore: self.condstore,
                    qresync: self.qresync,
                };
                let answer = any::enable(&capabilities, &mut enabled, out);
                (self.condstore, self.qresync) = (enabled.condstore, enabled.qresync);
                if let Some(view) = self.state.view_mut() {
                    view.condstore |= enabled.condstore;
                    view.qresync |= enabled.qresync;
                }
                answer
            }
            CommandBody::Namespace => any::namespace(out),
            CommandBody::Create { mailbox } => mailbox::create(&services, &account, &mailbox).await,
            CommandBody::Delete { mailbox } => mailbox::delete(&services, &account, &mailbox).await,
            CommandBody::Rename { from, to } => {
                mailbox::rename(&services, &account, &from, &to).await
            }
            CommandBody::Subscribe { mailbox } => {
                mailbox::subscribe(&services, &account, &mailbox, true).await
            }
            CommandBody::Unsubscribe { mailbox } => {
                mailbox::subscribe(&services, &account, &mailbox, false).await
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => {
                list::list(
                    &services,
                    &account,
                    &reference,
                    &mailbox_wildcard,
                    false,
                    out,
                )
                .await
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                list::list(
                    &services,
                    &account,
                    &reference,
                    &mailbox_wildcard,
                    true,
                    out,
                )
                .await
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => {
                // Asking for HIGHESTMODSEQ enables CONDSTORE (RFC 7162 3.1).
                self.condstore |= item_names
                    .iter()
                    .any(|item| matches!(item, StatusDataItemName::HighestModSeq));
                status::status(&services, &account, &mailbox, &item_names, out).await
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.open(&account, &mailbox, &parameters, false, out).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.open(&account, &mailbox, &parameters, true, out).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let bytes: &[u8] = match &message {
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal(literal) => {
                        literal.data()
                    }
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal8(literal) => {
                        &literal.data
                    }
                };
                append::append(self, &mailbox, &flags, date.as_ref(), bytes).await
            }
            // The selected state (RFC 3501 6.4): the handlers get the view.
            CommandBody::Check => self
                .selected()
                .map(|_| super::outcome::Done::ok("CHECK completed")),
            CommandBody::Close => match self.state.deselect() {
                Some(view) => select::close(&services, view).await,
                None => Err(no_mailbox_selected()),
            },
            CommandBody::Unselect => match self.state.deselect() {
                Some(_) => Ok(super::outcome::Done::ok("UNSELECT completed")),
                None => Err(no_mailbox_selected()),
            },
            CommandBody::Expunge => {
                expunge::expunge(&services, self.selected()?.view, None, out).await
            }
            CommandBody::ExpungeUid { sequence_set } => {
                let view = self.selected()?.view;
                expunge::expunge(&services, view, Some(&sequence_set), out).await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                let view = self.selected()?.view;
                fetch::fetch(
                    &services,
                    view,
                    &sequence_set,
                    &macro_or_item_names,
                    uid,
                    &modifiers,
                    out,
                )
                .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let view = self.selected()?.view;
                let request = store::Request {
                    set: &sequence_set,
                    kind: &kind,
                    response: &response,
                    flags: &flags,
                    by_uid: uid,
                    modifiers: &modifiers,
                };
                store::store(&services, view, request, out).await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                let view = self.selected()?.view;
                let request = search::Request {
                    tag,
                    charset: charset.as_ref(),
                    criteria: criteria.as_ref(),
                    by_uid: uid,
                    returning: extras.search_return,
                    saved: &extras.saved,
                };
                search::search(&services, view, request, out).await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                let selected = self.selected()?;
                copy::copy(
                    &services,
                    selected,
                    &sequence_set,
                    &mailbox,
                    uid,
                    false,
                    out,
                )
                .await
            }
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                let selected = self.selected()?;
                copy::copy(&services, selected, &sequence_set, &mailbox, uid, true, out).await
            }
            _ => Err(Failure::bad(format!("{name} is not supported"))),
        }
    }

    /// The selected state's account and view, or the answer for a
    /// selected-state command outside it.
    fn selected(&mut self) -> Result<Selected<'_>, Failure> {
        self.state.selected_mut().ok_or_else(no_mailbox_selected)
    }

    /// SELECT or EXAMINE: the old selection ends first, whatever happens
    /// to the new one (RFC 3501 6.3.1).
    async fn open(
        &mut self,
        account: &Account,
        mailbox: &Mailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
        out: &mut Out<'_>,
    ) -> Outcome {
        // A SELECT ends the previous selection, and a QRESYNC client is
        // told where its responses end (RFC 7162 3.2.11).
        if self.state.deselect().is_some() && self.qresync {
            out.status(
                None,
                Status::Ok,
                Some(&Code::Closed),
                "Previous mailbox closed",
            );
        }
        let mut resync = None;
        for parameter in parameters {
            match parameter {
                // SELECT (CONDSTORE) enables CONDSTORE (RFC 7162 3.1.8).
                SelectParameter::CondStore => self.condstore = true,
                SelectParameter::QResync { .. } if !self.qresync => {
                    return Err(Failure::bad("QRESYNC is not enabled"));
                }
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    resync = Some(select::Resync {
                        uidvalidity: uid_validity.get(),
                        modseq: mod_sequence_value.get(),
                        known_uids: known_uids.as_ref(),
                    });
                }
            }
        }
        let enabled = any::Enabled {
            condstore: self.condstore,
            qresync: self.qresync,
        };
        let (view, done) = select::select(
            &self.services,
            account,
            mailbox,
            read_only,
            enabled,
            resync,
            out,
        )
        .await?;
        self.state.select(view);
        Ok(done)
    }

    /// Tells the client what changed in its selected mailbox, where the RFC allows it.
    async fn report_changes(&mut self, updates: Updates, out: &mut Out<'_>) -> Freshness {
        if updates == Updates::Never {
            return Freshness::Current;
        }
        let services = self.services.clone();
        let Some(view) = self.state.view_mut() else {
            return Freshness::Current;
        };
        // Expunges found during a command that had to hold them back are
        // reported now, even if nothing changed since (RFC 3501 7.4.1).
        if updates != Updates::NoExpunge {
            view.report_expunged(out);
        }
        let must_look = updates == Updates::Always && !services.store.hears_every_writer();
        if !must_look && !view.is_stale(&services).await {
            return Freshness::Current;
        }
        match view
            .refresh(&services, out, updates != Updates::NoExpunge)
            .await
        {
            Ok(freshness) => freshness,
            Err(failure) => {
                tracing::warn!(text = %failure.text, "could not refresh the selected mailbox");
                Freshness::Current
            }
        }
    }
}

/// Puts the saved search result where the command said `$` (RFC 5182):
/// UIDs for a UID command, sequence numbers otherwise. False when no saved
/// message is left.
fn use_saved_set(body: &mut CommandBody<'_>, view: &View) -> bool {
    let (set, by_uid) = match body {
        CommandBody::Fetch {
            sequence_set, uid, ..
        }
        | CommandBody::Store {
            sequence_set, uid, ..
        }
        | CommandBody::Copy {
            sequence_set, uid, ..
        }
        | CommandBody::Move {
            sequence_set, uid, ..
        } => (sequence_set, *uid),
        CommandBody::ExpungeUid { sequence_set } => (sequence_set, true),
        _ => return true,
    };
    match view.saved_set(by_uid) {
        Some(saved) => {
            *set = saved;
            true
        }
        None => false,
    }
}

fn no_mailbox_selected() -> Failure {
    Failure::bad("No mailbox selected")
}
