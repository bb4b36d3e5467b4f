# Shared by benches/poll.sh and benches/daemon.sh (sourced, not run).

# Starts examples/serve_dir on CORPUS at ADDR (extra arguments passed on) and
# waits for it; its pid goes to $srv.
start_corpus_server() {
    local corpus=$1 addr=$2
    shift 2
    target/release/examples/serve_dir "$corpus" "$addr" "$@" 2>/dev/null &
    srv=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://$addr/none" && return
        sleep 0.1
    done
    echo "server did not start" >&2
    exit 1
}

# Prints a feeds.toml with a database in WORK, every feed of CORPUS served at
# ADDR (COPIES times, under different URLs: the server ignores the query),
# EXTRA (TOML lines) before the feeds, and the shipped feeds.toml's tag rules
# after them (tagging is part of the work of every poll).
corpus_config() {
    local work=$1 corpus=$2 addr=$3 extra=${4:-} copies=${5:-1}
    printf 'title = "bench"\nsite_url = "http://127.0.0.1/"\ndatabase = "sqlite://%s/bench.db"\n' "$work"
    printf '%s\n' "$extra"
    printf '[fetch]\nconcurrency = 32\nper_host = 32\ntimeout = "120s"\n'
    for c in $(seq "$copies"); do
        for f in "$corpus"/*.xml; do
            n=$(basename "$f")
            if [ "$copies" = 1 ]; then
                printf '[[feeds]]\nname = "%s"\nurl = "http://%s/%s"\n' "$n" "$addr" "$n"
            else
                printf '[[feeds]]\nname = "%s #%s"\nurl = "http://%s/%s?copy=%s"\n' "$n" "$c" "$addr" "$n" "$c"
            fi
        done
    done
    sed -n '/^\[\[tags\]\]/,$p' feeds.toml
}
