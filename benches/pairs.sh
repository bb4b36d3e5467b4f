#!/usr/bin/env bash
# Empty-store `gazette poll` of a corpus served on loopback, several
# binaries interleaved round after round (the machine's drift falls on all
# of them alike): wall and CPU seconds, peak RSS and involuntary context
# switches of each run. Compare medians.
#
# usage: benches/pairs.sh ROUNDS [CORPUS_DIR=bench-corpus/c2000] -- BINARY...
# e.g. benches/pairs.sh 6 -- /tmp/gazette-old target/release/gazette
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
shift
corpus=bench-corpus/c2000
if [ "${1:-}" != "--" ]; then corpus=$1; shift; fi
[ "${1:-}" = "--" ] && shift
addr=127.0.0.1:18473
cargo build --release --quiet --example serve_dir
. benches/corpus.sh
work=$(mktemp -d)
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
corpus_config "$work" "$corpus" "$addr" "" 1 > "$work/feeds.toml"
start_corpus_server "$corpus" "$addr"
for r in $(seq "$rounds"); do
    for b in "$@"; do
        rm -f "$work"/bench.db*
        /usr/bin/time -f "%e %U %S %M %c" -o "$work/time" "$b" --config "$work/feeds.toml" poll > "$work/out" 2>/dev/null
        read -r wall user sys rss cs < "$work/time"
        echo "$r $b wall=$wall cpu=$(echo "$user + $sys" | bc) rss_mb=$((rss / 1024)) involuntary_switches=$cs $(tail -n 1 "$work/out")"
    done
done
