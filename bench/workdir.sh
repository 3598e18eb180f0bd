# Sourced by bench/compare.sh, bench/scaling/run.sh and bench/refresh/run.sh, from the repository
# root, as `. bench/workdir.sh NAME`: makes the temporary directory $work
# (/tmp/imap-NAME.XXXXXX) and, on any exit, stops the processes listed in
# $pids (TERM, then KILL after 5 s), the PostgreSQL cluster in
# $work/pg/data if one runs (with $pg_bin's pg_ctl), and removes $work.
work=$(mktemp -d "/tmp/imap-$1.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
    set +e
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    [ -f "$work/pg/data/postmaster.pid" ] &&
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# start_postgres [OPTION ...]: a throwaway cluster in $work/pg (needs
# $pg_bin), listening on a unix socket there only, with default settings
# except shared_buffers (and the postgres -c OPTIONs given); fsync stays on,
# as Dovecot's mail_fsync=optimized does. Creates the database `bench`,
# exports DATABASE_URL for it and defines psql_bench.
start_postgres() {
    local options="-k $work/pg -c listen_addresses= -p 5432 -c shared_buffers=512MB"
    for option in "$@"; do options+=" -c $option"; done
    mkdir -p "$work/pg"
    chown postgres "$work/pg"
    runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >/dev/null
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "$options" start >/dev/null
    psql_bench -d postgres -c 'CREATE DATABASE bench'
    export DATABASE_URL="postgres://postgres@localhost:5432/bench?host=$work/pg"
}
psql_bench() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/pg" -U postgres "$@"; }
