//! Storage: the `MailStore` and `AccountStore` traits and their PostgreSQL and
//! SQLite implementations. Nothing here knows IMAP syntax.

mod postgres;
mod sql;
mod sqlite;
mod waits;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use waits::{BOUNDS as WAIT_BOUNDS, PoolWaits, WaitTotals};

/// Storage failures, mapped to protocol answers in exactly one place (`imap::outcome`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    AlreadyExists,
    #[error("no such mailbox")]
    NotFound,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A mailbox as storage knows it, resolved for one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailboxId {
    /// The unified view of everything the user receives.
    Inbox { user_id: String },
    /// One disposable address (lower case) as one user owns it: the
    /// incarnation a selection is bound to. Mail that reached the address
    /// while someone else owned it is never part of it.
    Address { address: String, user_id: String },
    /// A personal folder of the user.
    Folder { user_id: String, name: String },
}

impl MailboxId {
    /// The owner of the mod-sequence counter of this mailbox's messages: the
    /// user (docs/ARCHITECTURE.md, Mod-sequences). Its counter is the
    /// highestmodseq of the user's own INBOX state row.
    fn counter(&self) -> &str {
        match self {
            MailboxId::Inbox { user_id }
            | MailboxId::Address { user_id, .. }
            | MailboxId::Folder { user_id, .. } => user_id,
        }
    }

    /// The `mailbox_state` key and `emails` columns of this mailbox.
    fn key(&self) -> (&str, &str) {
        match self {
            MailboxId::Inbox { user_id } => (user_id, "INBOX"),
            MailboxId::Address { address, .. } => (address, "INBOX"),
            MailboxId::Folder { user_id, name } => (user_id, name),
        }
    }

    /// For an address, the user whose incarnation of it this is.
    fn address_user(&self) -> Option<&str> {
        match self {
            MailboxId::Address { user_id, .. } => Some(user_id),
            _ => None,
        }
    }

    /// Whether a row the insert trigger gave to `inbox_owner` is part of
    /// this mailbox. It is not when the address changed hands between the
    /// name's resolution and the write: the row must then not be kept, or
    /// an APPEND or COPY would land in a stranger's mailbox.
    fn holds(&self, inbox_owner: Option<&str>) -> bool {
        self.address_user()
            .is_none_or(|user| inbox_owner == Some(user))
    }

    /// What `$1` and `$2` of `scope`'s filter are bound to.
    fn binds(&self) -> (&str, &str) {
        match self {
            MailboxId::Address { address, user_id } => (address, user_id),
            _ => self.key(),
        }
    }
}

/// One of the user's mailboxes, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    pub name: String,
    pub kind: MailboxKind,
    pub subscribed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    Inbox,
    Address,
    Folder,
}

/// Per-mailbox counters (RFC 3501 2.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxState {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// The highest mod-sequence of the mailbox's messages and remembered
    /// expunges (RFC 7162 3.1.2.1); never below 1.
    pub highestmodseq: u64,
    /// Expunges up to this mod-sequence are forgotten (RFC 7162 3.2.5.2).
    pub forgotten_modseq: u64,
    /// Messages with a UID at or above this are \Recent.
    pub recent_uid: u32,
}

/// What STATUS and ban filtering need of each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    pub uid: u32,
    pub sender: Option<String>,
    pub flags: Vec<String>,
    pub modseq: u64,
}

impl MessageSummary {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// A message to store, with the deployment's columns filled in from it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub raw: Vec<u8>,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub to_addrs: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub flags: Vec<String>,
}

/// Where a stored message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Parse results kept with a message (see migration 0002).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseCache {
    /// Length of the bytes a client sees (RFC822.SIZE).
    pub size: Option<u32>,
    pub envelope: Option<String>,
    pub body_structure: Option<String>,
    pub body: Option<String>,
}

impl ParseCache {
    pub fn is_complete(&self) -> bool {
        self.size.is_some()
            && self.envelope.is_some()
            && self.body_structure.is_some()
            && self.body.is_some()
    }
}

/// A stored message with what FETCH and SEARCH may need.
#[derive(Debug, Clone)]
pub struct MessageData {
    pub id: String,
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: u64,
    pub timestamp: DateTime<Utc>,
    pub cache: ParseCache,
    /// Bytes of stored content (raw, body and html), known without loading
    /// it: what reading its content will cost, so FETCH can batch by it.
    pub stored_size: u64,
    /// The stored content; loaded only when asked for.
    pub content: Option<Content>,
    /// The header section as kept for SEARCH (migration 0005), when asked
    /// for and computed already.
    pub header_block: Option<Vec<u8>>,
}

/// The columns a message's bytes come from (ARCHITECTURE: storage).
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub raw: Option<Vec<u8>>,
    pub subject: Option<String>,
    pub from_addr: Option<String>,
    pub to_addrs: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
}

/// Which messages `MailStore::fill_contents` loads the content of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Every,
    /// Those whose parse results are not all cached (FETCH of ENVELOPE,
    /// BODYSTRUCTURE or RFC822.SIZE parses only those).
    Unparsed,
    /// Those stored without their bytes, whose message is made from columns.
    Unstored,
    /// The kept header section of every message (`MessageData::header_block`),
    /// and the content of those whose header section is not kept yet.
    Headers,
}

impl Wanted {
    /// Whether a message is wanted before looking at what is stored.
    pub fn may_want(self, message: &MessageData) -> bool {
        match self {
            Wanted::Every | Wanted::Unstored | Wanted::Headers => true,
            Wanted::Unparsed => !message.cache.is_complete(),
        }
    }
}

/// How STORE changes flags (RFC 3501 6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Replace,
    Add,
    Remove,
}

impl FlagChange {
    /// The flags a message ends up with.
    pub fn apply(self, current: &[String], given: &[String]) -> Vec<String> {
        let mut result: Vec<String> = match self {
            FlagChange::Replace => Vec::new(),
            FlagChange::Add | FlagChange::Remove => current.to_vec(),
        };
        match self {
            FlagChange::Replace | FlagChange::Add => {
                for flag in given {
                    if !result.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
                        result.push(flag.clone());
                    }
                }
            }
            FlagChange::Remove => {
                result.retain(|f| !given.iter().any(|g| g.eq_ignore_ascii_case(f)))
            }
        }
        result
    }
}

/// A message's flags after a STORE, and the mod-sequence they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flagged {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: u64,
    /// Whether this STORE changed them (and so gave them `modseq`).
    pub changed: bool,
}

/// What a STORE did: every message it looked at, and those it left alone
/// because they changed after the client's UNCHANGEDSINCE (RFC 7162 3.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsChanged {
    pub messages: Vec<Flagged>,
    pub modified: Vec<u32>,
}

/// What changed in a mailbox after a mod-sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub vanished: Vec<u32>,
    /// The highest mod-sequence among those expunges (0: none).
    pub newest_vanished: u64,
    pub changed: Vec<MessageSummary>,
}

/// Where COPY put the messages: (source UID, new UID) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uidvalidity: u32,
    pub pairs: Vec<(u32, u32)>,
}

/// Mailboxes and messages.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Gives a user seen for the first time their INBOX and the special-use folders.
    async fn provision_user(&self, user_id: &str, folders: &[&str]) -> StoreResult<()>;
    /// The user's INBOX, addresses and folders, with subscription state.
    async fn mailboxes(&self, user_id: &str) -> StoreResult<Vec<MailboxEntry>>;
    /// The user who owns this address, if any.
    async fn address_owner(&self, address: &str) -> StoreResult<Option<String>>;
    /// Makes `address` the user's; mail already stored for it joins the unified INBOX.
    async fn create_address(&self, user_id: &str, address: &str) -> StoreResult<()>;
    /// Releases the user's address and removes its mail, in one transaction.
    async fn delete_address(&self, user_id: &str, address: &str) -> StoreResult<()>;
    /// Creates a personal folder (its parents must already exist or be created by the caller).
    async fn create_folder(&self, user_id: &str, name: &str) -> StoreResult<()>;
    /// Deletes a personal folder and its messages.
    async fn delete_folder(&self, user_id: &str, name: &str) -> StoreResult<()>;
    /// Renames a personal folder and every folder below it.
    async fn rename_folder(&self, user_id: &str, from: &str, to: &str) -> StoreResult<()>;
    async fn set_subscribed(&self, mailbox: &MailboxId, subscribed: bool) -> StoreResult<()>;
    async fn mailbox_state(&self, mailbox: &MailboxId) -> StoreResult<Option<MailboxState>>;
    /// Every message of the mailbox in UID order, hidden ones included.
    async fn summaries(&self, mailbox: &MailboxId) -> StoreResult<Vec<MessageSummary>> {
        self.summaries_since(mailbox, 0).await
    }
    /// The messages whose mod-sequence is above `since`, in UID order.
    async fn summaries_since(
        &self,
        mailbox: &MailboxId,
        since: u64,
    ) -> StoreResult<Vec<MessageSummary>>;
    /// Stores a message in a mailbox; the database assigns its UID.
    async fn append(&self, mailbox: &MailboxId, message: &NewMessage) -> StoreResult<Stored>;
    /// The messages with these UIDs (those that exist), in UID order,
    /// without their content.
    async fn messages(&self, mailbox: &MailboxId, uids: &[u32]) -> StoreResult<Vec<MessageData>>;
    /// Loads into `messages` (of this mailbox, in UID order) the stored
    /// content of those `wanted` asks for, in one read; the others keep none.
    async fn fill_contents(
        &self,
        mailbox: &MailboxId,
        messages: &mut [MessageData],
        wanted: Wanted,
    ) -> StoreResult<()>;
    /// Keeps parse results computed for messages (by message id), in one write.
    async fn save_parse_caches(&self, caches: &[(String, ParseCache)]) -> StoreResult<()>;
    /// Keeps the header sections computed for messages (by message id).
    async fn save_header_blocks(&self, blocks: &[(String, Vec<u8>)]) -> StoreResult<()>;
    /// Fixes the bytes of a message that had none stored (before COPY, so the
    /// copy shows the same bytes).
    async fn save_raw(&self, id: &str, raw: &[u8]) -> StoreResult<()>;
    /// Changes flags; returns every touched message's resulting flags.
    async fn change_flags(
        &self,
        mailbox: &MailboxId,
        uids: &[u32],
        change: FlagChange,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> StoreResult<FlagsChanged>;
    /// Those of `uids` whose mod-sequence is above `since` (CHANGEDSINCE).
    async fn changed_since(
        &self,
        mailbox: &MailboxId,
        uids: &[u32],
        since: u64,
    ) -> StoreResult<Vec<u32>>;
    /// What changed in the mailbox after mod-sequence `since`: the
    /// remembered expunges and the messages changed or added; `None` when
    /// expunges after `since` were forgotten.
    async fn changes_since(&self, mailbox: &MailboxId, since: u64) -> StoreResult<Option<Changes>>;
    /// The remembered expunges of the mailbox above mod-sequence `since`;
    /// `None` when some of them were forgotten.
    async fn expunged_since(
        &self,
        mailbox: &MailboxId,
        since: u64,
    ) -> StoreResult<Option<Vec<u32>>>;
    /// Forgets the expunges made before `before`, raising each mailbox's
    /// `forgotten_modseq` past them; how many were forgotten.
    async fn forget_expunged(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Removes messages; returns the UIDs removed.
    async fn expunge(&self, mailbox: &MailboxId, uids: &[u32]) -> StoreResult<Vec<u32>>;
    /// Copies messages to another mailbox, flags included.
    async fn copy(&self, from: &MailboxId, uids: &[u32], to: &MailboxId) -> StoreResult<Copied>;
    /// Claims for one session the UIDs nobody has claimed, up to UIDNEXT:
    /// they are \Recent in that session and in no other (RFC 3501 2.3.2).
    async fn claim_recent(&self, mailbox: &MailboxId) -> StoreResult<std::ops::Range<u32>>;
    /// The hub this store announces changes on.
    fn hub(&self) -> &crate::notify::Hub;
    /// Whether every change, whoever makes it, reaches the hub. When it does
    /// not (SQLite written by another process), sessions must look in the
    /// database at NOOP and while idling instead of trusting silence.
    fn hears_every_writer(&self) -> bool;
}

/// A token as stored.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A token as the re-check of live sessions needs it, with its owner
/// (`None`: no such user).
#[derive(Debug, Clone)]
pub struct TokenStanding {
    pub token_id: String,
    pub user_id: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub owner: Option<UserRecord>,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub subscription_status: Option<String>,
    pub subscription_end_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub id: String,
    pub domain: String,
    pub user_id: Option<String>,
    pub active: bool,
    pub global: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub id: String,
    pub scope: String,
    pub value: String,
    pub match_type: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    pub address: String,
    pub user_id: Option<String>,
}

/// Accounts, tokens, domains and bans as stored in the SQL database: what the
/// SQL directory reads and what `imap-server admin` edits.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn token(&self, token: &str) -> StoreResult<Option<TokenRecord>>;
    async fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// These tokens (those that exist) with their owners, in one query.
    async fn token_standings(&self, token_ids: &[String]) -> StoreResult<Vec<TokenStanding>>;
    /// Every domain row, active or not.
    async fn domains(&self) -> StoreResult<Vec<DomainRecord>>;
    /// Every ban row, active or not.
    async fn bans(&self) -> StoreResult<Vec<BanRecord>>;

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Whether any account exists (one row read, whatever the table's size).
    async fn has_users(&self) -> StoreResult<bool>;
    async fn set_subscription(
        &self,
        user_id: &str,
        status: &str,
        end_date: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    async fn add_token(&self, record: &TokenRecord) -> StoreResult<()>;
    async fn tokens(&self, user_id: &str) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes by token id; false when there was no such token.
    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool>;
    async fn add_domain(&self, domain: &DomainRecord) -> StoreResult<()>;
    async fn set_domain_active(&self, domain: &str, active: bool) -> StoreResult<bool>;
    async fn addresses(&self, user_id: Option<&str>) -> StoreResult<Vec<AddressRecord>>;
    async fn add_ban(&self, ban: &BanRecord) -> StoreResult<()>;
    async fn set_ban_active(&self, ban_id: &str, active: bool) -> StoreResult<bool>;
}

/// Both faces of one database.
#[derive(Clone)]
pub struct Database {
    pub mail: Arc<dyn MailStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub backend: Backend,
    /// How long statements waited for a pooled connection.
    pub waits: Arc<PoolWaits>,
}

impl MailboxId {
    /// The owners whose notifications concern this mailbox.
    pub fn owners(&self) -> Vec<String> {
        match self {
            MailboxId::Inbox { user_id } => vec![user_id.clone()],
            MailboxId::Address { address, .. } => vec![address.clone()],
            MailboxId::Folder { user_id, .. } => vec![user_id.clone()],
        }
    }

    /// The UID column and the filter for this mailbox's rows, with `$1` and
    /// `$2` bound to `binds()`. An address's rows are those its owner was
    /// given (`inbox_owner`), never merely those sent to the address: mail of
    /// an earlier owner stays theirs (ARCHITECTURE: isolation). Fragments
    /// are constants, never user input.
    fn scope(&self) -> (&'static str, &'static str) {
        match self {
            MailboxId::Inbox { .. } => ("inbox_uid", "inbox_owner = $1 AND $2 = 'INBOX'"),
            MailboxId::Address { .. } => (
                "uid",
                "mailbox_owner = $1 AND mailbox = 'INBOX' AND inbox_owner = $2",
            ),
            MailboxId::Folder { .. } => ("uid", "mailbox_owner = $1 AND mailbox = $2"),
        }
    }
}

impl MailboxId {
    /// The filter on `emails` of this mailbox's messages with `$1` and `$2`
    /// bound to its `key()` and `$3` to its `address_user()`, for statements
    /// that also read the mailbox's state row.
    fn keyed_filter(&self) -> &'static str {
        match self {
            MailboxId::Inbox { .. } => "inbox_owner = $1",
            MailboxId::Address { .. } => {
                "mailbox_owner = $1 AND mailbox = $2 AND inbox_owner = $3::text"
            }
            MailboxId::Folder { .. } => "mailbox_owner = $1 AND mailbox = $2",
        }
    }
}

#[derive(Clone)]
pub enum Backend {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Database {
    /// Starts feeding the hub from PostgreSQL's notifications (SQLite needs
    /// nothing: its store publishes directly). Says whether it is connected.
    pub fn listen_for_changes(&self) -> crate::notify::Listening {
        match &self.backend {
            Backend::Postgres(pool) => {
                crate::notify::spawn_listener(pool.clone(), self.mail.hub().clone())
            }
            Backend::Sqlite(_) => crate::notify::Listening::always(),
        }
    }

    /// Connects to `url` and brings the schema up to date.
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Database> {
        if url.starts_with("sqlite:") {
            let store = Arc::new(SqliteStore::open(url, max_connections).await?);
            Ok(Database {
                backend: Backend::Sqlite(store.pool().clone()),
                waits: store.waits(),
                mail: store.clone(),
                accounts: store,
            })
        } else {
            let store = Arc::new(PgStore::open(url, max_connections).await?);
            Ok(Database {
                backend: Backend::Postgres(store.pool().clone()),
                waits: store.waits(),
                mail: store.clone(),
                accounts: store,
            })
        }
    }
}

/// A ban as the deployment stores it: a missing `match_type` is `exact`, a
/// missing `status` is `active`. Shared by every backend that reads bans.
pub fn ban_from_row(
    (id, scope, value, match_type, status): (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    ),
) -> BanRecord {
    BanRecord {
        id,
        scope,
        value,
        match_type: match_type.unwrap_or_else(|| "exact".into()),
        active: status.as_deref().unwrap_or("active") == "active",
    }
}

/// A fresh lower-case UUID, the id form both backends store.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
