#!/usr/bin/env bash
# `gazette poll` of a corpus served on loopback: from an empty store, again
# when every feed answers 304, and again when feeds answer 200 with
# unchanged items (no validators).
#
# usage: benches/poll.sh [CORPUS_DIR=bench-corpus/c2000] [COPIES=1]
# (make the corpus with ../shared/bench/gen_corpus.py). COPIES > 1 lists
# every corpus file that many times under different URLs (10,000 feeds from
# the 2,000-feed corpus with COPIES=5). GAZETTE=path/to/binary measures
# another build (an earlier commit's) on the same corpus. PG_URL=postgres://
# user@host:port stores into a fresh PostgreSQL database on that server
# (gazette_bench_poll) and adds the server's CPU time (every postgres
# process, and the backends that ended) to each row.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-bench-corpus/c2000}
copies=${2:-1}
gazette=${GAZETTE:-target/release/gazette}
addr=127.0.0.1:18473
cargo build --release --quiet --bin gazette --example serve_dir
work=$(mktemp -d)
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

. benches/corpus.sh
start_server() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null || true
    start_corpus_server "$corpus" "$addr" "$@"
}

corpus_config "$work" "$corpus" "$addr" "" "$copies" > "$work/feeds.toml"
if [ -n "${PG_URL:-}" ]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS gazette_bench_poll" -c "CREATE DATABASE gazette_bench_poll"
    export GAZETTE_DATABASE_URL="$PG_URL/gazette_bench_poll"
fi
# CPU seconds of the PostgreSQL server so far (0 without PG_URL).
pg_cpu() {
    [ -n "${PG_URL:-}" ] || { echo 0; return; }
    local main ticks=0
    main=$(pgrep -o -x postgres)
    for p in $(pgrep -x postgres); do
        ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    ticks=$((ticks + $(awk '{print $16 + $17}' "/proc/$main/stat")))
    echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc
}
feeds=$(grep -c '^\[\[feeds\]\]' "$work/feeds.toml")

run() {
    local label=$1 pg0 pg1
    pg0=$(pg_cpu)
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
        "$gazette" --config "$work/feeds.toml" poll > "$work/out" 2>/dev/null
    pg1=$(pg_cpu)
    read -r wall user sys rss < "$work/time"
    summary=$(tail -n 1 "$work/out")
    printf '| %s | %s | %s | %.2f | %.2f | %.0f | %s | %s |\n' "$label" "$feeds" "$wall" \
        "$(echo "$user + $sys" | bc)" "$(echo "$pg1 - $pg0" | bc)" "$(echo "$rss / 1024" | bc)" \
        "$(echo "scale=0; $feeds / $wall" | bc)" "$summary"
}

echo "bare parse of the same files, one core: $(cargo bench --quiet --bench ingest -- "$corpus" 1 --baselines 2>/dev/null | tail -n 1)"
echo
echo "| poll | feeds | wall s | CPU s | database server CPU s | peak RSS MB | feeds/s | summary |"
echo "|---|---|---|---|---|---|---|---|"
start_server
run "empty store, all 200"
run "again, all 304"
start_server --no-validators
run "again, 200 with unchanged items"
