#!/usr/bin/env bash
# Several `gazette run` instances on one PostgreSQL database: 1, 2 and 3
# instances on the 2,000-feed corpus listed 5 times (10,000 feeds), 60 s
# interval, SECONDS each (default 300). The loopback server logs every
# request; from it: fetches per feed per interval, fetches closer together
# than half an interval (a feed fetched twice), and with 3 instances the
# takeover after one is killed with SIGKILL half-way (the longest gap
# between two fetches of one feed across the kill, minus the interval).
#
# The corpus's RSS feeds say <ttl>60</ttl> (minutes), which gazette honours:
# they are counted apart (at most one fetch each in a run); the Atom feeds
# have no hint and are due every 60 s.
#
# usage: PG_URL=postgres://postgres@127.0.0.1:5432 benches/instances.sh [CORPUS=bench-corpus/c2000] [SECONDS=300]
# GAZETTE=path/to/binary measures another build. KEEP_DB=1 reuses the
# database a previous run left (and leaves it): the first poll of 10,000
# feeds into PostgreSQL takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-bench-corpus/c2000}
duration=${2:-300}
pg=${PG_URL:?set PG_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432}
gazette=${GAZETTE:-target/release/gazette}
addr=127.0.0.1:18476
db=gazette_bench_instances
[ -n "${GAZETTE:-}" ] || cargo build --release --quiet --bin gazette
cargo build --release --quiet --example serve_dir
work=$(mktemp -d)
srv="" pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    [ -n "$srv" ] && kill "$srv" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

[ -n "${KEEP_DB:-}" ] || psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export GAZETTE_DATABASE_URL="$pg/$db"

. benches/corpus.sh
start_corpus_server "$corpus" "$addr" --log "$work/requests.log"
corpus_config "$work" "$corpus" "$addr" \
    "$(printf 'poll_interval = "60s"\nmin_interval = "60s"\n[publish]\ndir = "%s/public"' "$work")" 5 \
    > "$work/feeds.toml"
feeds=$(grep -c '^\[\[feeds\]\]' "$work/feeds.toml")

# The store filled and every validator known: the runs measure the steady state.
[ -n "${KEEP_DB:-}" ] || /usr/bin/time -f "%e s wall, %U+%S s CPU, %M KB" "$gazette" --config "$work/feeds.toml" poll 2>&1 >/dev/null | tail -n 1 |
    sed 's/^/first poll into PostgreSQL: /'

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks
tck=$(getconf CLK_TCK)

echo
echo "| instances | feeds | seconds | Atom feeds: fetches per feed per 60 s | RSS feeds (ttl 60 min): most fetches of one | feeds fetched twice within 30 s | CPU s per instance | takeover after kill -9 |"
echo "|---|---|---|---|---|---|---|---|"
for n in 1 2 3; do
    : > "$work/requests.log"
    pids=""
    for i in $(seq "$n"); do
        "$gazette" --config "$work/feeds.toml" run --listen "127.0.0.1:$((18480 + i))" \
            > "$work/run$i.log" 2>&1 &
        pids="$pids $!"
    done
    start=$(date +%s%3N)
    kill_at=""
    cpus=""
    if [ "$n" = 3 ]; then
        sleep $((duration / 2))
        victim=${pids##* }
        cpus="$(cpu "$victim")"
        kill -9 "$victim"
        kill_at=$(date +%s%3N)
        sleep $((duration - duration / 2))
    else
        sleep "$duration"
    fi
    end=$(date +%s%3N)
    for p in $pids; do
        [ -d "/proc/$p" ] && cpus="$cpus $(cpu "$p")"
        kill -TERM "$p" 2>/dev/null || true
    done
    wait $pids 2>/dev/null || true
    pids=""
    sleep 2 # the server's log is flushed every second
    python3 - "$work/requests.log" "$start" "$end" "$feeds" "$n" "${kill_at:-0}" "$tck" "$cpus" <<'EOF'
import sys
from collections import defaultdict
log, start, end, feeds, n, kill_at, tck = sys.argv[1], *map(int, sys.argv[2:8])
cpus = [int(c) / tck for c in sys.argv[8].split()]
times = defaultdict(list)
for line in open(log):
    ms, uri, status = line.split()
    times[uri].append(int(ms))
# The first interval is the catch-up of feeds due while no instance ran.
lo = start + 60_000
atom = {u: ts for u, ts in times.items() if "/atom_" in u}
rss = {u: ts for u, ts in times.items() if "/rss_" in u}
fetches = sum(sum(1 for t in ts if lo <= t <= end) for ts in atom.values())
per = fetches / ((feeds // 2) * (end - lo) / 60_000)
rss_most = max((len(ts) for ts in rss.values()), default=0)
twice = sum(1 for ts in times.values()
            if any(b - a < 30_000 for a, b in zip(sorted(ts), sorted(ts)[1:]) if a >= lo))
take = "—"
if kill_at:
    gaps = [b - a for ts in times.values() for a, b in zip(sorted(ts), sorted(ts)[1:])
            if a <= kill_at <= b]
    take = f"{(max(gaps) - 60_000) / 1000:.1f} s (longest gap {max(gaps) / 1000:.1f} s)"
print(f"| {n} | {feeds} | {(end - start) / 1000:.0f} | {per:.3f} | {rss_most} | {twice} | "
      f"{' / '.join(f'{c:.1f}' for c in cpus)} | {take} |")
EOF
done
[ -n "${KEEP_DB:-}" ] || psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db"
