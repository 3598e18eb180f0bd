//! imap-load: a load generator that drives concurrent IMAP sessions through
//! the scenarios of the performance comparison, against imap-server and
//! Dovecot on loopback, and prints one table. `bench/compare.sh` sets up both
//! servers with the same corpus and calls it.

mod client;
mod corpus;
mod memory;
mod model;
mod response;
mod scenarios;
mod stats;
mod stress;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use client::Account;
use scenarios::{IdleMemory, Target};
use stats::Measured;

#[derive(Parser)]
#[command(about = "IMAP load generator: imap-server against Dovecot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the corpus: a Maildir per user, and a PostgreSQL COPY stream.
    Corpus {
        #[arg(long, default_value_t = 20)]
        users: usize,
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Directory that receives `<user>/Maildir/{cur,new,tmp}`.
        #[arg(long)]
        maildir: PathBuf,
        /// Where to write the `COPY emails (…) FROM STDIN` rows (`-` for stdout).
        #[arg(long)]
        pg_copy: Option<String>,
    },
    /// Print the benchmark users, one `user address` per line.
    Users {
        #[arg(long, default_value_t = 20)]
        users: usize,
    },
    /// Run the scenarios against our server and, when given, Dovecot.
    Compare {
        /// `user password` lines: the accounts both servers know.
        #[arg(long)]
        accounts: PathBuf,
        #[arg(long)]
        ours: SocketAddr,
        #[arg(long)]
        ours_pid: u32,
        #[arg(long, requires = "dovecot_pid")]
        dovecot: Option<SocketAddr>,
        #[arg(long)]
        dovecot_pid: Option<u32>,
        /// Short runs (about a minute of load in all).
        #[arg(long)]
        quick: bool,
        /// Concurrent clients for scenarios 1-3.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Scenarios to run, e.g. `1,2,5` (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<u8>,
        /// Idle connections held in scenario 4 on our server and on Dovecot.
        #[arg(long)]
        idle_ours: Option<usize>,
        #[arg(long)]
        idle_dovecot: Option<usize>,
        /// Skip the warm-up (the index of every mailbox fetched once).
        #[arg(long)]
        no_warm_up: bool,
    },
    /// Many sessions of one user on one mailbox, sending random commands
    /// (imaptest's mix) and checking every answer against a model of the
    /// mailbox; exits with status 1 after contradictions or BAD answers.
    Stress {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seed of the sessions' choices (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// All sessions catch up and compare their views this often (0: only at the end).
        #[arg(long, default_value_t = 5)]
        checkpoint_seconds: u64,
        /// APPEND (creating the mailbox if needed) until it holds this many
        /// messages before the sessions start.
        #[arg(long, default_value_t = 0)]
        fill: usize,
        /// Name of the server in the report.
        #[arg(long, default_value = "server")]
        name: String,
        /// Write each session's traffic to DIR/session-N.log.
        #[arg(long, value_name = "DIR")]
        rawlog: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Corpus {
            users,
            messages,
            seed,
            maildir,
            pg_copy,
        } => {
            let started = Instant::now();
            let mut stdout;
            let mut file;
            let copy: Option<&mut dyn Write> = match pg_copy.as_deref() {
                None => None,
                Some("-") => {
                    stdout = std::io::stdout().lock();
                    Some(&mut stdout)
                }
                Some(path) => {
                    file = fs::File::create(path).with_context(|| format!("create {path}"))?;
                    Some(&mut file)
                }
            };
            let bytes = corpus::write(users, messages, seed, &maildir, copy)?;
            eprintln!(
                "corpus: {users} users x {messages} messages, {:.1} MiB, in {:.1} s",
                bytes as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Users { users } => {
            for n in 1..=users {
                println!("{} {}", corpus::user(n), corpus::address(n));
            }
            Ok(())
        }
        Command::Compare {
            accounts,
            ours,
            ours_pid,
            dovecot,
            dovecot_pid,
            quick,
            clients,
            only,
            idle_ours,
            idle_dovecot,
            no_warm_up,
        } => {
            let accounts = read_accounts(&accounts)?;
            let mut targets = vec![Target {
                name: "imap-server".to_owned(),
                addr: ours,
                pid: ours_pid,
                accounts: accounts.clone(),
            }];
            if let (Some(addr), Some(pid)) = (dovecot, dovecot_pid) {
                targets.push(Target {
                    name: "Dovecot".to_owned(),
                    addr,
                    pid,
                    accounts,
                });
            }
            let plan = Plan {
                quick,
                clients,
                only,
                idle: [
                    // The target is 10,000; the quick run keeps within its
                    // two minutes with fewer.
                    idle_ours.unwrap_or(if quick { 1000 } else { 10_000 }),
                    idle_dovecot.unwrap_or(if quick { 300 } else { 1000 }),
                ],
                warm_up: !no_warm_up,
            };
            compare(&targets, &plan).await
        }
        Command::Stress {
            server,
            user,
            password,
            mailbox,
            sessions,
            seconds,
            seed,
            checkpoint_seconds,
            fill,
            name,
            rawlog,
        } => {
            if sessions == 0 {
                bail!("--sessions must be at least 1");
            }
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            });
            let report = stress::run(stress::Options {
                server,
                user,
                password,
                mailbox,
                sessions,
                duration: Duration::from_secs(seconds),
                checkpoint_every: Duration::from_secs(checkpoint_seconds),
                seed,
                fill,
                rawlog,
            })
            .await?;
            report.print(&name);
            if report.failed() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn read_accounts(path: &PathBuf) -> Result<Vec<Account>> {
    let text = fs::read_to_string(path).with_context(|| format!("read {path:?}"))?;
    let accounts: Vec<Account> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some(Account {
                user: parts.next()?.to_owned(),
                password: parts.next()?.to_owned(),
            })
        })
        .collect();
    if accounts.is_empty() {
        bail!("{path:?} holds no `user password` lines");
    }
    Ok(accounts)
}

struct Plan {
    quick: bool,
    clients: usize,
    only: Vec<u8>,
    idle: [usize; 2],
    warm_up: bool,
}

impl Plan {
    fn runs(&self, scenario: u8) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    fn seconds(&self, full: u64) -> Duration {
        Duration::from_secs(if self.quick { full.div_ceil(3) } else { full })
    }

    /// Each scenario runs this many times per server, alternating which
    /// server goes first; the best run counts (the machine is shared, and
    /// noise only ever makes a run slower).
    fn rounds(&self) -> usize {
        if self.quick { 1 } else { 2 }
    }
}

/// One line of the table: the same measurement on each server.
struct Row {
    label: String,
    values: Vec<f64>,
    /// Higher is better (rates) or lower is better (latency, memory).
    higher_is_better: bool,
    unit: &'static str,
}

async fn compare(targets: &[Target], plan: &Plan) -> Result<()> {
    let started = Instant::now();
    if plan.warm_up {
        for target in targets {
            let begun = Instant::now();
            scenarios::warm_up(target)
                .await
                .with_context(|| format!("warm-up of {}", target.name))?;
            eprintln!(
                "warm-up {}: {:.1} s",
                target.name,
                begun.elapsed().as_secs_f64()
            );
        }
    }
    let mut rows = Vec::new();
    let clients = plan.clients;
    // Idle memory first, on servers that have only been warmed up: after the
    // search scenarios the allocator holds on to hundreds of MiB it would
    // hand to new sessions, which would hide what a session costs.
    let mut idle_notes = Vec::new();
    if plan.runs(4) {
        let mut per_connection = Vec::new();
        let mut totals = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let n = plan.idle[i.min(1)];
            eprintln!("4 idle: {} with {n} connections", target.name);
            match scenarios::idle(target, n).await {
                Ok(memory) => {
                    idle_notes.push(idle_note(target, &memory));
                    per_connection.push(memory.rss_per_connection_kib());
                    totals.push(memory.after.rss_kib as f64 / 1024.0);
                }
                Err(error) => {
                    eprintln!("  idle on {} failed: {error:#}", target.name);
                    per_connection.push(f64::NAN);
                    totals.push(f64::NAN);
                }
            }
        }
        let counts: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(i, _)| plan.idle[i.min(1)].to_string())
            .collect();
        rows.push(Row {
            label: format!("4. IDLE ({} conns): server RSS in all", counts.join(" / ")),
            values: totals,
            higher_is_better: false,
            unit: "MiB",
        });
        rows.push(Row {
            label: format!("4. IDLE ({} conns): RSS per connection", counts.join(" / ")),
            values: per_connection,
            higher_is_better: false,
            unit: "KiB",
        });
    }
    if plan.runs(1) {
        let best = best_of(targets, plan, "1 login+logout", |t| {
            let t = t.clone();
            async move { scenarios::login(&t, clients, plan.seconds(10)).await }
        })
        .await;
        push_latency_rows(
            &mut rows,
            &format!("1. LOGIN + LOGOUT ({clients} clients)"),
            &best,
        );
    }
    if plan.runs(2) {
        let best = best_of(targets, plan, "2 phone", |t| {
            let t = t.clone();
            async move { scenarios::phone(&t, clients, plan.seconds(15)).await }
        })
        .await;
        push_latency_rows(
            &mut rows,
            &format!("2. phone opens INBOX ({clients} clients)"),
            &best,
        );
    }
    if plan.runs(7) {
        for (qresync, how) in [(false, "full flag re-fetch"), (true, "QRESYNC")] {
            let best = best_of(targets, plan, &format!("7 reopen {how}"), |t| {
                let t = t.clone();
                async move { scenarios::reopen(&t, clients, plan.seconds(10), qresync).await }
            })
            .await;
            push_latency_rows(
                &mut rows,
                &format!("7. phone reopens INBOX, one change, {how} ({clients} clients)"),
                &best,
            );
        }
    }
    if plan.runs(3) {
        for key in ["SUBJECT", "TEXT"] {
            let best = best_of(targets, plan, &format!("3 search {key}"), |t| {
                let t = t.clone();
                async move { scenarios::search(&t, clients, plan.seconds(8), key).await }
            })
            .await;
            push_latency_rows(
                &mut rows,
                &format!("3. UID SEARCH {key} ({clients} clients)"),
                &best,
            );
        }
    }
    if plan.runs(5) {
        let pairs = 4;
        let best = best_of(targets, plan, "5 delivery to IDLE", |t| {
            let t = t.clone();
            async move { scenarios::delivery(&t, pairs, plan.seconds(10)).await }
        })
        .await;
        let label = format!("5. APPEND -> EXISTS in IDLE ({pairs} pairs)");
        rows.push(Row {
            label: format!("{label}: p50"),
            values: best.iter().map(|m| m.percentile_ms(50.0)).collect(),
            higher_is_better: false,
            unit: "ms",
        });
        rows.push(Row {
            label: format!("{label}: p99"),
            values: best.iter().map(|m| m.percentile_ms(99.0)).collect(),
            higher_is_better: false,
            unit: "ms",
        });
    }
    print_table(targets, &rows);
    for note in idle_notes {
        println!("{note}");
    }
    println!(
        "\n(load {} runs of each scenario per server, alternating, best kept; {:.0} s in all)",
        plan.rounds(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `scenario` on every target, `rounds` times, alternating the order,
/// and keeps each target's run with the highest rate.
async fn best_of<'a, F, Fut>(
    targets: &'a [Target],
    plan: &Plan,
    name: &str,
    scenario: F,
) -> Vec<Measured>
where
    F: Fn(&'a Target) -> Fut,
    Fut: Future<Output = Measured>,
{
    let mut best: Vec<Option<Measured>> = vec![None; targets.len()];
    for round in 0..plan.rounds() {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let measured = scenario(&targets[i]).await;
            eprintln!(
                "{name}: {:<12} {:>9.1}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  ({} ops, {} errors)",
                targets[i].name,
                measured.rate(),
                measured.percentile_ms(50.0),
                measured.percentile_ms(99.0),
                measured.count,
                measured.errors
            );
            if best[i].as_ref().is_none_or(|b| measured.rate() > b.rate()) {
                best[i] = Some(measured);
            }
        }
    }
    best.into_iter().map(Option::unwrap_or_default).collect()
}

fn push_latency_rows(rows: &mut Vec<Row>, label: &str, best: &[Measured]) {
    rows.push(Row {
        label: format!("{label}: rate"),
        values: best.iter().map(Measured::rate).collect(),
        higher_is_better: true,
        unit: "/s",
    });
    for p in [50.0, 99.0] {
        rows.push(Row {
            label: format!("{label}: p{p}"),
            values: best.iter().map(|m| m.percentile_ms(p)).collect(),
            higher_is_better: false,
            unit: "ms",
        });
    }
}

fn idle_note(target: &Target, memory: &IdleMemory) -> String {
    format!(
        "{}: {} idle connections opened in {:.1} s; RSS {:.1} -> {:.1} MiB over {} -> {} processes \
         ({:.1} KiB/conn); PSS {:.1} -> {:.1} MiB ({:.1} KiB/conn)",
        target.name,
        memory.connections,
        memory.opened_in.as_secs_f64(),
        memory.before.rss_kib as f64 / 1024.0,
        memory.after.rss_kib as f64 / 1024.0,
        memory.before.processes,
        memory.after.processes,
        memory.rss_per_connection_kib(),
        memory.before.pss_kib as f64 / 1024.0,
        memory.after.pss_kib as f64 / 1024.0,
        memory.pss_per_connection_kib(),
    )
}

fn print_table(targets: &[Target], rows: &[Row]) {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    print!("\n| Scenario | {} |", names.join(" | "));
    if targets.len() == 2 {
        print!(" ours vs Dovecot |");
    }
    println!();
    print!("|---|{}", "---:|".repeat(names.len()));
    if targets.len() == 2 {
        print!("---:|");
    }
    println!();
    for row in rows {
        print!("| {} |", row.label);
        for value in &row.values {
            print!(" {} {} |", format_value(*value), row.unit);
        }
        if let [ours, theirs] = row.values[..] {
            // Always "how many times better we are": >1 means we win.
            let ratio = if row.higher_is_better {
                ours / theirs
            } else {
                theirs / ours
            };
            print!(" {ratio:.2}× |");
        }
        println!();
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "n/a".to_owned()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
