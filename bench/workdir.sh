# Sourced by bench/compare.sh and bench/scaling/run.sh, from the repository
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
