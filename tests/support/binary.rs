//! The `imap-server` binary as an operator runs it: a clean environment,
//! a working directory of the test's own (where the embedded SQLite
//! default, `data/imap-server.db`, is created).

use std::path::Path;
use std::process::{Command, Stdio};

pub const BINARY: &str = env!("CARGO_BIN_EXE_imap-server");

/// The binary with a clean environment (no stray DATABASE_URL) in `dir`.
pub fn imap_server(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null());
    command
}

/// Runs an admin (or any other short) command in `dir`; its standard output.
pub fn admin(dir: &Path, args: &[&str]) -> String {
    let output = imap_server(dir, &[], args)
        .output()
        .expect("run imap-server");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The token in `admin tokens create`'s output.
pub fn printed_token(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("the token is printed")
        .to_owned()
}

/// An active user `email` with a token valid for `days`, through the admin
/// commands; returns the token.
pub fn user_with_token(dir: &Path, email: &str, days: &str) -> String {
    admin(dir, &["admin", "users", "add", email, "--status", "active"]);
    let created = admin(dir, &["admin", "tokens", "create", email, "--days", days]);
    printed_token(&created)
}
