//! The scenarios (1 to 5, and 7). Each drives `clients` concurrent sessions against one
//! server for a fixed time (or count) and returns what it measured.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::seq::IndexedRandom;
use rand::{SeedableRng, rngs::StdRng};
use tokio::sync::Semaphore;

use crate::client::{Account, Client, find, uids_in};
use crate::corpus::NEEDLE;
use crate::memory::{self, Resident};
use crate::stats::Measured;

/// One server under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    /// The server's main process (its descendants are counted too).
    pub pid: u32,
    pub accounts: Vec<Account>,
}

impl Target {
    fn account(&self, n: usize) -> &Account {
        &self.accounts[n % self.accounts.len()]
    }
}

/// Runs `clients` tasks, each repeating `op` until `duration` has passed, and
/// collects the latency of every completed operation.
async fn closed_loop<F, Fut>(clients: usize, duration: Duration, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let reported = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let op = op.clone();
        let reported = reported.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0;
            let mut round = 0u64;
            while Instant::now() < deadline {
                let begun = Instant::now();
                match op(client, round).await {
                    Ok(()) => samples.push(begun.elapsed()),
                    Err(error) => {
                        errors += 1;
                        if !reported.swap(true, Ordering::Relaxed) {
                            eprintln!("  first error: {error:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                round += 1;
            }
            (samples, errors)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut s, e)) = task.await {
            samples.append(&mut s);
            errors += e;
        }
    }
    Measured::new(samples, errors, started.elapsed())
}

/// Scenario 1: connect, LOGIN, LOGOUT.
pub async fn login(target: &Target, clients: usize, duration: Duration) -> Measured {
    let target = target.clone();
    closed_loop(clients, duration, move |client, round| {
        let target = target.clone();
        async move {
            let account = target.account(client + round as usize);
            Client::login(target.addr, account).await?.logout().await
        }
    })
    .await
}

/// Scenario 2: a phone opening its mailbox.
pub async fn phone(target: &Target, clients: usize, duration: Duration) -> Measured {
    let target = target.clone();
    closed_loop(clients, duration, move |client, round| {
        let target = target.clone();
        async move {
            let account = target.account(client + round as usize);
            open_mailbox(target.addr, account, client as u64 * 7919 + round).await
        }
    })
    .await
}

async fn open_mailbox(addr: SocketAddr, account: &Account, seed: u64) -> Result<()> {
    let mut session = Client::login(addr, account).await?;
    session.run("SELECT INBOX").await?;
    let index = session
        .run("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)")
        .await?;
    let uids = uids_in(&index);
    if uids.is_empty() {
        bail!("the index fetch returned no messages");
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..10 {
        let uid = uids.choose(&mut rng).copied().unwrap_or(1);
        let body = session
            .run(&format!("UID FETCH {uid} (BODY.PEEK[])"))
            .await?;
        if find(&body, b"BODY[]").is_none() {
            bail!("UID FETCH {uid} BODY.PEEK[] returned no body");
        }
    }
    session.logout().await
}

/// What a QRESYNC client remembers of a mailbox: UIDVALIDITY and HIGHESTMODSEQ.
type Known = (u64, u64);

/// Scenario 7: a phone reopening its INBOX after one change elsewhere, and
/// making one itself. With `qresync`, it gives back what it knew (RFC 7162
/// 3.2.5) and hears only what changed; without, it fetches every flag
/// again. Each client keeps to its own account, so "since last time" is
/// exactly the STORE of its previous round.
pub async fn reopen(
    target: &Target,
    clients: usize,
    duration: Duration,
    qresync: bool,
) -> Measured {
    let target = target.clone();
    let known: Arc<std::sync::Mutex<Vec<Option<Known>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; clients]));
    closed_loop(clients, duration, move |client, round| {
        let target = target.clone();
        let known = known.clone();
        async move {
            let account = target.account(client);
            let mut session = Client::login(target.addr, account).await?;
            let before = known.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[client];
            let select = match (qresync, before) {
                (true, Some((uidvalidity, modseq))) => {
                    session.run("ENABLE QRESYNC").await?;
                    session
                        .run(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))"))
                        .await?
                }
                (true, None) => {
                    session.run("ENABLE QRESYNC").await?;
                    let select = session.run("SELECT INBOX").await?;
                    session.run("UID FETCH 1:* (UID FLAGS)").await?;
                    select
                }
                (false, _) => {
                    let select = session.run("SELECT INBOX").await?;
                    let index = session.run("UID FETCH 1:* (UID FLAGS)").await?;
                    if uids_in(&index).is_empty() {
                        bail!("the flag fetch returned no messages");
                    }
                    select
                }
            };
            // Only a QRESYNC client keeps what it knew (Dovecot sends
            // HIGHESTMODSEQ only once CONDSTORE is on).
            let state = if qresync {
                Some((
                    number_after(&select, b"UIDVALIDITY ")
                        .ok_or_else(|| anyhow::anyhow!("no UIDVALIDITY"))?,
                    number_after(&select, b"HIGHESTMODSEQ ")
                        .ok_or_else(|| anyhow::anyhow!("no HIGHESTMODSEQ"))?,
                ))
            } else {
                None
            };
            // The change the next reopen will hear of: \Seen toggled on one message.
            let flag = if round % 2 == 0 {
                "+FLAGS.SILENT"
            } else {
                "-FLAGS.SILENT"
            };
            session
                .run(&format!("UID STORE {} {flag} (\\Seen)", 1 + client % 50))
                .await?;
            known.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[client] = state;
            session.logout().await
        }
    })
    .await
}

/// The number after `label` in an answer, such as `HIGHESTMODSEQ 42`.
fn number_after(answer: &[u8], label: &[u8]) -> Option<u64> {
    let start = find(answer, label)? + label.len();
    let digits: String = answer[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

/// Opens the index of every account once, so that both servers have parsed
/// and cached what the phone scenario asks for before anything is timed.
pub async fn warm_up(target: &Target) -> Result<()> {
    for account in &target.accounts {
        let mut session = Client::login(target.addr, account).await?;
        session.run("SELECT INBOX").await?;
        session
            .run("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)")
            .await?;
        session.logout().await?;
    }
    Ok(())
}

/// Scenario 3: a selected session searching, with `key` being `SUBJECT` or `TEXT`.
pub async fn search(
    target: &Target,
    clients: usize,
    duration: Duration,
    key: &'static str,
) -> Measured {
    // Each client selects once, then searches until the time is up.
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let addr = target.addr;
        let account = target.account(client).clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut session = Client::login(addr, &account).await?;
            session.run("SELECT INBOX").await?;
            while Instant::now() < deadline {
                let begun = Instant::now();
                let answer = session.run(&format!("UID SEARCH {key} {NEEDLE}")).await?;
                if find(&answer, b"* SEARCH").is_none() {
                    bail!("no SEARCH answer");
                }
                samples.push(begun.elapsed());
            }
            session.logout().await?;
            anyhow::Ok(samples)
        }));
    }
    gather(tasks, "search client", started).await
}

/// The samples of every task; a task that failed counts as one error.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Duration>>>>,
    what: &str,
    started: Instant,
) -> Measured {
    let mut samples = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(mut s)) => samples.append(&mut s),
            Ok(Err(error)) => {
                errors += 1;
                eprintln!("  {what} failed: {error:#}");
            }
            Err(_) => errors += 1,
        }
    }
    Measured::new(samples, errors, started.elapsed())
}

/// What holding `connections` sessions in IDLE cost the server.
#[derive(Debug, Clone, Copy)]
pub struct IdleMemory {
    pub connections: usize,
    pub before: Resident,
    pub after: Resident,
    pub opened_in: Duration,
}

impl IdleMemory {
    pub fn rss_per_connection_kib(&self) -> f64 {
        self.after.rss_kib.saturating_sub(self.before.rss_kib) as f64 / self.connections as f64
    }

    pub fn pss_per_connection_kib(&self) -> f64 {
        self.after.pss_kib.saturating_sub(self.before.pss_kib) as f64 / self.connections as f64
    }
}

/// Scenario 4: `connections` sessions logged in, INBOX selected, in IDLE.
pub async fn idle(target: &Target, connections: usize) -> Result<IdleMemory> {
    let before = memory::resident(target.pid);
    let started = Instant::now();
    // At most 64 logins in flight: this measures memory, not login storms.
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for n in 0..connections {
        let gate = gate.clone();
        let addr = target.addr;
        let account = target.account(n).clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let mut session = Client::login(addr, &account).await?;
            session.run("SELECT INBOX").await?;
            session.idle().await?;
            drop(permit);
            anyhow::Ok(session)
        }));
    }
    let mut sessions = Vec::with_capacity(connections);
    for task in tasks {
        sessions.push(task.await??);
    }
    let opened_in = started.elapsed();
    // Let the server settle (Dovecot's login processes hand over, allocators trim).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = memory::resident(target.pid);
    drop(sessions);
    // Give the server time to close them before the next scenario.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(IdleMemory {
        connections,
        before,
        after,
        opened_in,
    })
}

/// Scenario 5: one session APPENDs to INBOX while another idles on it; the
/// time from sending the APPEND until the idler sees EXISTS. `pairs` users do
/// this at once, each delivering one message at a time.
pub async fn delivery(target: &Target, pairs: usize, duration: Duration) -> Measured {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for pair in 0..pairs.min(target.accounts.len()) {
        let addr = target.addr;
        let account = target.account(pair).clone();
        tasks.push(tokio::spawn(async move {
            let mut idler = Client::login(addr, &account).await?;
            idler.run("SELECT INBOX").await?;
            let idle_tag = idler.idle().await?;
            let mut sender = Client::login(addr, &account).await?;
            let mut samples = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let message = format!(
                    "From: <bench@example.org>\r\nTo: <{}>\r\nSubject: delivery {pair}.{n}\r\n\
Message-ID: <d{pair}.{n}@example.org>\r\n\r\nDelivered while idling.\r\n",
                    account.user
                );
                let begun = Instant::now();
                let tag = sender
                    .send(&format!("APPEND INBOX {{{}+}}", message.len()))
                    .await?;
                sender.write_raw(message.as_bytes()).await?;
                sender.write_raw(b"\r\n").await?;
                loop {
                    let line = idler.line().await?;
                    if find(&line, b" EXISTS").is_some() {
                        break;
                    }
                }
                samples.push(begun.elapsed());
                sender.answer(&tag, "APPEND").await?;
            }
            idler.write_raw(b"DONE\r\n").await?;
            idler.answer(&idle_tag, "IDLE").await?;
            idler.logout().await?;
            sender.logout().await?;
            anyhow::Ok(samples)
        }));
    }
    gather(tasks, "delivery pair", started).await
}
