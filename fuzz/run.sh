#!/usr/bin/env bash
# Runs the fuzz targets, one at a time.
#
#   fuzz/run.sh                  every target, 30 minutes each
#   fuzz/run.sh mime             one target, 30 minutes
#   fuzz/run.sh mime 120         one target, 120 seconds
#   fuzz/run.sh all 120          every target, 120 seconds each
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes
# nightly-only flags to rustc; on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# them through, and `-s none` turns off AddressSanitizer, which stable
# cannot build (our code is safe Rust, so panics are what we look for).
# Builds use one job (CARGO_BUILD_JOBS=1): the machine has two cores.
#
# Each target's corpus grows in fuzz/corpus/<target> (not committed),
# started from the committed seeds in fuzz/seeds/<target>. Crashes land in
# fuzz/artifacts/<target>/; minimise one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s none -O -a <target> <artifact>
set -euo pipefail

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

target="${1:-all}"
seconds="${2:-1800}"
flags=(-s none -O -a)

if [ "$target" = all ]; then
    targets=$(cargo fuzz list)
else
    targets="$target"
fi

cargo fuzz build "${flags[@]}"
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== $t for ${seconds}s"
    # -rss_limit_mb: a message of a few KB must not need gigabytes.
    cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
