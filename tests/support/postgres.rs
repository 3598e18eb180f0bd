//! A throwaway PostgreSQL server for integration tests.
//!
//! Each test process (test binary) gets at most one server, started lazily by
//! the first call to [`fresh_database_url`] or [`admin_url`] and shared by all
//! tests in that process; every test asks for its own fresh database on it.
//!
//! * If `TEST_DATABASE_URL` is set (a `postgres://` URL to an existing server
//!   whose user may `CREATE DATABASE`), that server is used and nothing is
//!   started. The databases created there are left behind.
//! * Otherwise a private cluster is created with `initdb` in a fresh temporary
//!   directory and run with `postgres` listening only on a unix socket inside
//!   that directory (no TCP port, so concurrent test binaries cannot clash).
//!
//! Clean-up must also happen when the test process panics or is SIGKILLed, so
//! no destructor or signal handler can do it. Instead a small watcher shell
//! process owns the cluster: it runs `initdb` and `pg_ctl start`, then blocks
//! reading a pipe whose write end only the test process holds (it is never
//! written to). However the test process ends, the kernel closes that pipe;
//! the watcher's read returns EOF and it stops the server and deletes the
//! directory. The watcher runs in its own process group so that terminal
//! Ctrl-C or a runner killing the test's process group does not take it down
//! before it has cleaned up.
//!
//! Everything is synchronous (`std::process`), because `#[tokio::test]` gives
//! every test its own runtime and the shared server must outlive all of them.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Port of the private cluster. It only names the socket file
/// (`<dir>/.s.PGSQL.5432`); there is no TCP listener, so it cannot collide.
const PORT: u16 = 5432;

/// How long `initdb` plus server start-up may take before we give up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh, empty database on the shared test server; returns its URL usable by sqlx,
/// e.g. "postgres://postgres@localhost:5432/t_4242_1a2b3c4d_17?host=/tmp/pgtest-xyz".
#[track_caller] // Panics point at the test, not at this file.
pub fn fresh_database_url() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // The pid and counter make names unique within this process and among
    // concurrent processes on one machine; the random tag keeps them unique on
    // a long-lived TEST_DATABASE_URL server, where pids get reused across runs
    // (and are often identical across CI containers).
    static TAG: OnceLock<u32> = OnceLock::new();
    let tag = *TAG.get_or_init(|| RandomState::new().hash_one(std::process::id()) as u32);

    let server = server();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("t_{}_{tag:08x}_{n}", std::process::id());
    server.psql(&format!("CREATE DATABASE \"{name}\""));
    with_database(&server.create_url, &name)
}

/// The admin URL of the server (database "postgres"), for tests that need superuser access.
#[track_caller]
pub fn admin_url() -> String {
    with_database(&server().create_url, "postgres")
}

/// The shared server. Start-up errors are cached so that a broken setup
/// fails every test quickly with the same message instead of retrying.
#[track_caller]
fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(Server::start) {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

struct Server {
    /// URL `psql` connects to for `CREATE DATABASE`; other URLs are derived
    /// from it by swapping the database name.
    create_url: String,
    /// Whether `create_url` came from TEST_DATABASE_URL (may hold a password,
    /// so it is not echoed in error messages).
    external: bool,
    psql: PathBuf,
    /// The cluster this process started, `None` for an external server.
    /// It keeps the watcher's stdin pipe open for the life of the process;
    /// see the module docs.
    cluster: Option<Cluster>,
}

struct Watcher {
    /// Never written to: its only job is to be closed by the kernel when this
    /// process ends. A static is never dropped, so that is the only way.
    _stdin: ChildStdin,
    _child: Child,
}

impl Server {
    fn start() -> Result<Server, String> {
        if let Some(url) = std::env::var_os("TEST_DATABASE_URL") {
            let url = url
                .into_string()
                .map_err(|_| "TEST_DATABASE_URL is not valid UTF-8".to_string())?;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err("TEST_DATABASE_URL must be a postgres:// URL".to_string());
            }
            // Only the client is needed; take it from a server bindir if one
            // exists, else from PATH.
            let psql = find_bindir(&["psql"])
                .map(|dir| dir.join("psql"))
                .unwrap_or_else(|| PathBuf::from("psql"));
            return Ok(Server {
                create_url: url,
                external: true,
                psql,
                cluster: None,
            });
        }
        start_local_cluster(Listen::SocketOnly).map(Server::local)
    }

    fn local(cluster: Cluster) -> Server {
        Server {
            create_url: cluster.url.clone(),
            external: false,
            psql: cluster.bindir.join("psql"),
            cluster: Some(cluster),
        }
    }

    /// Runs one SQL command as the admin user, panicking with psql's output
    /// if it fails.
    #[track_caller]
    fn psql(&self, sql: &str) {
        let result = Command::new(&self.psql)
            // -X: ignore ~/.psqlrc; ON_ERROR_STOP: fail with a non-zero status.
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.create_url,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output();
        // A match rather than unwrap_or_else, whose closure would hide the
        // caller's location from #[track_caller].
        let output = match result {
            Ok(output) => output,
            Err(e) => panic!(
                "could not run {}: {e}; install the PostgreSQL client \
                 (`apt-get install postgresql-client` on Debian/Ubuntu)",
                self.psql.display()
            ),
        };
        if !output.status.success() {
            let target = if self.external {
                "the TEST_DATABASE_URL server".to_string()
            } else {
                self.create_url.clone()
            };
            panic!(
                "psql `{sql}` on {target} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
}

/// The watcher, run as `sh -c WATCHER_SCRIPT sh <bindir> <dir> <port> <listen>` by the
/// user that owns the cluster. It reports "ready" or what failed as one line
/// on stdout, then blocks in `cat` until stdin reaches EOF (the test process
/// has ended, however it ended), and then cleans up in every case.
///
/// * Server settings are appended to postgresql.conf rather than passed with
///   `pg_ctl -o`, which would add a second layer of shell quoting.
/// * `pg_ctl start -w` waits (up to `-t` seconds) until the server accepts
///   connections, and fails early if the postmaster dies.
/// * SIGPIPE is ignored around the status `echo`: if the test process is
///   already gone, the echo must fail quietly rather than kill the watcher
///   before it has cleaned up.
/// * Shutdown is `-m immediate`, as the data is thrown away anyway; it is
///   harmless when the server never started.
///
/// There are no comments inside the script because `ps` shows all of it.
const WATCHER_SCRIPT: &str = r#"
bin=$1 dir=$2 port=$3 listen=$4
if ! "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C \
        >"$dir/initdb.log" 2>&1; then
    status=initdb-failed
else
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '$listen'
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF
    if "$bin/pg_ctl" start -w -t 30 -D "$dir/data" -l "$dir/server.log" \
            >"$dir/pg_ctl.log" 2>&1; then
        status=ready
    else
        status=start-failed
    fi
fi
trap '' PIPE
echo "$status"
exec >/dev/null
trap - PIPE
cat >/dev/null
"$bin/pg_ctl" stop -D "$dir/data" -m immediate -w -t 30 >/dev/null 2>&1
rm -rf "$dir"
"#;

/// Where a cluster accepts connections besides its unix socket.
#[derive(Debug, Clone, Copy)]
enum Listen {
    /// The unix socket alone, named by `PORT`: nothing to collide with.
    SocketOnly,
    /// Also TCP on 127.0.0.1 at this port, as production reaches its
    /// server: a stopped server then refuses connections rather than
    /// lacking a socket file, which is what clients see in an outage.
    Loopback(u16),
}

impl Listen {
    fn port(self) -> u16 {
        match self {
            Listen::SocketOnly => PORT,
            Listen::Loopback(port) => port,
        }
    }

    fn addresses(self) -> &'static str {
        match self {
            Listen::SocketOnly => "",
            Listen::Loopback(_) => "127.0.0.1",
        }
    }
}

/// A cluster this process started, owned by its watcher.
struct Cluster {
    bindir: PathBuf,
    dir: PathBuf,
    /// The (uid, gid) the cluster runs as, when that is not ours (as root).
    run_as: Option<(u32, u32)>,
    /// The admin URL (database "postgres").
    url: String,
    _watcher: Watcher,
}

impl Cluster {
    /// Runs `pg_ctl <args> -D <data>` as the cluster's owner and waits for it.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut command = Command::new(self.bindir.join("pg_ctl"));
        command
            .args(args)
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"));
        prepare_as_owner(&mut command, self.run_as);
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {} failed ({}): {}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                log_tails(&self.dir, false)
            ))
        }
    }
}

/// A PostgreSQL cluster of one test's own, for tests that stop or restart
/// the server (which the shared one must never be: other tests run on it
/// in parallel). It listens on TCP at 127.0.0.1 on a port of its own, and
/// is removed, like the shared one, however the test process ends; dropping
/// it removes it at once.
pub struct PrivateCluster {
    server: Server,
}

impl PrivateCluster {
    /// Starts the cluster; panics with the reason (or how to install
    /// PostgreSQL) when it cannot.
    #[track_caller]
    pub fn start() -> PrivateCluster {
        match start_local_cluster(Listen::Loopback(free_port())) {
            Ok(cluster) => PrivateCluster {
                server: Server::local(cluster),
            },
            Err(message) => panic!("{message}"),
        }
    }

    /// A fresh, empty database on this cluster.
    #[track_caller]
    pub fn fresh_database_url(&self, name: &str) -> String {
        self.server.psql(&format!("CREATE DATABASE \"{name}\""));
        with_database(&self.server.create_url, name)
    }

    /// The admin URL (database "postgres").
    pub fn admin_url(&self) -> String {
        self.server.create_url.clone()
    }

    fn cluster(&self) -> &Cluster {
        self.server
            .cluster
            .as_ref()
            .expect("a private cluster is always local")
    }

    /// `pg_ctl restart -m fast`: sessions are disconnected, the server
    /// stops after a checkpoint and starts again; returns once it accepts
    /// connections.
    pub fn restart_fast(&self) -> Result<(), String> {
        self.cluster()
            .pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"])
    }

    /// `pg_ctl stop -m fast`, returning once the server is down.
    pub fn stop_fast(&self) -> Result<(), String> {
        self.cluster()
            .pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
    }

    /// `pg_ctl start`, returning once the server accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        self.cluster().pg_ctl(&["start", "-w", "-t", "60"])
    }
}

/// A TCP port nobody listens on right now. Another process could take it
/// before PostgreSQL does; that fails start-up loudly, never silently.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("an ephemeral port on 127.0.0.1")
}

fn start_local_cluster(listen: Listen) -> Result<Cluster, String> {
    const NEEDED: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];
    let bindir = find_bindir(&NEEDED).ok_or_else(|| {
        format!(
            "PostgreSQL server binaries not found ({}): install them with \
             `apt-get install postgresql` (Debian/Ubuntu) or set TEST_DATABASE_URL",
            NEEDED.join(", ")
        )
    })?;

    // PostgreSQL refuses to run as root, so as root the cluster belongs to the
    // `postgres` system user, and its directory must be reachable by that user:
    // use /tmp rather than a TMPDIR that may sit under /root.
    let run_as = if command_output_u32("id", &["-u"])? == 0 {
        let uid = command_output_u32("id", &["-u", "postgres"]).map_err(|e| {
            format!(
                "running as root, and PostgreSQL refuses to run as root, but there is \
                 no `postgres` system user to run it as ({e}); create one or set \
                 TEST_DATABASE_URL"
            )
        })?;
        let gid = command_output_u32("id", &["-g", "postgres"])?;
        Some((uid, gid))
    } else {
        None
    };
    let base = match run_as {
        Some(_) => PathBuf::from("/tmp"),
        None => std::env::temp_dir(),
    };
    // The directory's path goes unescaped into a URL and postgresql.conf, and
    // unix socket paths are limited to 107 bytes (the lock file is longest).
    let fits = |s: &&str| s.len() + "/pgtest-XXXXXX/.s.PGSQL.5432.lock".len() <= 107;
    let base_str = base
        .to_str()
        .filter(|s| is_plain_path(s) && fits(s))
        .ok_or_else(|| {
            format!(
                "temporary directory {} is too long for a unix socket path or has \
                 characters unsafe in a URL; set TMPDIR to a short plain path",
                base.display()
            )
        })?;

    let dir = tempfile::Builder::new()
        .prefix("pgtest-")
        .tempdir_in(base_str)
        .map_err(|e| format!("cannot create a temporary directory in {base_str}: {e}"))?
        // From here on the watcher, not a destructor, removes the directory.
        .keep();
    let dir_str = dir
        .to_str()
        .expect("a plain base directory plus an alphanumeric name is UTF-8")
        .to_string();
    let mut child = spawn_watcher(&bindir, &dir, listen, run_as).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&dir);
    })?;
    let stdin = child
        .stdin
        .take()
        .expect("watcher stdin was configured as piped");
    let stdout = child
        .stdout
        .take()
        .expect("watcher stdout was configured as piped");

    // Read the status line on a helper thread so we can time out: a plain
    // read could block forever if something hangs.
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let status = match receiver.recv_timeout(STARTUP_TIMEOUT) {
        Ok(line) if line.trim().is_empty() => "watcher exited".to_string(),
        Ok(line) => line.trim().to_string(),
        Err(_) => format!("timed out after {STARTUP_TIMEOUT:?}"),
    };
    if status != "ready" {
        // initdb's log is long and only interesting when initdb failed.
        let logs = log_tails(&dir, status == "initdb-failed");
        // Closing the pipe makes the watcher stop whatever runs and delete the
        // directory, so read the logs first. A watcher that died early cannot
        // clean up, so then we do.
        drop(stdin);
        if status == "watcher exited" {
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(format!(
            "could not start a throwaway PostgreSQL in {dir_str} with {} ({status}){logs}",
            bindir.display()
        ));
    }

    let url = match listen {
        Listen::SocketOnly => {
            format!("postgres://postgres@localhost:{PORT}/postgres?host={dir_str}")
        }
        Listen::Loopback(port) => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    };
    Ok(Cluster {
        bindir,
        dir,
        run_as,
        url,
        _watcher: Watcher {
            _stdin: stdin,
            _child: child,
        },
    })
}

/// Starts the watcher (see [`WATCHER_SCRIPT`]) for a cluster in `dir`,
/// running as `run_as` (uid, gid) if given.
fn spawn_watcher(
    bindir: &Path,
    dir: &Path,
    listen: Listen,
    run_as: Option<(u32, u32)>,
) -> Result<Child, String> {
    let watcher_log = File::create(dir.join("watcher.log"))
        .map_err(|e| format!("cannot create {}/watcher.log: {e}", dir.display()))?;
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", WATCHER_SCRIPT, "sh"])
        .arg(bindir)
        .arg(dir)
        .arg(listen.port().to_string())
        .arg(listen.addresses())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(watcher_log);
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {} to postgres: {e}", dir.display()))?;
    }
    prepare_as_owner(&mut command, run_as);
    command
        .spawn()
        .map_err(|e| format!("cannot start the PostgreSQL watcher shell /bin/sh: {e}"))
}

/// Makes `command` run as the cluster's owner, in its own process group
/// (see the module docs), from `/`, and without the caller's PG* variables.
fn prepare_as_owner(command: &mut Command, run_as: Option<(u32, u32)>) {
    command
        // Not under our cwd, which the postgres user may not be able to enter.
        .current_dir("/")
        .process_group(0);
    // Stray PGDATA/PGPORT/... from the caller's environment must not redirect
    // initdb or pg_ctl.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
}

/// The first directory among `pg_config --bindir`, `/usr/lib/postgresql/*/bin`
/// (Debian/Ubuntu layout, highest version first) and PATH that holds all of
/// `programs`. pg_config comes first because it names the installation the
/// user chose; it is checked because Debian's libpq-dev pg_config reports a
/// bindir even when no server is installed.
fn find_bindir(programs: &[&str]) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by(|a, b| b.0.cmp(&a.0));
    candidates.extend(versioned.into_iter().map(|(_, dir)| dir));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| programs.iter().all(|program| dir.join(program).is_file()))
}

/// Runs a command that prints one number (`id -u` and friends).
fn command_output_u32(program: &str, args: &[&str]) -> Result<u32, String> {
    let describe = || format!("`{program} {}`", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            describe(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{} printed no number: {e}", describe()))
}

/// Only characters that need no escaping in a URL query or postgresql.conf.
fn is_plain_path(path: &str) -> bool {
    path.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

/// `url` with its database (the path) replaced by `database`, keeping user,
/// host, port and query (e.g. `?host=/socket/dir`). A `dbname=` query
/// parameter would override the path, so TEST_DATABASE_URL should not use one.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .expect("database URLs were checked to contain `://`");
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    format!("{scheme}://{authority}/{database}{}", &after[path_end..])
}

/// The last lines of the cluster's log files, for start-up error messages.
fn log_tails(dir: &Path, with_initdb: bool) -> String {
    const LINES: usize = 20;
    let mut out = String::new();
    for name in ["watcher.log", "initdb.log", "pg_ctl.log", "server.log"] {
        if name == "initdb.log" && !with_initdb {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            continue;
        }
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        out.push_str(&format!("\n--- {} (last {} lines) ---\n", name, tail.len()));
        out.push_str(&tail.join("\n"));
    }
    out
}
