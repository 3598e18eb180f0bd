#!/usr/bin/env bash
# What one flag change costs the sessions watching a mailbox: a 10,000-
# message mailbox on PostgreSQL, SESSIONS (100) sessions idling on it, one
# writer toggling a flag CHANGES (40) times (sessions.py measures).
#
#   bench/refresh/run.sh [SERVER_BINARY ...]
#
# With no argument, builds and measures this checkout's release binary;
# given binaries (say, one built from an older commit), measures each on the
# same data, each on a fresh database. Needs root (PostgreSQL runs as postgres) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
sessions=${SESSIONS:-100}
changes=${CHANGES:-40}
messages=${MESSAGES:-10000}
port=${BENCH_OURS_PORT:-21146}
[ "$(id -u)" = 0 ] || { echo "run.sh needs root (PostgreSQL runs as postgres)" >&2; exit 1; }
pg_bin=$(pg_config --bindir 2>/dev/null || true)
[ -x "$pg_bin/initdb" ] || pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
if [ $# -eq 0 ]; then
    cargo build --release -q -p imap-server --bins
    set -- "$PWD/target/release/imap-server"
fi

. bench/workdir.sh refresh
start_postgres
export RUST_LOG=warn
echo "== $messages messages in box@bench.test; $sessions sessions idle on it; $changes flag changes"
for server in "$@"; do
    # A database of its own for each binary: each migrates it its way.
    psql_bench -d postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench'
    "$server" migrate >/dev/null
    "$server" admin users add watcher@bench.test --status active >/dev/null
    token=$("$server" admin tokens create watcher@bench.test --never | sed -n 's/^token: *//p')
    "$server" admin domains add bench.test --owner watcher@bench.test >/dev/null
    "$server" admin inboxes add watcher@bench.test box@bench.test >/dev/null
    psql_bench -d bench -c "INSERT INTO emails (mailbox_owner, subject, body, from_addr, to_addrs)
        SELECT 'box@bench.test', 'message ' || n, 'Hello ' || n, 'sender@example.org', 'box@bench.test'
        FROM generate_series(1, $messages) n"
    # Statistics as a running deployment has them (autovacuum's ANALYZE):
    # without, the planner guesses, and the numbers depend on when it ran.
    psql_bench -d bench -c 'VACUUM ANALYZE'
    IMAP_BIND=127.0.0.1:$port IMAP_MAX_CONNECTIONS_PER_IP=0 "$server" serve &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    echo "-- $server ($("$server" --version))"
    python3 bench/refresh/sessions.py --server "127.0.0.1:$port" --user watcher@bench.test \
        --token "$token" --mailbox box@bench.test --sessions "$sessions" --changes "$changes" --pid "$pid"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
done
