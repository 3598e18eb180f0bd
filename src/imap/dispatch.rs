//! The one place that maps a parsed command to its handler, by state.

use imap_types::command::CommandBody;

use super::commands::{any, auth, list, mailbox, status};
use super::outcome::Failure;
use super::response::Out;
use super::session::{Next, Session, State};

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
];

pub fn is_known_command(name: &str) -> bool {
    KNOWN_COMMANDS.contains(&name)
}

impl Session {
    pub(super) async fn execute(
        &mut self,
        tag: &str,
        body: CommandBody<'_>,
        out: &mut Out,
    ) -> Next {
        let name = body.name();
        // Commands valid in every state.
        let outcome = match body {
            CommandBody::Capability => any::capability(self.account().is_some(), out),
            CommandBody::Noop => any::noop(),
            CommandBody::Logout => {
                out.bye("Logging out");
                self.finish(tag, any::logout(), out);
                self.state = State::Logout;
                return Next::Close;
            }
            CommandBody::Id { parameters } => any::id(parameters, &self.peer, out),
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
                    CommandBody::StartTLS => Err(Failure::bad(
                        "STARTTLS is not available: TLS is not configured",
                    )),
                    _ => Err(Failure::bad(format!(
                        "{name} is not valid before logging in"
                    ))),
                },
                State::Authenticated(account) => {
                    let account = account.clone();
                    let services = self.services.clone();
                    match body {
                        CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                            Err(Failure::bad("Already logged in"))
                        }
                        CommandBody::Enable { capabilities } => any::enable(&capabilities, out),
                        CommandBody::Namespace => any::namespace(out),
                        CommandBody::Create { mailbox } => {
                            mailbox::create(&services, &account, &mailbox).await
                        }
                        CommandBody::Delete { mailbox } => {
                            mailbox::delete(&services, &account, &mailbox).await
                        }
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
                        } => status::status(&services, &account, &mailbox, &item_names, out).await,
                        CommandBody::Select { .. }
                        | CommandBody::Examine { .. }
                        | CommandBody::Append { .. }
                        | CommandBody::Idle
                        | CommandBody::Check
                        | CommandBody::Close
                        | CommandBody::Unselect
                        | CommandBody::Expunge
                        | CommandBody::ExpungeUid { .. }
                        | CommandBody::Search { .. }
                        | CommandBody::Fetch { .. }
                        | CommandBody::Store { .. }
                        | CommandBody::Copy { .. }
                        | CommandBody::Move { .. } => Err(Failure::bad(format!(
                            "{name} is not available in this release: message access is not implemented yet"
                        ))),
                        CommandBody::StartTLS => {
                            Err(Failure::bad("STARTTLS is only valid before logging in"))
                        }
                        _ => Err(Failure::bad(format!("{name} is not supported"))),
                    }
                }
                State::Logout => return Next::Close,
            },
        };
        self.finish(tag, outcome, out);
        Next::Command
    }
}
