//! How a command ends: the one place where errors of the lower layers become
//! tagged responses with their RFC 5530 codes.

use super::response::{Code, Status};
use crate::directory::{AddressRefusal, AuthError, Unavailable};
use crate::store::StoreError;

/// A successful completion: `tag OK [code] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub code: Option<Code>,
    pub text: String,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Done {
        Done {
            code: None,
            text: text.into(),
        }
    }

    pub fn with_code(code: Code, text: impl Into<String>) -> Done {
        Done {
            code: Some(code),
            text: text.into(),
        }
    }
}

/// A refusal: `tag NO [code] text` or `tag BAD [code] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: Status,
    pub code: Option<Code>,
    pub text: String,
    /// The database failed (counted in `imap_database_errors_total`).
    pub from_database: bool,
}

impl Failure {
    /// A change refused because the mailbox was opened with EXAMINE.
    pub fn read_only() -> Failure {
        Failure::no(Code::Cannot, "The mailbox is open read-only (EXAMINE)")
    }

    pub fn no(code: Code, text: impl Into<String>) -> Failure {
        Failure {
            status: Status::No,
            code: Some(code),
            text: text.into(),
            from_database: false,
        }
    }

    pub fn bad(text: impl Into<String>) -> Failure {
        Failure {
            status: Status::Bad,
            code: None,
            text: text.into(),
            from_database: false,
        }
    }

    pub fn bad_with(code: Code, text: impl Into<String>) -> Failure {
        Failure {
            status: Status::Bad,
            code: Some(code),
            text: text.into(),
            from_database: false,
        }
    }

    /// The answer for any mailbox the user does not have, whoever else has it.
    /// Sending part of the answer failed; nobody will read what follows.
    pub fn connection_lost() -> Failure {
        Failure {
            status: Status::No,
            code: None,
            text: "Connection lost while answering".into(),
            from_database: false,
        }
    }

    pub fn no_such_mailbox() -> Failure {
        Failure::no(Code::NonExistent, "No such mailbox")
    }

    pub fn unavailable() -> Failure {
        Failure::no(Code::Unavailable, "Temporary failure, try again later")
    }
}

pub type Outcome = Result<Done, Failure>;

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        match error {
            StoreError::AlreadyExists => Failure::no(Code::AlreadyExists, "Mailbox already exists"),
            StoreError::NotFound => Failure::no_such_mailbox(),
            StoreError::Corrupt(ref detail) => {
                tracing::error!(%detail, "stored data is malformed");
                Failure::no(
                    Code::Corruption,
                    "Stored data is damaged; the operator has been told",
                )
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                Failure {
                    from_database: true,
                    ..Failure::unavailable()
                }
            }
        }
    }
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Failure {
        let code = match error {
            AuthError::InvalidToken => Code::AuthenticationFailed,
            AuthError::Expired => Code::Expired,
            AuthError::SubscriptionInactive => Code::ContactAdmin,
            AuthError::Unavailable => Code::Unavailable,
        };
        Failure::no(code, error.to_string())
    }
}

impl From<AddressRefusal> for Failure {
    fn from(refusal: AddressRefusal) -> Failure {
        let code = match refusal {
            AddressRefusal::Malformed => Code::Cannot,
            AddressRefusal::DomainBanned
            | AddressRefusal::AddressBanned
            | AddressRefusal::NotYourDomain
            | AddressRefusal::DomainInactive => Code::NoPerm,
            AddressRefusal::Unavailable => Code::Unavailable,
        };
        Failure::no(code, refusal.to_string())
    }
}

impl From<Unavailable> for Failure {
    fn from(_: Unavailable) -> Failure {
        Failure::unavailable()
    }
}
