#!/usr/bin/env bash
# imap-server against Dovecot, on this machine, in one run, on the same data.
#
#   bench/compare.sh            20 users x 2,000 messages, every scenario twice per server
#   bench/compare.sh --quick    5 users x 500 messages, shorter scenarios, once each
#   bench/compare.sh [--quick] --only 1,2   extra options go to `imap-load compare`
#   BENCH_PERF=/tmp/perf.data bench/compare.sh --quick --only 2   with a system-wide profile
#   bench/compare.sh --stress [--sessions 10] [--seconds 30] [--seed N] [--checkpoint-seconds 5] [--rawlog DIR]
#       instead of the performance scenarios, the stress scenario (`imap-load stress`):
#       10 sessions of one user on one INBOX, random commands checked against a model
#       of the mailbox, on our server and then on Dovecot, each report in turn. The
#       user (stress@bench.test) is only for this; its INBOX is filled with the same
#       50 small messages on both servers first. No corpus is loaded (--quick changes
#       nothing here). Exits with status 1 if either server showed a contradiction
#       or a BAD answer. --rawlog DIR keeps every session's traffic in
#       DIR/imap-server/session-N.log and DIR/Dovecot/session-N.log.
#
# Starts, on 127.0.0.1 only and in a temporary directory: a throwaway
# PostgreSQL cluster (unix socket, no TCP), imap-server on it, and Dovecot
# (Debian's dovecot-imapd, installed if missing) with a passwd-file and
# Maildir storage. Both get the same users, passwords (our IMAP tokens) and
# generated corpus. Everything it starts, it stops, and the directory goes.
# Needs root (PostgreSQL runs as the `postgres` user, Dovecot as `nobody`).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

quick=
users=20
messages=2000
stress=
stress_args=()
rawlog=
compare_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=--quick; users=5; messages=500 ;;
        --stress) stress=1 ;;
        --sessions|--seconds|--seed|--checkpoint-seconds)
            [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
            stress_args+=("$1" "$2"); shift ;;
        --rawlog)
            [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
            rawlog=$(realpath -m "$2"); shift ;;
        *) compare_args+=("$1") ;;
    esac
    shift
done
if [ -n "$stress" ]; then
    [ ${#compare_args[@]} -eq 0 ] || { echo "--stress takes no options for imap-load compare: ${compare_args[*]}" >&2; exit 2; }
    # The stress scenario needs only its own user, not the corpus.
    users=0
    stress_user=stress@bench.test
    stress_address=stressbox@bench.test
    # Both servers get the same random choices.
    case " ${stress_args[*]} " in *" --seed "*) ;; *) stress_args+=(--seed "$RANDOM$RANDOM") ;; esac
else
    [ ${#stress_args[@]} -eq 0 ] || { echo "${stress_args[0]} is an option of --stress" >&2; exit 2; }
    [ -z "$rawlog" ] || { echo "--rawlog is an option of --stress" >&2; exit 2; }
fi
ours_port=${BENCH_OURS_PORT:-21143}
dovecot_port=${BENCH_DOVECOT_PORT:-21144}

[ "$(id -u)" = 0 ] || { echo "compare.sh needs root (PostgreSQL and Dovecot run as other users)" >&2; exit 1; }
# 10,000 idle connections need 10,000 descriptors in the server and in the generator.
ulimit -n "$(ulimit -Hn)"

install_if_missing() {
    if ! command -v "$1" >/dev/null; then
        echo "installing $2"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    fi
}
install_if_missing dovecot dovecot-imapd
install_if_missing psql postgresql
pg_bin=$(pg_config --bindir 2>/dev/null || true)
[ -x "$pg_bin/initdb" ] || pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

echo "== building (release)"
cargo build --release -q -p imap-server -p imap-bench --bins
server=$PWD/target/release/imap-server
load=$PWD/target/release/imap-load

. bench/workdir.sh compare

wait_for_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

echo "== PostgreSQL (throwaway cluster in $work/pg)"
start_postgres
export RUST_LOG=warn
"$server" migrate >/dev/null

echo "== users, tokens and addresses ($users)"
accounts=$work/accounts
: >"$accounts"
"$load" users --users "$users" | while read -r user address; do
    "$server" admin users add "$user" --status active >/dev/null
    token=$("$server" admin tokens create "$user" --never | sed -n 's/^token: *//p')
    [ -n "$token" ] || { echo "no token printed for $user" >&2; exit 1; }
    "$server" admin inboxes add "$user" "$address" >/dev/null
    echo "$user $token" >>"$accounts"
done
if [ -n "$stress" ]; then
    "$server" admin users add "$stress_user" --status active >/dev/null
    stress_token=$("$server" admin tokens create "$stress_user" --never | sed -n 's/^token: *//p')
    [ -n "$stress_token" ] || { echo "no token printed for $stress_user" >&2; exit 1; }
    "$server" admin inboxes add "$stress_user" "$stress_address" >/dev/null
fi

mkdir -p "$work/mail"
if [ -z "$stress" ]; then
    echo "== corpus ($users users x $messages messages) into PostgreSQL and Maildirs"
    "$load" corpus --users "$users" --messages "$messages" --maildir "$work/mail" --pg-copy - |
        psql_bench -d bench -c 'COPY emails (mailbox_owner, subject, from_addr, to_addrs, timestamp, size, raw) FROM STDIN'
    psql_bench -d bench -c 'VACUUM ANALYZE'
else
    # An empty home: Dovecot creates the Maildir at the first login.
    mkdir -p "$work/mail/$stress_user"
fi
chown -R nobody:nogroup "$work/mail"

echo "== Dovecot $(dovecot --version | cut -d' ' -f1)"
mkdir -p "$work/dovecot"
{
    while read -r user token; do
        echo "$user:{PLAIN}$token::::::"
    done <"$accounts"
    [ -z "$stress" ] || echo "$stress_user:{PLAIN}$stress_token::::::"
} >"$work/dovecot/passwd"
cat >"$work/dovecot/dovecot.conf" <<EOF
# Generated by bench/compare.sh: plain IMAP on loopback, Maildir, passwd-file.
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
instance_name = imap-bench-$$
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = $work/dovecot/log
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/dovecot/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/mail/%u
}
# Dovecot's high-performance login mode (a few login processes serving
# every connection), and room for the idle-connection scenario.
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $dovecot_port
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
  process_min_avail = $(nproc)
  client_limit = 4000
}
service imap {
  process_limit = 3000
}
service anvil {
  client_limit = 8000
}
service auth {
  client_limit = 8000
}
protocol imap {
  mail_max_userip_connections = 10000
}
EOF
dovecot -F -c "$work/dovecot/dovecot.conf" &
dovecot_pid=$!
pids+=("$dovecot_pid")

echo "== imap-server"
# Errors only: under load sqlx warns about every slow statement.
RUST_LOG=error IMAP_BIND=127.0.0.1:$ours_port IMAP_MAX_CONNECTIONS=20000 IMAP_MAX_CONNECTIONS_PER_IP=0 "$server" serve &
ours_pid=$!
pids+=("$ours_pid")
wait_for_port "$dovecot_port"
wait_for_port "$ours_port"

# BENCH_PERF=FILE: record a system-wide profile (perf) while the load runs.
if [ -n "${BENCH_PERF:-}" ]; then
    perf record -a -F 499 -o "$BENCH_PERF" -q &>/dev/null &
    pids+=("$!")
fi
echo "== load ($(nproc) cores; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
status=0
if [ -n "$stress" ]; then
    stress_on() { # NAME PORT
        local log=()
        [ -z "$rawlog" ] || log=(--rawlog "$rawlog/$1")
        "$load" stress --name "$1" --server "127.0.0.1:$2" --user "$stress_user" --password "$stress_token" \
            --mailbox INBOX --fill 50 "${stress_args[@]}" "${log[@]}" || status=1
    }
    stress_on imap-server "$ours_port"
    stress_on Dovecot "$dovecot_port"
else
    "$load" compare --accounts "$accounts" \
        --ours "127.0.0.1:$ours_port" --ours-pid "$ours_pid" \
        --dovecot "127.0.0.1:$dovecot_port" --dovecot-pid "$dovecot_pid" \
        $quick "${compare_args[@]}"
fi
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "compare.sh took $((SECONDS - started)) s"
exit "$status"
