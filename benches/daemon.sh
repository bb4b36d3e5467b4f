#!/usr/bin/env bash
# Steady-state CPU and memory of `gazette run` with a corpus of feeds served
# on loopback (with ETags: after the first fetch, nearly every poll is a 304).
#
# usage: benches/daemon.sh [CORPUS_DIR=bench-corpus/c2000] [SECONDS=600] [INTERVAL=5m]
# (make the corpus with ../shared/bench/gen_corpus.py)
# Measures from the end of the first round of fetches, sampling the process's
# own CPU time and RSS from /proc every 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-bench-corpus/c2000}
duration=${2:-600}
interval=${3:-5m}
addr=127.0.0.1:18474
http=127.0.0.1:18475
cargo build --release --quiet --bin gazette --example serve_dir
work=$(mktemp -d)
srv="" run=""
cleanup() {
    [ -n "$run" ] && kill "$run" 2>/dev/null
    [ -n "$srv" ] && kill "$srv" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

. benches/corpus.sh
start_corpus_server "$corpus" "$addr"
corpus_config "$work" "$corpus" "$addr" \
    "$(printf 'poll_interval = "%s"\nmin_interval = "%s"\n[http]\nlisten = "%s"\n[publish]\ndir = "%s/public"' \
        "$interval" "$interval" "$http" "$work")" > "$work/feeds.toml"
feeds=$(grep -c '^\[\[feeds\]\]' "$work/feeds.toml")

target/release/gazette --config "$work/feeds.toml" run 2>"$work/run.log" &
run=$!
fetches() {
    curl -s "http://$http/metrics" | awk '/^gazette_fetch_duration_seconds_count/ {print $2}'
}
t0=$(date +%s)
until [ "$(fetches || echo 0)" -ge "$feeds" ] 2>/dev/null; do sleep 1; done
echo "first round: $feeds feeds fetched in $(( $(date +%s) - t0 )) s"

hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$run/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$run/status"; }
start_cpu=$(cpu) start=$(date +%s.%N) start_fetches=$(fetches)
max_rss=0
echo "| t (s) | CPU % since start | RSS MB | fetches |"
echo "|---|---|---|---|"
for _ in $(seq $(( duration / 30 ))); do
    sleep 30
    now=$(date +%s.%N) c=$(cpu) r=$(rss) f=$(fetches)
    [ "$r" -gt "$max_rss" ] && max_rss=$r
    awk -v c="$c" -v c0="$start_cpu" -v hz="$hz" -v t="$now" -v t0="$start" -v r="$r" -v f="$f" -v f0="$start_fetches" \
        'BEGIN { printf "| %.0f | %.2f | %.1f | %d |\n", t - t0, 100 * (c - c0) / hz / (t - t0), r / 1024, f - f0 }'
done
echo "max RSS: $(( max_rss / 1024 )) MB"
curl -s "http://$http/metrics" | grep '^gazette_fetches_total'
