//! The stress scenario: many sessions of one user on one mailbox, each
//! sending random commands (the mix of imaptest's defaults) and keeping a
//! model of the mailbox from everything the server tells it, so that every
//! answer contradicting the model or RFC 3501 is counted. Every few seconds
//! all sessions stop, catch up with NOOP and compare what they know, then
//! fetch every message's UID and flags and compare again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

use crate::client::{Client, quoted};
use crate::model::{self, During, Kind, Selection, Tally, Touched, View};
use crate::response::{self, Status, Tagged, Untagged};
use crate::stats::Measured;

#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    pub mailbox: String,
    pub sessions: usize,
    pub duration: Duration,
    /// Zero: only the final checkpoint.
    pub checkpoint_every: Duration,
    pub seed: u64,
    /// APPEND until the mailbox holds this many messages before the start.
    pub fill: usize,
    /// Write each session's traffic to `session-N.log` in this directory.
    pub rawlog: Option<PathBuf>,
}

/// The commands, as the latency table and the NO/BAD examples name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Command {
    Login,
    Select,
    List,
    Status,
    Fetch,
    FetchBody,
    Store,
    StoreDeleted,
    Expunge,
    Append,
    Noop,
    Logout,
}

impl Command {
    fn label(self) -> &'static str {
        match self {
            Command::Login => "LOGIN",
            Command::Select => "SELECT",
            Command::List => "LIST",
            Command::Status => "STATUS",
            Command::Fetch => "FETCH (FLAGS UID RFC822.SIZE)",
            Command::FetchBody => "FETCH (BODY.PEEK[])",
            Command::Store => "STORE +/-FLAGS",
            Command::StoreDeleted => "STORE +FLAGS (\\Deleted)",
            Command::Expunge => "EXPUNGE",
            Command::Append => "APPEND",
            Command::Noop => "NOOP",
            Command::Logout => "LOGOUT",
        }
    }

    /// How the RFC's rules on untagged responses see this command.
    fn during(self) -> During {
        match self {
            Command::Fetch | Command::FetchBody | Command::Store | Command::StoreDeleted => {
                During::SequenceCommand
            }
            Command::Select => During::Select,
            _ => During::Other,
        }
    }
}

/// What a session may choose to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// LOGOUT, connect and LOGIN again, SELECT.
    Login,
    List,
    Status,
    Select,
    Fetch,
    FetchBody,
    Store,
    /// STORE +FLAGS (\Deleted) on a few messages, then EXPUNGE.
    Delete,
    Append,
    /// LOGOUT; the next action logs in again but selects only when it needs to.
    Logout,
}

/// imaptest's default probabilities are LOGIN 100, LIST 50, STATUS 50,
/// SELECT 100, FETCH 100, FETCH2 100, STORE 50, DELETE 100, EXPUNGE 100,
/// APPEND 100, LOGOUT 100, applied in one pass per login. Here every
/// command is an independent pick, so LOGIN and LOGOUT share that pass's one
/// reconnect (50 each), SELECT gets 50 (each LOGIN selects too: about two
/// selects per pass, as there), and DELETE stands for DELETE+EXPUNGE.
const WEIGHTS: [(Action, u32); 10] = [
    (Action::Login, 50),
    (Action::List, 50),
    (Action::Status, 50),
    (Action::Select, 50),
    (Action::Fetch, 100),
    (Action::FetchBody, 100),
    (Action::Store, 50),
    (Action::Delete, 100),
    (Action::Append, 100),
    (Action::Logout, 50),
];

/// An action drawn with the probabilities of `WEIGHTS`.
fn choose(rng: &mut StdRng) -> Action {
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (action, weight) in WEIGHTS {
        if pick < weight {
            return action;
        }
        pick -= weight;
    }
    unreachable!("the pick is below the sum of the weights")
}

impl Action {
    fn needs_selection(self) -> bool {
        matches!(
            self,
            Action::Fetch | Action::FetchBody | Action::Store | Action::Delete
        )
    }
}

/// The flags STORE and APPEND pick from. `\Deleted` is left to the DELETE
/// action, so that a message marked for EXPUNGE stays marked.
const FLAGS: [&str; 9] = [
    "\\Seen",
    "\\Answered",
    "\\Flagged",
    "\\Draft",
    "$Label1",
    "$Label2",
    "$Label3",
    "$Label4",
    "$Label5",
];

/// One read-write selection, for the \Recent rule: `from` is when SELECT
/// completed and `until` when the session left, so two selections that
/// overlap here certainly overlapped on the server.
#[derive(Debug, Clone, Copy)]
struct Opened {
    session: usize,
    from: Duration,
    until: Option<Duration>,
}

/// Which read-write selection saw which UID as \Recent.
#[derive(Debug, Default)]
struct RecentLedger {
    selections: Vec<Opened>,
    seen: BTreeMap<u32, BTreeSet<usize>>,
}

impl RecentLedger {
    fn open(&mut self, session: usize, at: Duration) -> usize {
        self.selections.push(Opened {
            session,
            from: at,
            until: None,
        });
        self.selections.len() - 1
    }

    fn close(&mut self, id: usize, at: Duration) {
        self.selections[id].until.get_or_insert(at);
    }

    fn saw(&mut self, id: usize, uid: u32) {
        self.seen.entry(uid).or_default().insert(id);
    }

    /// UIDs \Recent in two overlapping selections (the contradictions), and
    /// how many were \Recent again in a later selection (RFC 3501 2.3.2 says
    /// later sessions do not see it either; reported, not counted).
    fn duplicates(&self, end: Duration) -> (Vec<String>, usize) {
        let mut concurrent = Vec::new();
        let mut later = 0;
        for (uid, ids) in &self.seen {
            let ids: Vec<usize> = ids.iter().copied().collect();
            let mut overlapping = None;
            for (i, &a) in ids.iter().enumerate() {
                for &b in &ids[i + 1..] {
                    if self.overlap(a, b, end) {
                        overlapping.get_or_insert((a, b));
                    }
                }
            }
            match overlapping {
                Some((a, b)) => concurrent.push(format!(
                    "UID {uid} \\Recent in session {} ({}) and session {} ({})",
                    self.selections[a].session,
                    self.span(a, end),
                    self.selections[b].session,
                    self.span(b, end)
                )),
                None if ids.len() > 1 => later += 1,
                None => {}
            }
        }
        (concurrent, later)
    }

    fn overlap(&self, a: usize, b: usize, end: Duration) -> bool {
        let (a, b) = (self.selections[a], self.selections[b]);
        a.from < b.until.unwrap_or(end) && b.from < a.until.unwrap_or(end)
    }

    fn span(&self, id: usize, end: Duration) -> String {
        let s = self.selections[id];
        format!(
            "selected {:.3}-{:.3} s",
            s.from.as_secs_f64(),
            s.until.unwrap_or(end).as_secs_f64()
        )
    }
}

/// A STORE some session has sent, for check 4's race rule: another
/// session's STORE of the opposite sign on a common flag, running at the same
/// time, may change the flags between this STORE's write and its answer.
#[derive(Debug, Clone)]
struct StoreRecord {
    session: usize,
    from: Duration,
    until: Option<Duration>,
    add: bool,
    flags: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct StoreLedger {
    records: Vec<StoreRecord>,
}

impl StoreLedger {
    /// No answer takes longer than `client::ANSWER_TIMEOUT` (60 s): older
    /// records cannot overlap anything still running.
    const KEEP: Duration = Duration::from_secs(61);

    fn begin(&mut self, record: StoreRecord) {
        let now = record.from;
        self.records
            .retain(|r| r.until.is_none_or(|until| until + Self::KEEP > now));
        self.records.push(record);
    }

    fn end(&mut self, session: usize, from: Duration, at: Duration) {
        if let Some(r) = self
            .records
            .iter_mut()
            .find(|r| r.session == session && r.from == from)
        {
            r.until = Some(at);
        }
    }

    /// Whether another session's STORE could have undone part of `ours`.
    fn raced(&self, ours: &StoreRecord, until: Duration) -> bool {
        self.records.iter().any(|r| {
            r.session != ours.session
                && r.add != ours.add
                && !r.flags.is_disjoint(&ours.flags)
                && r.from < until
                && r.until.is_none_or(|end| end > ours.from)
        })
    }
}

/// How much the checkpoints had to compare.
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    checkpoints: usize,
    views: usize,
    uids: usize,
    flag_sets: usize,
}

/// The two comparisons of a checkpoint: after NOOP, after FETCH 1:*.
struct Checkpoints {
    barrier: Barrier,
    views: [Mutex<Vec<View>>; 2],
    tally: Mutex<Tally>,
    coverage: Mutex<[Coverage; 2]>,
}

/// An answer only an expunge excuses: RFC822.SIZE 0 or empty BODY[] (the
/// stand-in data of RFC 2180 4.1.3), or a STORE answer leaving out a message
/// whose flags it changed. UIDs are never reused, so if the UID is still in
/// the mailbox at the next checkpoint, the message was there all along.
#[derive(Debug)]
struct Suspect {
    uid: u32,
    kind: Kind,
    example: String,
}

/// What all sessions share.
struct Shared {
    options: Options,
    started: Instant,
    /// DELETE keeps the mailbox near this size, as imaptest's
    /// message_count_threshold does, so that APPEND refills what EXPUNGE takes.
    target_size: usize,
    /// RFC822.SIZE per UID, from APPEND (what was sent) and every FETCH.
    sizes: Mutex<HashMap<u32, u64>>,
    uidvalidity: Mutex<Option<u32>>,
    recent: Mutex<RecentLedger>,
    stores: Mutex<StoreLedger>,
    suspects: Mutex<Vec<Suspect>>,
    checkpoints: Checkpoints,
}

impl Shared {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The answer to one command, beyond what went into the model.
#[derive(Debug)]
struct Reply {
    tagged: Tagged,
    touched: Vec<Touched>,
    statuses: Vec<(String, Vec<(String, u64)>)>,
    bye: bool,
}

struct Selected {
    model: Selection,
    /// The selection's entry in the \Recent ledger, once SELECT succeeded read-write.
    ledger: Option<usize>,
}

/// What a session knew of a message's flags before its STORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Unknown = 0,
    AlreadySo = 1,
    Changed = 2,
}

/// What a session hands back at the end.
#[derive(Default)]
struct Outcome {
    tally: Tally,
    latencies: BTreeMap<Command, Vec<Duration>>,
    /// STORE answers that did not mention a stored message still in the
    /// view, by what the session knew of its flags (`Known`).
    stores_without_fetch: [usize; 3],
    /// STORE answers lacking the change while another session's opposite
    /// STORE of a common flag ran: not counted.
    stores_raced: usize,
}

struct Session {
    index: usize,
    shared: Arc<Shared>,
    rng: StdRng,
    client: Option<Client>,
    selected: Option<Selected>,
    appended: u64,
    outcome: Outcome,
    /// `--rawlog`: this session's traffic, for reading up on a contradiction.
    rawlog: Option<BufWriter<File>>,
}

impl Session {
    fn tally(&mut self) -> &mut Tally {
        &mut self.outcome.tally
    }

    fn exists(&self) -> usize {
        self.selected.as_ref().map_or(0, |s| s.model.exists())
    }

    async fn run(mut self) -> Outcome {
        let shared = self.shared.clone();
        let duration = shared.options.duration;
        let every = shared.options.checkpoint_every;
        let checkpoints = if every.is_zero() {
            1
        } else {
            duration.as_nanos().div_ceil(every.as_nanos()).max(1) as u32
        };
        let mut next = 1;
        loop {
            let due = if every.is_zero() {
                duration
            } else {
                (every * next).min(duration)
            };
            if shared.now() >= due {
                self.checkpoint().await;
                if next == checkpoints {
                    break;
                }
                next += 1;
                continue;
            }
            let action = self.choose();
            if let Err(error) = self.step(action).await {
                self.failed(error);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if self.client.is_some()
            && let Err(error) = self.logout().await
        {
            self.failed(error);
        }
        if let Some(Err(error)) = self.rawlog.take().map(|mut log| log.flush()) {
            eprintln!("rawlog of session {}: {error}", self.index);
        }
        self.outcome
    }

    fn choose(&mut self) -> Action {
        choose(&mut self.rng)
    }

    async fn step(&mut self, action: Action) -> Result<()> {
        if self.client.is_none() {
            self.login().await?;
            match action {
                Action::Login => return self.select().await,
                Action::Logout => return Ok(()),
                _ => {}
            }
        }
        if action.needs_selection() && self.selected.is_none() {
            return self.select().await;
        }
        if action.needs_selection() && self.exists() == 0 {
            return Ok(());
        }
        match action {
            Action::Login => {
                self.logout().await?;
                self.login().await?;
                self.select().await
            }
            Action::List => self.list().await,
            Action::Status => self.status().await,
            Action::Select => self.select().await,
            Action::Fetch => self.fetch().await,
            Action::FetchBody => self.fetch_body().await,
            Action::Store => self.store().await,
            Action::Delete => self.delete().await,
            Action::Append => self.append().await,
            Action::Logout => self.logout().await,
        }
    }

    /// A lost connection, a timeout or an unexpected BYE: counted, and the
    /// session starts over with a new connection.
    fn failed(&mut self, error: anyhow::Error) {
        let example = format!("session {}: {error:#}", self.index);
        self.tally().session_error(example);
        self.leave_selection();
        self.client = None;
    }

    fn leave_selection(&mut self) {
        if let Some(Selected {
            ledger: Some(id), ..
        }) = self.selected.take()
        {
            let at = self.shared.now();
            self.shared.recent.lock().unwrap().close(id, at);
        }
    }

    /// Sends `command` (and `literal`, LITERAL+ style) and reads the answer,
    /// applying every untagged response to the model as it arrives.
    async fn exchange(
        &mut self,
        kind: Command,
        command: &str,
        literal: Option<&[u8]>,
    ) -> Result<Reply> {
        self.exchange_since(Instant::now(), kind, command, literal)
            .await
    }

    async fn exchange_since(
        &mut self,
        begun: Instant,
        kind: Command,
        command: &str,
        literal: Option<&[u8]>,
    ) -> Result<Reply> {
        // Out of `self` while the command runs; on an error it stays out,
        // and the session is disconnected.
        let mut client = self.client.take().context("not connected")?;
        let tag = client.send(command).await?;
        self.rawlog(&format!("{tag} {command}"), true);
        if let Some(bytes) = literal {
            client.write_raw(bytes).await?;
            client.write_raw(b"\r\n").await?;
        }
        let mut touched = Vec::new();
        let mut statuses = Vec::new();
        let mut bye = false;
        loop {
            let line = client.line().await?;
            self.rawlog(&String::from_utf8_lossy(&line), false);
            if let Some(tagged) = response::tagged(&line, &tag) {
                let tagged = tagged.map_err(anyhow::Error::msg)?;
                self.outcome
                    .latencies
                    .entry(kind)
                    .or_default()
                    .push(begun.elapsed());
                // RFC 5530: some of the messages were expunged by another
                // session, and the server may have answered stand-in data
                // for them (Dovecot: RFC822.SIZE 0, BODY[] NIL).
                if !tagged.expunge_issued() {
                    self.check_sizes(command, &touched);
                }
                let example = format!("{} -> {}", shorten(command), shorten(&tagged.text));
                match tagged.status {
                    Status::Ok => {}
                    Status::No => self.tally().no(example),
                    Status::Bad => self.tally().bad(example),
                }
                if !bye {
                    self.client = Some(client);
                }
                return Ok(Reply {
                    tagged,
                    touched,
                    statuses,
                    bye,
                });
            }
            if line.starts_with(b"+") {
                // A continuation request: not expected with LITERAL+.
                continue;
            }
            match response::untagged(&line) {
                Ok(Untagged::Bye(text)) => {
                    if kind != Command::Logout {
                        bail!("* BYE {text} during {}", shorten(command));
                    }
                    bye = true;
                }
                Ok(Untagged::Status(mailbox, items)) => statuses.push((mailbox, items)),
                Ok(update) => {
                    if let Some(t) = self.absorb(&update, kind) {
                        touched.push(t);
                    }
                }
                Err(error) => {
                    let text = String::from_utf8_lossy(&line);
                    self.tally().contradiction(
                        Kind::Unparsable,
                        format!("{error}: {}", shorten(text.trim_end())),
                    );
                }
            }
        }
    }

    /// One line of this session's traffic into its rawlog, if asked for:
    /// time, direction, and at most 300 characters (literals cut short).
    fn rawlog(&mut self, line: &str, sent: bool) {
        let Some(log) = self.rawlog.as_mut() else {
            return;
        };
        let at = self.shared.now().as_secs_f64();
        let arrow = if sent { "C:" } else { "S:" };
        let line = line.trim_end();
        let cut: String = line.chars().take(300).collect();
        let more = if cut.len() < line.len() { " …" } else { "" };
        let written = writeln!(
            log,
            "{at:10.6} {arrow} {}{more}",
            cut.replace("\r\n", "\\r\\n")
        );
        if let Err(error) = written {
            eprintln!("rawlog of session {}: {error}; no more logging", self.index);
            self.rawlog = None;
        }
    }

    /// Applies one untagged response to the model, with the checks that need
    /// more than this session's model (sizes, \Recent).
    fn absorb(&mut self, update: &Untagged, kind: Command) -> Option<Touched> {
        let is_update = matches!(
            update,
            Untagged::Exists(_)
                | Untagged::Expunge(_)
                | Untagged::Recent(_)
                | Untagged::Flags(_)
                | Untagged::Fetch(..)
        );
        let Some(selected) = self.selected.as_mut() else {
            if is_update {
                self.outcome
                    .tally
                    .contradiction(Kind::UpdateWithoutSelection, format!("{update:?}"));
            }
            return None;
        };
        let touched = selected
            .model
            .apply(update, kind.during(), &mut self.outcome.tally)?;
        let uid = touched.uid?;
        let recent = touched
            .fetched
            .flags
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f.eq_ignore_ascii_case("\\Recent")));
        let ledger = self.selected.as_ref().and_then(|s| s.ledger);
        if let (true, Some(id)) = (recent, ledger) {
            self.shared.recent.lock().unwrap().saw(id, uid);
        }
        Some(touched)
    }

    fn check_sizes(&mut self, command: &str, touched: &[Touched]) {
        for t in touched {
            let Some(uid) = t.uid else { continue };
            if t.fetched.is_empty_stand_in() {
                let example = format!("{}: UID {uid} answered {:?}", shorten(command), t.fetched);
                self.suspect(uid, Kind::EmptyDataForLiveMessage, example);
                continue;
            }
            if let Some(size) = t.fetched.size {
                self.check_size(uid, size, "RFC822.SIZE");
            }
            if let Some(length) = t.fetched.body_len {
                self.check_size(uid, length as u64, "BODY[] length");
            }
        }
    }

    /// An answer that is wrong unless the message was expunged by then;
    /// the next checkpoint tells.
    fn suspect(&mut self, uid: u32, kind: Kind, example: String) {
        let suspect = Suspect { uid, kind, example };
        self.shared.suspects.lock().unwrap().push(suspect);
    }

    fn check_size(&mut self, uid: u32, size: u64, what: &str) {
        let known = *self.shared.sizes.lock().unwrap().entry(uid).or_insert(size);
        if known != size {
            self.tally().contradiction(
                Kind::SizeDisagrees,
                format!("UID {uid}: {what} {size}, known size {known}"),
            );
        }
    }

    async fn login(&mut self) -> Result<()> {
        let begun = Instant::now();
        self.client = Some(Client::connect(self.shared.options.server).await?);
        let command = format!(
            "LOGIN {} {}",
            quoted(&self.shared.options.user),
            quoted(&self.shared.options.password)
        );
        let reply = self
            .exchange_since(begun, Command::Login, &command, None)
            .await?;
        if reply.tagged.status != Status::Ok {
            bail!("LOGIN refused: {}", reply.tagged.text);
        }
        Ok(())
    }

    async fn select(&mut self) -> Result<()> {
        self.leave_selection();
        self.selected = Some(Selected {
            model: Selection::new(),
            ledger: None,
        });
        let command = format!("SELECT {}", quoted(&self.shared.options.mailbox));
        let reply = self.exchange(Command::Select, &command, None).await?;
        if reply.tagged.status != Status::Ok {
            self.selected = None;
            return Ok(());
        }
        let validity = self.selected.as_ref().and_then(|s| s.model.uidvalidity);
        if let Some(validity) = validity {
            self.check_uidvalidity(validity);
        }
        if reply.tagged.read_write() {
            let at = self.shared.now();
            let id = self.shared.recent.lock().unwrap().open(self.index, at);
            if let Some(selected) = self.selected.as_mut() {
                selected.model.read_write = true;
                selected.ledger = Some(id);
            }
        }
        Ok(())
    }

    fn check_uidvalidity(&mut self, validity: u32) {
        let known = *self
            .shared
            .uidvalidity
            .lock()
            .unwrap()
            .get_or_insert(validity);
        if known != validity {
            self.tally().contradiction(
                Kind::UidValidityChanged,
                format!("UIDVALIDITY {validity}, first seen {known}"),
            );
        }
    }

    async fn logout(&mut self) -> Result<()> {
        self.leave_selection();
        let reply = self.exchange(Command::Logout, "LOGOUT", None).await?;
        self.client = None;
        if !reply.bye {
            self.tally().contradiction(
                Kind::LogoutWithoutBye,
                format!("LOGOUT -> {}", shorten(&reply.tagged.text)),
            );
        }
        Ok(())
    }

    async fn list(&mut self) -> Result<()> {
        self.exchange(Command::List, "LIST \"\" *", None).await?;
        Ok(())
    }

    /// STATUS on the mailbox (selected or not, as imaptest does); its
    /// UIDNEXT must lie above every UID the session knows.
    async fn status(&mut self) -> Result<()> {
        let highest = self
            .selected
            .as_ref()
            .and_then(|s| s.model.highest_known_uid());
        let command = format!(
            "STATUS {} (MESSAGES UNSEEN RECENT UIDNEXT)",
            quoted(&self.shared.options.mailbox)
        );
        let reply = self.exchange(Command::Status, &command, None).await?;
        let uidnext = reply
            .statuses
            .iter()
            .flat_map(|(_, items)| items)
            .find(|(name, _)| name == "UIDNEXT")
            .map(|(_, n)| *n);
        if let (Some(next), Some(uid)) = (uidnext, highest)
            && next <= u64::from(uid)
        {
            self.tally().contradiction(
                Kind::UidNotBelowUidNext,
                format!("STATUS UIDNEXT {next} but UID {uid} exists"),
            );
        }
        Ok(())
    }

    /// As imaptest: the whole mailbox up to 100 messages, else 100 from a
    /// random start.
    async fn fetch(&mut self) -> Result<()> {
        let exists = self.exists();
        let (first, last) = if exists <= 100 {
            (1, exists)
        } else {
            let first = self.rng.random_range(1..=exists);
            (first, (first + 100).min(exists))
        };
        let command = format!("FETCH {first}:{last} (FLAGS UID RFC822.SIZE)");
        self.exchange(Command::Fetch, &command, None).await?;
        Ok(())
    }

    async fn fetch_body(&mut self) -> Result<()> {
        let seq = self.rng.random_range(1..=self.exists());
        let command = format!("FETCH {seq} (BODY.PEEK[])");
        self.exchange(Command::FetchBody, &command, None).await?;
        Ok(())
    }

    /// Distinct random sequence numbers, at most `count`.
    fn random_seqs(&mut self, count: usize) -> Vec<usize> {
        let exists = self.exists();
        let seqs: BTreeSet<usize> = (0..count)
            .map(|_| self.rng.random_range(1..=exists))
            .collect();
        seqs.into_iter().collect()
    }

    async fn store(&mut self) -> Result<()> {
        let exists = self.exists();
        let most = (exists / 5).clamp(1, 10);
        let count = self.rng.random_range(1..=most);
        let seqs = self.random_seqs(count);
        let wanted = self.rng.random_range(1..=3);
        let flags: BTreeSet<&str> = (0..wanted)
            .filter_map(|_| FLAGS.choose(&mut self.rng).copied())
            .collect();
        let add = self.rng.random_bool(0.5);
        self.store_flags(Command::Store, &seqs, add, &flags).await?;
        Ok(())
    }

    /// Sends a non-silent STORE and checks that the answer shows the change
    /// for every message still in the view; returns the messages (by local
    /// name) for which it did.
    async fn store_flags(
        &mut self,
        kind: Command,
        seqs: &[usize],
        add: bool,
        flags: &BTreeSet<&str>,
    ) -> Result<Vec<u64>> {
        let wanted: BTreeSet<String> = flags.iter().map(|f| model::normalised_flag(f)).collect();
        let shows = |now: &BTreeSet<String>| {
            if add {
                wanted.is_subset(now)
            } else {
                wanted.is_disjoint(now)
            }
        };
        // Each target with what the session knew of its flags: unknown,
        // already so (no change), or changed by this STORE.
        let targets: Vec<(usize, u64, Known)> = seqs
            .iter()
            .filter_map(|&seq| {
                let model = &self.selected.as_ref()?.model;
                let local = model.local_at(seq)?;
                let known = match model.flags_of(local) {
                    None => Known::Unknown,
                    Some(f) if shows(&f) => Known::AlreadySo,
                    Some(_) => Known::Changed,
                };
                Some((seq, local, known))
            })
            .collect();
        let set: Vec<String> = seqs.iter().map(usize::to_string).collect();
        let list: Vec<&str> = flags.iter().copied().collect();
        let sign = if add { '+' } else { '-' };
        let command = format!("STORE {} {sign}FLAGS ({})", set.join(","), list.join(" "));
        let record = StoreRecord {
            session: self.index,
            from: self.shared.now(),
            until: None,
            add,
            flags: wanted.clone(),
        };
        self.shared.stores.lock().unwrap().begin(record.clone());
        let answer = self.exchange(kind, &command, None).await;
        let until = self.shared.now();
        let raced = {
            let mut stores = self.shared.stores.lock().unwrap();
            stores.end(self.index, record.from, until);
            stores.raced(&record, until)
        };
        let reply = answer?;
        if reply.tagged.status != Status::Ok {
            return Ok(Vec::new());
        }
        let mut applied = Vec::new();
        for (seq, local, known) in targets {
            let still_there = self.selected.as_ref().is_some_and(|s| s.model.holds(local));
            let answers: Vec<BTreeSet<String>> = reply
                .touched
                .iter()
                .filter(|t| t.local == local)
                .filter_map(|t| t.fetched.flags.as_ref())
                .map(|f| f.iter().map(|f| model::normalised_flag(f)).collect())
                .collect();
            if answers.is_empty() {
                // Expunged by another session, which this one cannot be told
                // of during STORE, or (Dovecot) flags that did not change:
                // the server may leave it out. Not if it changed them and the
                // message is still there at the next checkpoint.
                if still_there {
                    self.outcome.stores_without_fetch[known as usize] += 1;
                    let uid = self.selected.as_ref().and_then(|s| s.model.uid_of(local));
                    if let (Known::Changed, Some(uid)) = (known, uid) {
                        let example = format!(
                            "{command}: no FETCH for seq {seq}, {}",
                            shorten(&reply.tagged.text)
                        );
                        self.suspect(uid, Kind::StoreLeftOutMessage, example);
                    }
                }
                continue;
            }
            if answers.iter().any(shows) {
                applied.push(local);
            } else if raced {
                self.outcome.stores_raced += 1;
            } else {
                self.tally().contradiction(
                    Kind::StoreNotApplied,
                    format!(
                        "{command}: seq {seq} answered FLAGS {answers:?}, then {}",
                        shorten(&reply.tagged.text)
                    ),
                );
            }
        }
        Ok(applied)
    }

    /// Marks a few messages \Deleted and expunges: more than APPEND adds
    /// while the mailbox is above its target size, fewer below.
    async fn delete(&mut self) -> Result<()> {
        let exists = self.exists();
        let target = self.shared.target_size;
        let count = if exists > target {
            self.rng.random_range(1..=(exists - target).min(4) + 1)
        } else {
            self.rng.random_range(0..=1)
        };
        let mut marked = Vec::new();
        if count > 0 {
            let seqs = self.random_seqs(count);
            let deleted = BTreeSet::from(["\\Deleted"]);
            marked = self
                .store_flags(Command::StoreDeleted, &seqs, true, &deleted)
                .await?;
        }
        let reply = self.exchange(Command::Expunge, "EXPUNGE", None).await?;
        if reply.tagged.status != Status::Ok {
            return Ok(());
        }
        for local in marked {
            let Some(selected) = self.selected.as_ref() else {
                break;
            };
            if selected.model.holds(local) {
                let example = format!(
                    "session {}: UID {:?} answered \\Deleted to STORE, still there after EXPUNGE -> {}",
                    self.index,
                    selected.model.uid_of(local),
                    shorten(&reply.tagged.text)
                );
                self.tally()
                    .contradiction(Kind::DeletedSurvivedExpunge, example);
            }
        }
        Ok(())
    }

    /// APPENDs a small message, with random flags half of the time (new
    /// keywords have to be announced to the other sessions before they see them).
    async fn append(&mut self) -> Result<()> {
        self.appended += 1;
        let message = small_message(
            &format!("stress {}.{}", self.index, self.appended),
            &format!(
                "stress.{}.{}.{}",
                self.shared.options.seed, self.index, self.appended
            ),
        );
        let flags = if self.rng.random_bool(0.5) {
            let picked: BTreeSet<&str> = (0..self.rng.random_range(1..=2))
                .filter_map(|_| FLAGS.choose(&mut self.rng).copied())
                .collect();
            let picked: Vec<&str> = picked.into_iter().collect();
            format!("({}) ", picked.join(" "))
        } else {
            String::new()
        };
        let highest = self
            .selected
            .as_ref()
            .and_then(|s| s.model.highest_known_uid());
        let command = format!(
            "APPEND {} {flags}{{{}+}}",
            quoted(&self.shared.options.mailbox),
            message.len()
        );
        let reply = self
            .exchange(Command::Append, &command, Some(message.as_bytes()))
            .await?;
        let Some((validity, uid)) = reply.tagged.append_uid() else {
            return Ok(());
        };
        self.check_uidvalidity(validity);
        self.check_size(uid, message.len() as u64, "appended size");
        if let Some(known) = highest.filter(|&known| uid <= known) {
            self.tally().contradiction(
                Kind::UidsNotAscending,
                format!("APPENDUID {uid} but UID {known} existed before"),
            );
        }
        Ok(())
    }

    /// All sessions stop; each catches up with NOOP (logging in and
    /// selecting first if it was not) and, once all have, their views are
    /// compared: this tests that every change reached every session. Then
    /// each fetches the flags and UIDs of all messages, and the views are
    /// compared again, now complete: all sessions must be shown the same
    /// mailbox. Then they go on.
    async fn checkpoint(&mut self) {
        let shared = self.shared.clone();
        let checkpoints = &shared.checkpoints;
        checkpoints.barrier.wait().await;
        if let Err(error) = self.catch_up().await {
            self.failed(error);
        }
        self.compare_at_barrier(0, "after NOOP").await;
        if self.exists() > 0 {
            let command = format!("FETCH 1:{} (UID FLAGS)", self.exists());
            if let Err(error) = self.exchange(Command::Fetch, &command, None).await {
                self.failed(error);
            }
        }
        self.compare_at_barrier(1, "after FETCH 1:*").await;
    }

    /// Hands this session's view in and waits for all others; the last to
    /// arrive compares them. Nobody sends anything else meanwhile.
    async fn compare_at_barrier(&mut self, step: usize, when: &str) {
        let checkpoints = &self.shared.checkpoints;
        if let Some(selected) = &self.selected {
            let view = selected.model.view(self.index);
            checkpoints.views[step].lock().unwrap().push(view);
        }
        if !checkpoints.barrier.wait().await.is_leader() {
            return;
        }
        let mut views = std::mem::take(&mut *checkpoints.views[step].lock().unwrap());
        views.sort_by_key(|v| v.session);
        let mut coverage = checkpoints.coverage.lock().unwrap();
        let coverage = &mut coverage[step];
        coverage.checkpoints += 1;
        coverage.views += views.len();
        coverage.uids += views
            .iter()
            .map(|v| v.uids.iter().flatten().count())
            .sum::<usize>();
        coverage.flag_sets += views.iter().map(|v| v.flags.len()).sum::<usize>();
        let mut tally = checkpoints.tally.lock().unwrap();
        model::compare_views(&views, when, &mut tally);
        if step == 1 {
            let present: BTreeSet<u32> = views
                .iter()
                .flat_map(|v| v.uids.iter().flatten().copied())
                .collect();
            for suspect in std::mem::take(&mut *self.shared.suspects.lock().unwrap()) {
                if present.contains(&suspect.uid) {
                    let example = format!(
                        "{}; UID {} still there at the checkpoint",
                        suspect.example, suspect.uid
                    );
                    tally.contradiction(suspect.kind, example);
                }
            }
        }
    }

    async fn catch_up(&mut self) -> Result<()> {
        if self.client.is_none() {
            self.login().await?;
        }
        if self.selected.is_none() {
            self.select().await?;
        }
        self.exchange(Command::Noop, "NOOP", None).await?;
        Ok(())
    }
}

fn small_message(subject: &str, id: &str) -> String {
    format!(
        "From: Stress <stress@example.org>\r\nTo: <stress@example.org>\r\nSubject: {subject}\r\n\
Message-ID: <{id}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
A small message for the stress scenario: {subject}.\r\n"
    )
}

/// Command and answer texts in examples: one line, at most 160 characters.
fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 160 {
        let cut: String = line.chars().take(160).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

/// Sends one command on a plain client and returns its untagged responses
/// and tagged line (for the preparation, which keeps no model).
async fn command(
    client: &mut Client,
    command: &str,
    literal: Option<&[u8]>,
) -> Result<(Vec<Untagged>, Tagged)> {
    let tag = client.send(command).await?;
    if let Some(bytes) = literal {
        client.write_raw(bytes).await?;
        client.write_raw(b"\r\n").await?;
    }
    let mut untagged = Vec::new();
    loop {
        let line = client.line().await?;
        if let Some(tagged) = response::tagged(&line, &tag) {
            return Ok((untagged, tagged.map_err(anyhow::Error::msg)?));
        }
        if let Ok(response) = response::untagged(&line) {
            untagged.push(response);
        }
    }
}

/// Creates the mailbox if it is missing and APPENDs until it holds `fill`
/// messages; returns how many it holds then.
async fn prepare(options: &Options) -> Result<usize> {
    let mut client = Client::connect(options.server).await?;
    let login = format!(
        "LOGIN {} {}",
        quoted(&options.user),
        quoted(&options.password)
    );
    let (_, tagged) = command(&mut client, &login, None).await?;
    if tagged.status != Status::Ok {
        bail!("LOGIN as {}: {}", options.user, tagged.text);
    }
    let mailbox = quoted(&options.mailbox);
    let mut messages = match message_count(&mut client, &mailbox).await? {
        Some(n) => n,
        None => {
            let (_, tagged) = command(&mut client, &format!("CREATE {mailbox}"), None).await?;
            if tagged.status != Status::Ok {
                bail!("CREATE {mailbox}: {}", tagged.text);
            }
            message_count(&mut client, &mailbox).await?.unwrap_or(0)
        }
    };
    while messages < options.fill {
        messages += 1;
        let message = small_message(
            &format!("fill {messages}"),
            &format!("fill.{}.{messages}", options.seed),
        );
        let append = format!("APPEND {mailbox} {{{}+}}", message.len());
        let (_, tagged) = command(&mut client, &append, Some(message.as_bytes())).await?;
        if tagged.status != Status::Ok {
            bail!("APPEND to {mailbox}: {}", tagged.text);
        }
    }
    command(&mut client, "LOGOUT", None).await?;
    Ok(messages)
}

/// STATUS MESSAGES, or `None` when the mailbox does not exist.
async fn message_count(client: &mut Client, mailbox: &str) -> Result<Option<usize>> {
    let (untagged, tagged) = command(client, &format!("STATUS {mailbox} (MESSAGES)"), None).await?;
    if tagged.status != Status::Ok {
        return Ok(None);
    }
    let count = untagged.iter().find_map(|u| match u {
        Untagged::Status(_, items) => items
            .iter()
            .find(|(name, _)| name == "MESSAGES")
            .map(|(_, n)| *n as usize),
        _ => None,
    });
    count.map(Some).context("STATUS answered without MESSAGES")
}

/// Everything one run found.
pub struct Report {
    options: Options,
    elapsed: Duration,
    start_size: usize,
    tally: Tally,
    latencies: BTreeMap<Command, Measured>,
    coverage: [Coverage; 2],
    recent_uids: usize,
    recent_later: usize,
    stores_without_fetch: [usize; 3],
    stores_raced: usize,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.tally.contradictions_total() > 0 || self.tally.bad.0 > 0
    }
}

pub async fn run(options: Options) -> Result<Report> {
    let start_size = prepare(&options)
        .await
        .with_context(|| format!("preparing {} of {}", options.mailbox, options.user))?;
    let shared = Arc::new(Shared {
        options: options.clone(),
        started: Instant::now(),
        target_size: start_size.max(10),
        sizes: Mutex::new(HashMap::new()),
        uidvalidity: Mutex::new(None),
        recent: Mutex::new(RecentLedger::default()),
        stores: Mutex::new(StoreLedger::default()),
        suspects: Mutex::new(Vec::new()),
        checkpoints: Checkpoints {
            barrier: Barrier::new(options.sessions),
            views: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
            tally: Mutex::new(Tally::default()),
            coverage: Mutex::new([Coverage::default(); 2]),
        },
    });
    if let Some(dir) = &options.rawlog {
        fs::create_dir_all(dir).with_context(|| format!("create {dir:?}"))?;
    }
    let mut tasks = Vec::new();
    for index in 0..options.sessions {
        let rawlog = match &options.rawlog {
            Some(dir) => {
                let path = dir.join(format!("session-{index}.log"));
                let file = File::create(&path).with_context(|| format!("create {path:?}"))?;
                Some(BufWriter::new(file))
            }
            None => None,
        };
        let session = Session {
            index,
            shared: shared.clone(),
            rng: StdRng::seed_from_u64(options.seed.wrapping_add(index as u64 * 7919)),
            client: None,
            selected: None,
            appended: 0,
            outcome: Outcome::default(),
            rawlog,
        };
        tasks.push(tokio::spawn(session.run()));
    }
    let mut tally = Tally::default();
    let mut samples: BTreeMap<Command, Vec<Duration>> = BTreeMap::new();
    let mut stores_without_fetch = [0; 3];
    let mut stores_raced = 0;
    for task in tasks {
        let outcome = task.await.context("a stress session panicked")?;
        tally.merge(outcome.tally);
        for (sum, n) in stores_without_fetch
            .iter_mut()
            .zip(outcome.stores_without_fetch)
        {
            *sum += n;
        }
        stores_raced += outcome.stores_raced;
        for (kind, mut durations) in outcome.latencies {
            samples.entry(kind).or_default().append(&mut durations);
        }
    }
    let elapsed = shared.now();
    tally.merge(std::mem::take(
        &mut *shared.checkpoints.tally.lock().unwrap(),
    ));
    let ledger = shared.recent.lock().unwrap();
    let (concurrent, recent_later) = ledger.duplicates(elapsed);
    for example in concurrent {
        tally.contradiction(Kind::RecentInTwoSessions, example);
    }
    let latencies = samples
        .into_iter()
        .map(|(kind, s)| (kind, Measured::new(s, 0, elapsed)))
        .collect();
    let coverage = *shared.checkpoints.coverage.lock().unwrap();
    Ok(Report {
        options,
        elapsed,
        start_size,
        tally,
        latencies,
        coverage,
        recent_uids: ledger.seen.len(),
        recent_later,
        stores_without_fetch,
        stores_raced,
    })
}

impl Report {
    pub fn print(&self, name: &str) {
        let o = &self.options;
        let commands: usize = self.latencies.values().map(|m| m.count).sum();
        println!(
            "\n== stress: {name} at {}, {} of {}, {} messages at the start",
            o.server, o.mailbox, o.user, self.start_size
        );
        println!(
            "{} sessions, {:.1} s, seed {}, {} commands ({:.1}/s)",
            o.sessions,
            self.elapsed.as_secs_f64(),
            o.seed,
            commands,
            commands as f64 / self.elapsed.as_secs_f64()
        );
        for (c, when) in self.coverage.iter().zip(["after NOOP", "after FETCH 1:*"]) {
            println!(
                "checkpoints {when}: {} (compared {} views holding {} known UIDs and {} known flag sets)",
                c.checkpoints, c.views, c.uids, c.flag_sets
            );
        }
        println!("contradictions: {}", self.tally.contradictions_total());
        for kind in Kind::ALL {
            let (n, examples) = self
                .tally
                .contradictions
                .get(&kind)
                .cloned()
                .unwrap_or_default();
            println!("  {:<48} {n}", kind.label());
            for example in examples {
                println!("      e.g. {example}");
            }
        }
        print_counted("NO answers", &self.tally.no);
        print_counted("BAD answers", &self.tally.bad);
        print_counted("session errors", &self.tally.session_errors);
        println!(
            "\\Recent: {} UIDs seen \\Recent; {} of them again in a later session (not counted)",
            self.recent_uids, self.recent_later
        );
        let [unknown, already, changed] = self.stores_without_fetch;
        println!(
            "STORE answers without FETCH for a message in the view: {already} whose flags were already so, \
             {unknown} with flags unknown, {changed} changed (counted if still there at the next checkpoint)"
        );
        println!(
            "STORE answers lacking the change while another session's opposite STORE of that flag ran: {} (not counted)",
            self.stores_raced
        );
        println!("\n| command | count | mean ms | p50 ms | p99 ms | max ms |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (kind, m) in &self.latencies {
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                kind.label(),
                m.count,
                m.mean_ms(),
                m.percentile_ms(50.0),
                m.percentile_ms(99.0),
                m.percentile_ms(100.0)
            );
        }
    }
}

fn print_counted(what: &str, (n, examples): &(usize, Vec<String>)) {
    println!("{what}: {n}");
    for example in examples {
        println!("      e.g. {example}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_twice_counts_only_for_overlapping_selections() {
        let mut ledger = RecentLedger::default();
        let s = Duration::from_secs;
        let a = ledger.open(0, s(1));
        let b = ledger.open(1, s(2));
        ledger.close(a, s(3));
        let c = ledger.open(2, s(4));
        ledger.saw(a, 10);
        ledger.saw(b, 10);
        ledger.saw(a, 11);
        ledger.saw(c, 11);
        ledger.saw(c, 12);
        let (concurrent, later) = ledger.duplicates(s(5));
        assert_eq!(concurrent.len(), 1, "{concurrent:?}");
        assert!(concurrent[0].starts_with("UID 10 "));
        assert_eq!(later, 1);
    }

    #[test]
    fn only_overlapping_opposite_stores_of_a_common_flag_race() {
        let s = Duration::from_secs;
        let record = |session, from, until, add, flag: &str| StoreRecord {
            session,
            from: s(from),
            until,
            add,
            flags: BTreeSet::from([flag.to_owned()]),
        };
        let mut ledger = StoreLedger::default();
        ledger.begin(record(1, 1, Some(s(2)), false, "$label1"));
        ledger.begin(record(2, 3, None, true, "$label1"));
        ledger.begin(record(3, 3, Some(s(4)), false, "\\Seen"));
        let ours = record(0, 3, None, true, "$label1");
        assert!(
            !ledger.raced(&ours, s(5)),
            "same sign, other flag, or earlier"
        );
        ledger.begin(record(4, 4, None, false, "$label1"));
        assert!(ledger.raced(&ours, s(5)));
        assert!(
            !ledger.raced(&ours, s(3)),
            "ours ended before the other began"
        );
    }

    #[test]
    fn the_weights_pick_every_action() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = vec![0; WEIGHTS.len()];
        for _ in 0..7000 {
            let action = choose(&mut rng);
            let index = WEIGHTS.iter().position(|(a, _)| *a == action).unwrap();
            counts[index] += 1;
        }
        // Weight 50 of 700: about 500 picks; weight 100: about 1000.
        for ((action, weight), count) in WEIGHTS.iter().zip(counts) {
            let expected = *weight as i32 * 10;
            assert!(
                (count - expected).abs() < expected / 4,
                "{action:?}: {count}"
            );
        }
    }
}
