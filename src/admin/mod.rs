//! `imap-server admin …`: managing users, tokens, domains, addresses and bans
//! in the SQL database, on either backend. Every function returns the text to
//! print, so the CLI stays a thin shell and the behaviour is testable.

pub mod demo;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::{Args, Subcommand};
use rand::RngCore;

use crate::directory::parse_address;
use crate::store::{
    BanRecord, Database, DomainRecord, StoreError, TokenRecord, UserRecord, new_id,
};

/// A failure a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> AdminError {
        AdminError::Store(error)
    }
}

type AdminResult = Result<String, AdminError>;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Customer accounts.
    #[command(subcommand)]
    Users(UserCommand),
    /// IMAP tokens (the customers' passwords).
    #[command(subcommand)]
    Tokens(TokenCommand),
    /// Domains addresses can be created on.
    #[command(subcommand)]
    Domains(DomainCommand),
    /// Disposable addresses (rows of `inbox`).
    #[command(subcommand)]
    Inboxes(InboxCommand),
    /// Bans on domains, addresses and senders.
    #[command(subcommand)]
    Bans(BanCommand),
    /// TLS certificates.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Writes a self-signed certificate and key, for a quick start or a
    /// test: clients must be told to trust it. Use a real certificate
    /// (e.g. from Let's Encrypt) in production.
    SelfSigned {
        /// The name clients connect to (repeat for more names).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Where the certificate goes (PEM).
        #[arg(long, default_value = "tls/cert.pem")]
        cert: std::path::PathBuf,
        /// Where the private key goes (PEM, PKCS#8, readable by its owner only).
        #[arg(long, default_value = "tls/key.pem")]
        key: std::path::PathBuf,
    },
}

/// The admin commands that need no database.
pub fn tls(command: TlsCommand) -> AdminResult {
    let TlsCommand::SelfSigned { hosts, cert, key } = command;
    for path in [&cert, &key] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                AdminError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
    }
    crate::server::tls::write_self_signed(&hosts, &cert, &key)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(format!(
        "wrote a self-signed certificate for {} to {} and its key to {}\n\
         start the server with TLS_CERT={} TLS_KEY={}",
        hosts.join(", "),
        cert.display(),
        key.display(),
        cert.display(),
        key.display()
    ))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a customer.
    Add {
        email: String,
        /// active, trialing, past_due, canceled, …
        #[arg(long, default_value = "active")]
        status: String,
        /// End of the paid period (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        end_date: Option<String>,
    },
    /// Lists customers.
    List,
    /// Changes a customer's subscription.
    SetSubscription {
        email: String,
        status: String,
        #[arg(long)]
        end_date: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a token and prints it (the only time it is shown).
    Create {
        email: String,
        #[command(flatten)]
        expiry: Expiry,
    },
    /// Lists a customer's tokens (ids and dates, never the tokens).
    List { email: String },
    /// Revokes a token by its id.
    Revoke { token_id: String },
}

#[derive(Debug, Args)]
pub struct Expiry {
    /// Days until the token expires.
    #[arg(long, default_value_t = 365, conflicts_with_all = ["expires", "never"])]
    days: i64,
    /// Exact expiry (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    expires: Option<String>,
    /// The token never expires.
    #[arg(long)]
    never: bool,
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Adds a domain owned by a customer, or a global one.
    Add {
        domain: String,
        /// The owning customer's email.
        #[arg(long, required_unless_present = "global", conflicts_with = "global")]
        owner: Option<String>,
        /// Anyone may create addresses on it.
        #[arg(long)]
        global: bool,
        /// Add it switched off.
        #[arg(long)]
        inactive: bool,
    },
    Activate {
        domain: String,
    },
    Deactivate {
        domain: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Gives a customer a disposable address (no domain checks: the operator decides).
    Add { email: String, address: String },
    /// Lists addresses, all or one customer's.
    List { email: Option<String> },
    /// Releases an address and deletes its mail.
    Remove { address: String },
}

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// Adds a ban.
    Add {
        /// email, domain or sender.
        #[arg(value_parser = ["email", "domain", "sender"])]
        scope: String,
        value: String,
        /// Match a substring instead of the whole value.
        #[arg(long)]
        contains: bool,
    },
    List,
    /// Switches a ban off by its id.
    Deactivate {
        ban_id: String,
    },
}

pub async fn run(database: &Database, command: Command) -> AdminResult {
    match command {
        Command::Users(command) => users(database, command).await,
        Command::Tokens(command) => tokens(database, command).await,
        Command::Domains(command) => domains(database, command).await,
        Command::Inboxes(command) => inboxes(database, command).await,
        Command::Bans(command) => bans(database, command).await,
        Command::Tls(command) => tls(command),
    }
}

fn parse_date(text: &str) -> Result<DateTime<Utc>, AdminError> {
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(moment.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|moment| moment.and_utc())
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "{text:?} is not a date (use YYYY-MM-DD or RFC 3339)"
            ))
        })
}

fn format_date(moment: Option<DateTime<Utc>>) -> String {
    moment.map_or_else(|| "-".into(), |m| m.format("%Y-%m-%d %H:%M:%S").to_string())
}

async fn user_by_email(database: &Database, email: &str) -> Result<UserRecord, AdminError> {
    database
        .accounts
        .user_by_email(email)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no user with email {email}")))
}

fn check_status(status: &str) -> Result<(), AdminError> {
    const KNOWN: [&str; 6] = [
        "active",
        "trialing",
        "past_due",
        "canceled",
        "unpaid",
        "incomplete",
    ];
    if KNOWN.contains(&status) {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "unknown subscription status {status:?}; use one of {}",
            KNOWN.join(", ")
        )))
    }
}

async fn users(database: &Database, command: UserCommand) -> AdminResult {
    match command {
        UserCommand::Add {
            email,
            status,
            end_date,
        } => {
            if !email.contains('@') {
                return Err(AdminError::Invalid(format!(
                    "{email:?} is not an email address"
                )));
            }
            check_status(&status)?;
            let user = UserRecord {
                id: new_id(),
                email: email.to_lowercase(),
                subscription_status: Some(status),
                subscription_end_date: end_date.as_deref().map(parse_date).transpose()?,
            };
            match database.accounts.add_user(&user).await {
                Err(StoreError::AlreadyExists) => Err(AdminError::Conflict(format!(
                    "a user with email {email} already exists"
                ))),
                other => other.map_err(AdminError::from),
            }?;
            Ok(format!("user {} added with id {}", user.email, user.id))
        }
        UserCommand::List => {
            let mut text = String::from("id\temail\tsubscription\tends\n");
            for user in database.accounts.users().await? {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    user.id,
                    user.email,
                    user.subscription_status.as_deref().unwrap_or("-"),
                    format_date(user.subscription_end_date)
                ));
            }
            Ok(text.trim_end().to_owned())
        }
        UserCommand::SetSubscription {
            email,
            status,
            end_date,
        } => {
            check_status(&status)?;
            let user = user_by_email(database, &email).await?;
            let end = end_date.as_deref().map(parse_date).transpose()?;
            database
                .accounts
                .set_subscription(&user.id, &status, end)
                .await?;
            Ok(format!("subscription of {} is now {status}", user.email))
        }
    }
}

/// 32 random bytes, hex: 256 bits, far beyond guessing.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn tokens(database: &Database, command: TokenCommand) -> AdminResult {
    match command {
        TokenCommand::Create { email, expiry } => {
            let user = user_by_email(database, &email).await?;
            let expires_at = if expiry.never {
                None
            } else if let Some(date) = &expiry.expires {
                Some(parse_date(date)?)
            } else if expiry.days > 0 {
                Some(Utc::now() + Duration::days(expiry.days))
            } else {
                return Err(AdminError::Invalid("--days must be at least 1".into()));
            };
            let record = TokenRecord {
                id: new_id(),
                user_id: user.id.clone(),
                token: new_token(),
                expires_at,
                last_used_at: None,
                created_at: None,
            };
            database.accounts.add_token(&record).await?;
            Ok(format!(
                "token: {}\nid: {}\nexpires: {}",
                record.token,
                record.id,
                expires_at.map_or_else(|| "never".into(), |e| e.to_rfc3339())
            ))
        }
        TokenCommand::List { email } => {
            let user = user_by_email(database, &email).await?;
            let mut text = String::from("id\tcreated\texpires\tlast used\n");
            for token in database.accounts.tokens(&user.id).await? {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    token.id,
                    format_date(token.created_at),
                    token
                        .expires_at
                        .map_or_else(|| "never".into(), |e| format_date(Some(e))),
                    format_date(token.last_used_at)
                ));
            }
            Ok(text.trim_end().to_owned())
        }
        TokenCommand::Revoke { token_id } => {
            if database.accounts.revoke_token(&token_id).await? {
                Ok(format!("token {token_id} revoked"))
            } else {
                Err(AdminError::NotFound(format!("no token with id {token_id}")))
            }
        }
    }
}

async fn domains(database: &Database, command: DomainCommand) -> AdminResult {
    match command {
        DomainCommand::Add {
            domain,
            owner,
            global,
            inactive,
        } => {
            let domain = domain.trim().trim_end_matches('.').to_lowercase();
            parse_address(&format!("x@{domain}"))
                .map_err(|_| AdminError::Invalid(format!("{domain:?} is not a domain name")))?;
            let user_id = match &owner {
                Some(email) => Some(user_by_email(database, email).await?.id),
                None => None,
            };
            let record = DomainRecord {
                id: new_id(),
                domain: domain.clone(),
                user_id,
                active: !inactive,
                global,
            };
            match database.accounts.add_domain(&record).await {
                Err(StoreError::AlreadyExists) => Err(AdminError::Conflict(format!(
                    "domain {domain} already exists"
                ))),
                other => other.map_err(AdminError::from),
            }?;
            let whose = owner.map_or_else(|| "global".to_owned(), |o| format!("owned by {o}"));
            let state = if inactive { "inactive" } else { "active" };
            Ok(format!("domain {domain} added ({whose}, {state})"))
        }
        DomainCommand::Activate { domain } => set_domain(database, &domain, true).await,
        DomainCommand::Deactivate { domain } => set_domain(database, &domain, false).await,
        DomainCommand::List => {
            let users = database.accounts.users().await?;
            let mut text = String::from("domain\towner\tactive\n");
            let mut domains = database.accounts.domains().await?;
            domains.sort_by(|a, b| a.domain.cmp(&b.domain));
            for domain in domains {
                let owner = if domain.global {
                    "(global)".to_owned()
                } else {
                    domain
                        .user_id
                        .as_ref()
                        .map(|id| {
                            users
                                .iter()
                                .find(|u| &u.id == id)
                                .map_or_else(|| id.clone(), |u| u.email.clone())
                        })
                        .unwrap_or_else(|| "-".into())
                };
                text.push_str(&format!(
                    "{}\t{owner}\t{}\n",
                    domain.domain,
                    if domain.active { "yes" } else { "no" }
                ));
            }
            Ok(text.trim_end().to_owned())
        }
    }
}

async fn set_domain(database: &Database, domain: &str, active: bool) -> AdminResult {
    if database.accounts.set_domain_active(domain, active).await? {
        Ok(format!(
            "domain {domain} {}",
            if active { "activated" } else { "deactivated" }
        ))
    } else {
        Err(AdminError::NotFound(format!("no domain {domain}")))
    }
}

async fn inboxes(database: &Database, command: InboxCommand) -> AdminResult {
    match command {
        InboxCommand::Add { email, address } => {
            let user = user_by_email(database, &email).await?;
            let (address, _) = parse_address(&address)
                .map_err(|_| AdminError::Invalid(format!("{address:?} is not a valid address")))?;
            match database.mail.create_address(&user.id, &address).await {
                Err(StoreError::AlreadyExists) => Err(AdminError::Conflict(format!(
                    "address {address} is already taken"
                ))),
                other => other.map_err(AdminError::from),
            }?;
            Ok(format!("address {address} added for {}", user.email))
        }
        InboxCommand::List { email } => {
            let user_id = match &email {
                Some(email) => Some(user_by_email(database, email).await?.id),
                None => None,
            };
            let users = database.accounts.users().await?;
            let mut text = String::from("address\towner\n");
            for record in database.accounts.addresses(user_id.as_deref()).await? {
                let owner = record
                    .user_id
                    .as_ref()
                    .and_then(|id| users.iter().find(|u| &u.id == id))
                    .map_or("-", |u| u.email.as_str());
                text.push_str(&format!("{}\t{owner}\n", record.address));
            }
            Ok(text.trim_end().to_owned())
        }
        InboxCommand::Remove { address } => {
            let address = address.trim().to_lowercase();
            let owner = database
                .mail
                .address_owner(&address)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("no address {address}")))?;
            database.mail.delete_address(&owner, &address).await?;
            Ok(format!("address {address} removed with its mail"))
        }
    }
}

async fn bans(database: &Database, command: BanCommand) -> AdminResult {
    match command {
        BanCommand::Add {
            scope,
            value,
            contains,
        } => {
            let value = value.trim().to_lowercase();
            if value.is_empty() {
                return Err(AdminError::Invalid("a ban needs a value".into()));
            }
            let record = BanRecord {
                id: new_id(),
                scope: scope.clone(),
                value: value.clone(),
                match_type: if contains { "contains" } else { "exact" }.into(),
                active: true,
            };
            database.accounts.add_ban(&record).await?;
            Ok(format!(
                "ban {} added: {scope} {} {value:?}",
                record.id, record.match_type
            ))
        }
        BanCommand::List => {
            let mut text = String::from("id\tscope\tmatch\tvalue\tstatus\n");
            for ban in database.accounts.bans().await? {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    ban.id,
                    ban.scope,
                    ban.match_type,
                    ban.value,
                    if ban.active { "active" } else { "inactive" }
                ));
            }
            Ok(text.trim_end().to_owned())
        }
        BanCommand::Deactivate { ban_id } => {
            if database.accounts.set_ban_active(&ban_id, false).await? {
                Ok(format!("ban {ban_id} deactivated"))
            } else {
                Err(AdminError::NotFound(format!("no ban with id {ban_id}")))
            }
        }
    }
}

/// `imap-server deliver`: stores one message for an address, as the external
/// receiver would. Returns where it landed.
pub async fn deliver(database: &Database, to: &str, mailbox: &str, raw: Vec<u8>) -> AdminResult {
    let to = to.trim().to_lowercase();
    if raw.is_empty() {
        return Err(AdminError::Invalid("no message on standard input".into()));
    }
    if !to.contains('@') {
        return Err(AdminError::Invalid(format!("{to:?} is not an address")));
    }
    let message = crate::imap::new_message(raw, Vec::new(), Utc::now());
    // The deployment's (mailbox_owner, mailbox) pair, as the receiver writes
    // it: whoever owns the address now is the trigger's business.
    let name = if mailbox.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        mailbox
    };
    let target = crate::store::MailboxId::Folder {
        user_id: to.clone(),
        name: name.to_owned(),
    };
    let stored = database.mail.append(&target, &message).await?;
    Ok(format!("delivered to {to} with UID {}", stored.uid))
}
