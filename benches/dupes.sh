#!/usr/bin/env bash
# Peak memory of one `gazette poll` of two local feeds that carry the same N
# items (same titles and text, no links), for each N given: filing must stay
# linear when every item looks like every other.
#
# usage: benches/dupes.sh [templated|identical] [N...=1000 2000 4000 8000]
#   templated: item i is "Report i on …" with one shared 60-word body;
#   identical: all N items have the same title and text (only guids differ).
# GAZETTE=path/to/binary measures another build.
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-templated}
shift || true
sizes=${*:-1000 2000 4000 8000}
gazette=${GAZETTE:-target/release/gazette}
[ -n "${GAZETTE:-}" ] || cargo build --release --quiet --bin gazette
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

body="The Human Rights Council adopted a resolution on the situation of human rights defenders, urging States to release those detained for their work, to end reprisals against people who cooperate with the United Nations, and to ensure that laws on national security and foreign funding are not used to silence civil society, journalists and lawyers across the region this year"

feed() { # N SHAPE
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>t</title><link>https://example.org/</link>\n'
    for i in $(seq "$1"); do
        if [ "$2" = identical ]; then t="Report on the situation of defenders"; d="$body"; else t="Report $i on the situation of defenders"; d="$body (item $i)"; fi
        printf '<item><guid isPermaLink="false">g%s</guid><title>%s</title><description>%s</description></item>\n' "$i" "$t" "$d"
    done
    printf '</channel></rss>\n'
}

echo "| items per feed | shape | wall s | CPU s | peak RSS MB | stories |"
echo "|---|---|---|---|---|---|"
for n in $sizes; do
    rm -rf "$work"/*
    feed "$n" "$shape" > "$work/a.xml"
    cp "$work/a.xml" "$work/b.xml"
    printf 'database = "sqlite://%s/d.db"\n[fetch]\nmax_body_size = "100MB"\n[[feeds]]\nname = "A"\nurl = "%s/a.xml"\n[[feeds]]\nname = "B"\nurl = "%s/b.xml"\n' \
        "$work" "$work" "$work" > "$work/feeds.toml"
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
        "$gazette" --config "$work/feeds.toml" poll > /dev/null 2>&1
    read -r wall user sys rss < "$work/time"
    stories=$("$gazette" --config "$work/feeds.toml" items --all 2>/dev/null | grep -c "sources:")
    printf '| %s | %s | %s | %.2f | %.0f | %s |\n' "$n" "$shape" "$wall" \
        "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc)" "$stories"
done
