#!/usr/bin/env bash
# The measurements of docs/SCALING.md, on this machine, in one run.
#
#   bench/scaling/run.sh            10,000 users, 100,000 addresses, 1,000,000 messages
#   USERS=1000 ADDRESSES=10000 MESSAGES=100000 bench/scaling/run.sh   smaller
#   RUN_SECONDS=10 (each pgbench and APPEND run), IDLE_SESSIONS="0 1000 4000",
#   DELIVERIES=2000 (per fan-out measurement) change the rest.
#
# Starts, in a temporary directory and on 127.0.0.1 only: a throwaway
# PostgreSQL cluster (default settings but shared_buffers, fsync on) and
# imap-server (release build) on it. Then:
#   1. fill.sql: users, addresses and messages through the deployment's path
#      (plain INSERT, triggers), timed per batch of 100,000 messages;
#   2. sizes.sql: every table and index, per row and per million rows;
#   3. explain.sql: the server's most frequent statements, EXPLAIN ANALYZE;
#   4. pgbench: single-row deliveries (deliver.pgbench) with the triggers,
#      with the triggers but no NOTIFY (no_notify.sql), and with no trigger,
#      on 1 and 4 connections;
#   5. APPEND through the server (imap_sessions.py append), 1 and 4 sessions;
#   6. the server's CPU time per delivery while N sessions of other users
#      idle (imap_sessions.py idle), for each N in IDLE_SESSIONS, and with
#      one session that shows the mailbox delivered to.
# Everything it starts, it stops, and the directory goes. Needs root
# (PostgreSQL runs as the `postgres` user), python3 and PostgreSQL's
# binaries (pgbench included: Debian's postgresql package has it).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS

users=${USERS:-10000}
addresses=${ADDRESSES:-100000}
messages=${MESSAGES:-1000000}
run_seconds=${RUN_SECONDS:-10}
idle_sessions=${IDLE_SESSIONS:-"0 1000 4000"}
deliveries=${DELIVERIES:-2000}
port=${BENCH_OURS_PORT:-21145}
here=bench/scaling

[ "$(id -u)" = 0 ] || { echo "run.sh needs root (PostgreSQL runs as postgres)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
pg_bin=$(pg_config --bindir 2>/dev/null || true)
[ -x "$pg_bin/pgbench" ] || pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)")

echo "== building imap-server (release)"
cargo build --release -q -p imap-server --bins
server=$PWD/target/release/imap-server

. bench/workdir.sh scaling

echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') (throwaway cluster in $work/pg)"
start_postgres max_connections=200
RUST_LOG=warn "$server" migrate >/dev/null

echo "== 1. fill: $users users, $addresses addresses, $messages messages"
psql_bench -d bench -v users="$users" -v addresses="$addresses" -v messages="$messages" \
    -f "$here/fill.sql" | grep -E '^(Time|addresses|messages)'

echo "== 2. sizes"
psql_bench -d bench -f "$here/sizes.sql"

echo "== 3. EXPLAIN ANALYZE"
user_id=$(psql_bench -d bench -At -c "SELECT md5('u1')::uuid")
psql_bench -d bench -v user="$user_id" -v address=box1@bench.test -f "$here/explain.sql" |
    grep -E '^==|Execution Time|Trigger emails'

echo "== 4. pgbench: single-row deliveries, $run_seconds s each"
psql_bench -d bench -At -c "SELECT pg_get_functiondef('imap_assign_uid'::regproc) || ';'" >"$work/assign_uid.sql"
deliveries_with() { # VARIANT CLIENTS
    local tps
    tps=$("$pg_bin/pgbench" -n -h "$work/pg" -U postgres -f "$here/deliver.pgbench" -D addresses="$addresses" \
        -c "$2" -j "$2" -T "$run_seconds" bench 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    printf '%-28s %2s connections: %8s deliveries/s\n' "$1" "$2" "$tps"
}
for clients in 1 4; do
    deliveries_with "triggers (as deployed)" "$clients"
    psql_bench -d bench -f "$here/no_notify.sql"
    deliveries_with "triggers without NOTIFY" "$clients"
    psql_bench -d bench -c 'ALTER TABLE emails DISABLE TRIGGER emails_assign_uid'
    deliveries_with "no trigger at all" "$clients"
    psql_bench -d bench -c 'ALTER TABLE emails ENABLE TRIGGER emails_assign_uid'
    psql_bench -d bench -f "$work/assign_uid.sql"
done
echo "fsync on this disk (pg_test_fsync, fdatasync, one 8 kB write):"
"$pg_bin/pg_test_fsync" -s 2 -f "$work/fsync.test" 2>/dev/null | grep -m1 -E '^ +fdatasync' || true

echo "== imap-server"
RUST_LOG=error IMAP_BIND=127.0.0.1:$port IMAP_MAX_CONNECTIONS=20000 IMAP_MAX_CONNECTIONS_PER_IP=0 \
    "$server" serve &
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

echo "== 5. APPEND through the server, $run_seconds s each"
for connections in 1 4; do
    printf '%2s sessions: ' "$connections"
    python3 "$here/imap_sessions.py" append --server "127.0.0.1:$port" \
        --connections "$connections" --seconds "$run_seconds"
done

echo "== 6. the server's CPU time per delivery (plain INSERT for u1's box1) while N sessions idle"
ticks_per_second=$(getconf CLK_TCK)
server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
# N sessions of users u2.. (none shows box1: the cost of telling sessions
# that do not care), then one session of u1 (the cost of the refresh).
for run in $(for n in $idle_sessions; do echo "$n:2"; done) 1:1; do
    n=${run%:*} first=${run#*:}
    coproc holder { python3 "$here/imap_sessions.py" idle --server "127.0.0.1:$port" --sessions "$n" --first "$first"; }
    read -r ready count <&"${holder[0]}"
    [ "$ready" = ready ] || { echo "idle sessions did not start: $ready $count" >&2; exit 1; }
    sleep 2
    # What N idle sessions cost with nothing delivered, over 5 s.
    before=$(server_cpu_ticks); sleep 5; idle_ticks=$(( $(server_cpu_ticks) - before ))
    for i in $(seq "$deliveries"); do
        echo "INSERT INTO emails (mailbox_owner, subject, from_addr, body) VALUES ('box1@bench.test', 'fan-out $i', 'sender@example.org', 'hi');"
    done >"$work/deliveries.sql"
    before=$(server_cpu_ticks); begun=$(date +%s.%N)
    psql_bench -d bench -f "$work/deliveries.sql" >/dev/null
    sleep 1 # let the last notifications arrive
    wall=$(echo "$(date +%s.%N) - $begun" | bc)
    ticks=$(( $(server_cpu_ticks) - before ))
    exec {holder[1]}>&-
    read -r _ exists <&"${holder[0]}" || exists=?
    wait "$holder_PID" 2>/dev/null || true
    label="$n idle sessions of other users"
    [ "$first" = 2 ] || label="$n idle session showing box1"
    echo "$label: $(echo "scale=3; ($ticks - $idle_ticks * $wall / 5) * 1000 / $ticks_per_second / $deliveries" | bc) ms of server CPU per delivery" \
        "($deliveries deliveries in $(printf '%.1f' "$wall") s; $exists EXISTS sent; idle cost $idle_ticks ticks per 5 s)"
done

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run.sh took $((SECONDS - started)) s"
