//! LOGIN and AUTHENTICATE PLAIN (RFC 3501 6.2, RFC 4616, SASL-IR RFC 4959).
//! The password is the customer's IMAP token; it is never logged.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use imap_types::auth::AuthMechanism;
use imap_types::secret::Secret;

use crate::directory::AuthError;
use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out};
use crate::imap::session::Session;
use crate::imap::{CAPABILITIES, SPECIAL_FOLDER_NAMES};
use crate::logsafe::LoginName;
use crate::ops::metrics::LoginOutcome;

/// STARTTLS (RFC 3501 6.2.1): only before login, only once, only where TLS
/// is configured.
pub fn start_tls(session: &Session) -> Outcome {
    if session.transport.encrypted {
        return Err(Failure::bad("TLS is already active"));
    }
    if !session.transport.can_start_tls {
        return Err(Failure::bad(
            "STARTTLS is not available: TLS is not configured",
        ));
    }
    if session.account().is_some() {
        return Err(Failure::bad("STARTTLS is only valid before logging in"));
    }
    Ok(Done::ok("Begin TLS negotiation now"))
}

/// Tokens are passwords: with TLS configured, they may not cross an
/// unencrypted connection (RFC 3501 6.2.3, LOGINDISABLED).
fn require_privacy(session: &Session) -> Result<(), Failure> {
    if session.transport.login_allowed() {
        Ok(())
    } else {
        session
            .services
            .metrics
            .login(LoginOutcome::PrivacyRequired);
        Err(Failure::no(
            Code::PrivacyRequired,
            "Use STARTTLS or the IMAPS port before logging in: tokens must not travel in clear",
        ))
    }
}

pub async fn login(session: &mut Session, username: &[u8], password: &[u8]) -> Outcome {
    require_privacy(session)?;
    wait_out_penalty(session).await;
    let (Ok(username), Ok(token)) = (std::str::from_utf8(username), std::str::from_utf8(password))
    else {
        count_failure(session);
        return Err(Failure::no(
            Code::AuthenticationFailed,
            "Invalid IMAP token",
        ));
    };
    log_in(session, username, token).await
}

/// Starts AUTHENTICATE. `None` means a continuation request was queued and
/// the client's response arrives through `on_authenticate_response`.
pub async fn authenticate(
    session: &mut Session,
    tag: &str,
    mechanism: &AuthMechanism<'_>,
    initial_response: Option<Secret<Cow<'_, [u8]>>>,
    out: &mut Out<'_>,
) -> Option<Outcome> {
    if let Err(refusal) = require_privacy(session) {
        return Some(Err(refusal));
    }
    if *mechanism != AuthMechanism::Plain {
        return Some(Err(Failure::no(
            Code::Cannot,
            format!("Unsupported authentication mechanism {mechanism}; use PLAIN"),
        )));
    }
    match initial_response {
        Some(response) => Some(plain(session, response.declassify()).await),
        None => {
            session.state.await_sasl_response(tag);
            out.continuation("");
            None
        }
    }
}

impl Session {
    /// The client's answer to the AUTHENTICATE continuation request.
    pub(crate) async fn on_authenticate_response(
        &mut self,
        line: Option<&[u8]>,
        out: &mut Out<'_>,
    ) -> crate::imap::session::Next {
        let Some(tag) = self.state.take_sasl_response() else {
            return crate::imap::session::Next::Command;
        };
        let outcome = match line {
            None => Err(Failure::bad_with(
                Code::Limit,
                "Authentication response too long",
            )),
            Some(b"*") => Err(Failure::bad("Authentication cancelled")),
            Some(encoded) => match STANDARD.decode(encoded) {
                Ok(decoded) => plain(self, &decoded).await,
                Err(_) => Err(Failure::bad("Authentication response is not valid base64")),
            },
        };
        self.finish(&tag, outcome, out);
        crate::imap::session::Next::Command
    }
}

/// A failed attempt: counted for the connection (too many close it) and
/// for the client's address (see `imap::penalty`).
fn count_failure(session: &mut Session) {
    session.services.metrics.login(LoginOutcome::BadCredentials);
    charge_failure(session);
}

/// Charges a failure to the connection and the address; the caller
/// counts its outcome.
fn charge_failure(session: &mut Session) {
    session.failed_logins += 1;
    session.services.penalties.failed(session.peer.ip());
}

/// Holds an attempt from an address that failed too often, before anything
/// is checked: its delay costs the directory nothing. Only this connection
/// waits; commands are read one at a time, so it cannot queue more.
async fn wait_out_penalty(session: &Session) {
    let delay = session.services.penalties.delay(session.peer.ip());
    if !delay.is_zero() {
        session.services.metrics.login_delayed();
        tracing::debug!(peer = %session.peer, ?delay, "login attempt held by the failure penalty");
        tokio::time::sleep(delay).await;
    }
}

/// `authzid NUL authcid NUL passwd` (RFC 4616 2).
async fn plain(session: &mut Session, message: &[u8]) -> Outcome {
    wait_out_penalty(session).await;
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::bad("Malformed PLAIN authentication message"));
    };
    let (Ok(authzid), Ok(authcid), Ok(token)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(authcid),
        std::str::from_utf8(password),
    ) else {
        count_failure(session);
        return Err(Failure::no(
            Code::AuthenticationFailed,
            "Invalid IMAP token",
        ));
    };
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        count_failure(session);
        return Err(Failure::no(
            Code::AuthorizationFailed,
            "Logging in as another user is not allowed",
        ));
    }
    log_in(session, authcid, token).await
}

async fn log_in(session: &mut Session, login: &str, token: &str) -> Outcome {
    let services = session.services.clone();
    let result = services.directory.authenticate(login, token).await;
    match result {
        Ok(account) => {
            let provisioned = services
                .store
                .provision_user(&account.user_id, &SPECIAL_FOLDER_NAMES)
                .await;
            if provisioned.is_err() {
                services.metrics.login(LoginOutcome::Unavailable);
            }
            provisioned?;
            services.metrics.login(LoginOutcome::Ok);
            services.penalties.succeeded(session.peer.ip());
            tracing::info!(user = %account.email, peer = %session.peer, outcome = "success", "login");
            session.user = Some(account.email.clone());
            session.state.log_in(account);
            Ok(Done::with_code(
                Code::Capability(CAPABILITIES.into()),
                "Logged in",
            ))
        }
        Err(error) => {
            // An outage says nothing about the client.
            if error == AuthError::Unavailable {
                services.metrics.login(LoginOutcome::Unavailable);
            } else {
                services.metrics.login(LoginOutcome::from(&error));
                charge_failure(session);
            }
            tracing::info!(user = %LoginName(login), peer = %session.peer, outcome = %error, "login failed");
            Err(error.into())
        }
    }
}
