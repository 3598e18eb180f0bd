//! One client's session: the state machine of RFC 3501 3, fed with framed
//! input by the connection handler and answering into an output buffer.
//! It does no I/O of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;

use super::outcome::Failure;
use super::refusal::{Problem, recover_tag};
use super::response::{Code, Out, Status};
use super::state::State;
use super::{Services, Transport, capabilities_before_login};
use crate::directory::Account;
use crate::ops::metrics::CommandStatus;

/// What the session needs next from the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The next command.
    Command,
    /// One line answering a continuation request (AUTHENTICATE).
    Line,
    /// IDLE: a line (DONE) or a change to report, whichever comes first.
    Idle,
    /// Send what is queued, drop whatever the client sent after the
    /// command, and run the TLS handshake.
    StartTls,
    /// Send what is queued, then compress both ways (COMPRESS, RFC 4978).
    Compress,
    /// Send what is queued, then close.
    Close,
}

/// Input for the session.
#[derive(Debug)]
pub enum Input<'a> {
    Command(&'a [u8]),
    /// A line after a continuation request; `None` when it was too long.
    Line(Option<&'a [u8]>),
    /// A command the framer refused while reading it.
    Refused {
        tag: Option<String>,
        problem: Problem,
    },
}

/// Failed logins tolerated on one connection before it is closed.
const MAX_FAILED_LOGINS: u32 = 5;

pub struct Session {
    pub(super) services: Arc<Services>,
    pub(super) state: State,
    pub(super) peer: SocketAddr,
    pub(super) failed_logins: u32,
    /// Who logged in, kept past LOGOUT for the closing log line.
    pub(super) user: Option<String>,
    bad_commands: u32,
    /// CONDSTORE was enabled (RFC 7162 3.1): by ENABLE or by a command that
    /// uses it. It stays on for the rest of the session.
    pub(super) condstore: bool,
    /// QRESYNC was enabled (RFC 7162 3.2.3); it implies CONDSTORE.
    pub(super) qresync: bool,
    /// COMPRESS=DEFLATE is on (RFC 4978).
    pub(super) compressed: bool,
    /// Whether any valid command has arrived (HTTP detection applies before that).
    seen_command: bool,
    pub(crate) transport: Transport,
    /// The command being answered (its metrics label) and when it arrived.
    pub(super) running: Option<(&'static str, std::time::Instant)>,
}

impl Session {
    pub fn new(services: Arc<Services>, peer: SocketAddr, transport: Transport) -> Session {
        Session {
            services,
            state: State::NotAuthenticated,
            peer,
            failed_logins: 0,
            user: None,
            bad_commands: 0,
            condstore: false,
            qresync: false,
            compressed: false,
            seen_command: false,
            transport,
            running: None,
        }
    }

    /// The handshake after STARTTLS succeeded.
    pub fn tls_started(&mut self) {
        self.transport.encrypted = true;
    }

    /// The capabilities for the current state and transport.
    pub(crate) fn capabilities(&self) -> String {
        match self.state.account() {
            Some(_) => format!("{} {}", super::CAPABILITIES, super::AFTER_LOGIN),
            None => capabilities_before_login(&self.transport),
        }
    }

    pub fn greeting(&self, out: &mut Out<'_>) {
        out.status(
            None,
            Status::Ok,
            Some(&Code::Capability(self.capabilities())),
            "imap-server ready",
        );
    }

    /// How long the client may stay silent in the current state.
    pub fn timeout(&self) -> Duration {
        match self.state.account() {
            Some(_) => self.services.limits.idle_timeout,
            None => self.services.limits.login_timeout,
        }
    }

    pub fn account(&self) -> Option<&Account> {
        self.state.account()
    }

    pub(crate) fn require_account(&self) -> Result<&Account, Failure> {
        self.account().ok_or_else(|| Failure::bad("Not logged in"))
    }

    /// The login name, for logs.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The text of the BYE sent when the client stayed silent too long.
    pub fn timeout_text(&self) -> &'static str {
        "Autologout; idle for too long"
    }

    pub async fn handle(&mut self, input: Input<'_>, out: &mut Out<'_>) -> Next {
        let next = match input {
            Input::Command(bytes) => self.on_command(bytes, out).await,
            Input::Line(line) if self.state.is_idling() => self.on_idle_line(line, out),
            Input::Line(line) => self.on_authenticate_response(line, out).await,
            Input::Refused { tag, problem } => {
                self.on_refused(tag, problem, out);
                self.count_bad_command(out)
            }
        };
        if self.failed_logins >= MAX_FAILED_LOGINS {
            out.bye("Too many failed login attempts");
            return Next::Close;
        }
        next
    }

    async fn on_command(&mut self, bytes: &[u8], out: &mut Out<'_>) -> Next {
        // iOS sends a bare empty line between commands.
        if bytes == b"\r\n" {
            return Next::Command;
        }
        if !self.seen_command && looks_like_http(bytes) {
            tracing::info!(peer = %self.peer, "HTTP request on the IMAP port");
            out.bye("This is an IMAP server, not an HTTP server");
            return Next::Close;
        }
        let extended = match super::grammar::extend(bytes) {
            Ok(extended) => extended,
            Err(failure) => {
                out.status(
                    recover_tag(bytes).as_deref(),
                    failure.status,
                    failure.code.as_ref(),
                    &failure.text,
                );
                return self.count_bad_command(out);
            }
        };
        let parsed = extended.edited.as_deref().unwrap_or(bytes);
        match CommandCodec::default().decode(parsed) {
            Ok(([], command)) => {
                self.seen_command = true;
                self.bad_commands = 0;
                let tag = command.tag.inner().to_owned();
                self.execute(&tag, command.body, extended.extras, out).await
            }
            _ if looks_like_echo(bytes) => {
                // A client echoing our own responses back; answering would
                // only start a loop of errors.
                tracing::debug!(peer = %self.peer, "ignored an echoed server response");
                Next::Command
            }
            _ => {
                self.reject_malformed(bytes, out);
                self.count_bad_command(out)
            }
        }
    }

    fn count_bad_command(&mut self, out: &mut Out<'_>) -> Next {
        self.bad_commands += 1;
        if self.bad_commands >= self.services.limits.max_bad_commands {
            out.bye("Too many invalid commands");
            Next::Close
        } else {
            Next::Command
        }
    }

    fn reject_malformed(&self, bytes: &[u8], out: &mut Out<'_>) {
        let tag = recover_tag(bytes);
        let name = command_name(bytes);
        let text = match &name {
            _ if tag.is_none() => "Missing or invalid tag".to_owned(),
            Some(name) if super::dispatch::is_known_command(name) => {
                format!("Invalid arguments for {name}")
            }
            Some(name) => format!("Unknown command {name}"),
            None => "Invalid command".to_owned(),
        };
        let label = super::dispatch::command_label(name.as_deref().unwrap_or_default());
        self.services
            .metrics
            .command(label, CommandStatus::Bad, None);
        out.status(tag.as_deref(), Status::Bad, Some(&Code::Parse), &text);
    }

    fn on_refused(&self, tag: Option<String>, problem: Problem, out: &mut Out<'_>) {
        let failure = match problem {
            Problem::LineTooLong => Failure::bad_with(
                Code::Limit,
                format!(
                    "Command line longer than {} bytes",
                    self.services.limits.max_line
                ),
            ),
            Problem::LiteralTooBig {
                append: true,
                limit,
            } => Failure::no(
                Code::TooBig,
                format!("Message larger than the limit of {limit} bytes"),
            ),
            Problem::LiteralTooBig {
                append: false,
                limit,
            } => Failure::bad_with(Code::TooBig, format!("Literal larger than {limit} bytes")),
        };
        self.services
            .metrics
            .command("other", failure.status.into(), None);
        out.status(
            tag.as_deref(),
            failure.status,
            failure.code.as_ref(),
            &failure.text,
        );
    }

    pub(super) fn finish(
        &mut self,
        tag: &str,
        outcome: super::outcome::Outcome,
        out: &mut Out<'_>,
    ) {
        self.count_answer(&outcome);
        match outcome {
            Ok(done) => out.tagged(tag, Status::Ok, done.code.as_ref(), &done.text),
            Err(failure) => out.tagged(tag, failure.status, failure.code.as_ref(), &failure.text),
        }
    }
}

impl Session {
    /// The metrics of the answer about to go out for the running command.
    fn count_answer(&mut self, outcome: &super::outcome::Outcome) {
        let metrics = &self.services.metrics;
        let status = match outcome {
            Ok(_) => CommandStatus::Ok,
            Err(failure) => {
                if failure.from_database {
                    metrics.database_error();
                }
                failure.status.into()
            }
        };
        let (command, started) = self
            .running
            .take()
            .unwrap_or(("other", std::time::Instant::now()));
        // IDLE's "duration" is how long the client chose to wait.
        let took = (command != "IDLE").then(|| started.elapsed());
        metrics.command(command, status, took);
    }
}

impl From<Status> for CommandStatus {
    fn from(status: Status) -> CommandStatus {
        match status {
            Status::Ok => CommandStatus::Ok,
            Status::No => CommandStatus::No,
            Status::Bad => CommandStatus::Bad,
        }
    }
}

/// The second word of a command line, upper-cased.
fn command_name(bytes: &[u8]) -> Option<String> {
    let line = bytes.split(|&b| b == b'\r' || b == b'\n').next()?;
    let word = line.split(|&b| b == b' ').nth(1)?;
    let word = std::str::from_utf8(word).ok()?;
    let printable =
        !word.is_empty() && word.len() <= 32 && word.bytes().all(|b| b.is_ascii_graphic());
    printable.then(|| word.to_ascii_uppercase())
}

/// `GET / HTTP/1.1` and friends (ARCHITECTURE: answers clients rely on).
fn looks_like_http(bytes: &[u8]) -> bool {
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"PATCH ",
        b"TRACE ",
    ];
    let has_version = line.windows(6).any(|w| w.eq_ignore_ascii_case(b" HTTP/"));
    line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"HTTP/")
        || has_version
            && METHODS
                .iter()
                .any(|m| line.len() >= m.len() && line[..m.len()].eq_ignore_ascii_case(m))
}

/// Untagged status lines and continuations, as a confused client echoes them.
fn looks_like_echo(bytes: &[u8]) -> bool {
    let first = bytes
        .split(|&b| b == b' ' || b == b'\r')
        .next()
        .unwrap_or_default();
    first == b"*"
        || first == b"+"
        || [&b"OK"[..], b"NO", b"BAD", b"BYE", b"PREAUTH"]
            .iter()
            .any(|word| first.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requests_are_recognised() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"post /login http/1.0\r\n"));
        assert!(looks_like_http(b"HTTP/1.1 200 OK\r\n"));
        assert!(!looks_like_http(b"GET NOOP\r\n"));
        assert!(!looks_like_http(b"a1 LOGIN x y\r\n"));
    }

    #[test]
    fn echoed_responses_are_recognised() {
        assert!(looks_like_echo(b"OK [CAPABILITY IMAP4rev1] ready\r\n"));
        assert!(looks_like_echo(b"* OK hello\r\n"));
        assert!(looks_like_echo(b"no way\r\n"));
        assert!(!looks_like_echo(b"a1 NOOP\r\n"));
    }

    #[test]
    fn command_names_are_extracted() {
        assert_eq!(command_name(b"a1 frob x\r\n"), Some("FROB".into()));
        assert_eq!(command_name(b"a1\r\n"), None);
    }
}
