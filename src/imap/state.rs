//! The connection states of RFC 3501 section 3, and the only code that
//! moves a session from one to another. Each state holds exactly what it
//! needs (the account once logged in, the view once a mailbox is selected,
//! the tag of the command waiting for the client's next line), so no
//! combination the RFC does not allow can be written down: a selection
//! without a login, an IDLE before login, or two pending exchanges.
//!
//! ```text
//!   NotAuthenticated --AUTHENTICATE--> Authenticating --response--> (either)
//!        |  LOGIN / AUTHENTICATE ok
//!        v
//!   Authenticated <--CLOSE / UNSELECT / failed SELECT-- Selected
//!        |  SELECT / EXAMINE ok ------------------------->  ^
//!        |                                                  |
//!        +--IDLE--> Idling (keeps the selection, if any) --DONE
//!   any state --LOGOUT / BYE--> Logout
//! ```

use super::view::View;
use crate::directory::Account;

pub enum State {
    NotAuthenticated,
    /// AUTHENTICATE sent its continuation request; the client's response
    /// (one line) is awaited. `tag` is the AUTHENTICATE's.
    Authenticating {
        tag: String,
    },
    Authenticated {
        account: Account,
    },
    Selected {
        account: Account,
        view: View,
    },
    /// IDLE (RFC 2177) from the authenticated or the selected state; DONE
    /// returns to the state it came from.
    Idling {
        account: Account,
        view: Option<View>,
        tag: String,
    },
    Logout,
}

/// What a selected-state command works on.
pub struct Selected<'a> {
    pub account: &'a Account,
    pub view: &'a mut View,
}

impl State {
    pub fn account(&self) -> Option<&Account> {
        match self {
            State::Authenticated { account }
            | State::Selected { account, .. }
            | State::Idling { account, .. } => Some(account),
            State::NotAuthenticated | State::Authenticating { .. } | State::Logout => None,
        }
    }

    /// The selected mailbox's view, also while idling on it.
    pub fn view_mut(&mut self) -> Option<&mut View> {
        match self {
            State::Selected { view, .. } => Some(view),
            State::Idling { view, .. } => view.as_mut(),
            _ => None,
        }
    }

    /// The selected state's account and view, for a selected-state command.
    pub fn selected_mut(&mut self) -> Option<Selected<'_>> {
        match self {
            State::Selected { account, view } => Some(Selected { account, view }),
            _ => None,
        }
    }

    pub fn is_idling(&self) -> bool {
        matches!(self, State::Idling { .. })
    }

    /// AUTHENTICATE waits for the client's response.
    pub fn await_sasl_response(&mut self, tag: &str) {
        if matches!(self, State::NotAuthenticated) {
            *self = State::Authenticating {
                tag: tag.to_owned(),
            };
        }
    }

    /// The client answered the AUTHENTICATE continuation: back to not
    /// authenticated (a successful exchange then logs in). The AUTHENTICATE's tag.
    pub fn take_sasl_response(&mut self) -> Option<String> {
        match std::mem::replace(self, State::NotAuthenticated) {
            State::Authenticating { tag } => Some(tag),
            other => {
                *self = other;
                None
            }
        }
    }

    pub fn log_in(&mut self, account: Account) {
        if matches!(self, State::NotAuthenticated | State::Authenticating { .. }) {
            *self = State::Authenticated { account };
        }
    }

    /// A mailbox was opened; it replaces any previous selection.
    pub fn select(&mut self, view: View) {
        match std::mem::replace(self, State::Logout) {
            State::Authenticated { account } | State::Selected { account, .. } => {
                *self = State::Selected { account, view };
            }
            other => *self = other,
        }
    }

    /// Leaves the selected state (CLOSE, UNSELECT, a SELECT that starts by
    /// dropping the old selection). The view that was selected, if any.
    pub fn deselect(&mut self) -> Option<View> {
        match std::mem::replace(self, State::Logout) {
            State::Selected { account, view } => {
                *self = State::Authenticated { account };
                Some(view)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// IDLE begins. False (and nothing changes) before login.
    pub fn start_idle(&mut self, tag: &str) -> bool {
        let tag = tag.to_owned();
        match std::mem::replace(self, State::Logout) {
            State::Authenticated { account } => {
                *self = State::Idling {
                    account,
                    view: None,
                    tag,
                };
                true
            }
            State::Selected { account, view } => {
                *self = State::Idling {
                    account,
                    view: Some(view),
                    tag,
                };
                true
            }
            other => {
                *self = other;
                false
            }
        }
    }

    /// DONE (or a bad line) ends IDLE: back where it started. The IDLE's tag.
    pub fn end_idle(&mut self) -> Option<String> {
        match std::mem::replace(self, State::Logout) {
            State::Idling { account, view, tag } => {
                *self = match view {
                    Some(view) => State::Selected { account, view },
                    None => State::Authenticated { account },
                };
                Some(tag)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// LOGOUT, or a BYE that ends the session.
    pub fn log_out(&mut self) {
        *self = State::Logout;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account {
            user_id: "u1".into(),
            email: "alice@example.com".into(),
            token_id: "t1".into(),
        }
    }

    #[test]
    fn a_sasl_exchange_returns_its_tag_once_and_then_logs_in() {
        let mut state = State::NotAuthenticated;
        state.await_sasl_response("a1");
        assert!(matches!(&state, State::Authenticating { tag } if tag == "a1"));
        assert_eq!(state.take_sasl_response().as_deref(), Some("a1"));
        assert_eq!(state.take_sasl_response(), None);
        state.log_in(alice());
        assert_eq!(state.account(), Some(&alice()));
    }

    #[test]
    fn idle_needs_a_login_and_done_returns_where_it_started() {
        let mut state = State::NotAuthenticated;
        assert!(!state.start_idle("i0"));
        assert!(matches!(state, State::NotAuthenticated));
        state.log_in(alice());
        assert!(state.start_idle("i1"));
        assert!(state.is_idling());
        assert!(state.view_mut().is_none());
        assert!(!state.start_idle("i2"), "IDLE does not nest");
        assert_eq!(state.end_idle().as_deref(), Some("i1"));
        assert!(matches!(state, State::Authenticated { .. }));
        assert_eq!(state.end_idle(), None);
    }

    #[test]
    fn nothing_selected_means_nothing_to_deselect_and_no_second_login() {
        let mut state = State::Authenticated { account: alice() };
        assert!(state.deselect().is_none());
        assert!(state.selected_mut().is_none());
        state.log_in(Account {
            user_id: "u2".into(),
            ..alice()
        });
        assert_eq!(state.account().map(|a| a.user_id.as_str()), Some("u1"));
        state.log_out();
        assert_eq!(state.account(), None);
    }
}
