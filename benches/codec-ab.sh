#!/usr/bin/env bash
# Two builds of the MIKEY codec side by side: `bench codec` of binary A (`mbms-lab`, or
# `mbms-keys` of releases before the lab was split out)
# and of binary B on every message of proto-vectors/ (the MBMS MSK/MTK messages
# and the extra MIKEY messages) and the MTK-like message of
# benches/codec-vs-gstreamer.sh, the two binaries alternating run by run
# (A, B, A, B, ...) so that both see the same machine load.
#
#   benches/codec-ab.sh OLD_BIN NEW_BIN          # RUNS=5 ITERATIONS=200000 by default
#   RUNS=7 benches/codec-ab.sh target/mbms-lab-old target/release/mbms-lab
#
# For each message: the median over the runs of the borrowed reading
# (`MessageView::decode`) and of the owned decode (`Message::decode`) in ns per
# message for A and for B, and the median of the per-run ratios A ns / B ns
# (> 1: B is faster). Prints one markdown table on standard output; progress
# goes to standard error.
set -euo pipefail

if (($# != 2)); then
    echo "usage: $0 A_BIN B_BIN" >&2
    exit 2
fi
A=$1
B=$2
RUNS=${RUNS:-5}
ITERATIONS=${ITERATIONS:-200000}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { echo "$@" >&2; }

# --- Messages ----------------------------------------------------------------
names=() hexes=()
for f in proto-vectors/msk-*.json proto-vectors/mtk-*.json; do
    names+=("$(basename "$f" .json)")
    hexes+=("$(sed -n 's/^  "message": "\([0-9a-fA-F]*\)".*/\1/p' "$f")")
done
while read -r name; do
    names+=("$name")
    hexes+=("$(grep -A3 "\"name\": \"$name\"" proto-vectors/mikey-extra-messages.json |
        sed -n 's/.*"hex": "\([0-9a-fA-F]*\)".*/\1/p' | head -n1)")
done < <(sed -n 's/^      "name": "\([^"]*\)".*/\1/p' proto-vectors/mikey-extra-messages.json)
# The MTK-like message of benches/codec-vs-gstreamer.sh.
names+=("MTK-like (codec-vs-gstreamer.sh)")
hexes+=("$(sed -n '/^MTK_LIKE=/,/^[^0-9M]/p' benches/codec-vs-gstreamer.sh | grep -o '[0-9a-f]\{8,\}' | tr -d '\n')")

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# bench codec output → "owned_ns view_ns"
measure() {
    "$1" bench codec --hex "$2" --iterations "$ITERATIONS" --runs 1 |
        awk -F'|' '/`Message::decode`/ { o = $5 } /`MessageView::decode`/ { v = $5 }
                   END { gsub(/ /, "", o); gsub(/ /, "", v); print o, v }'
}

echo "| MIKEY message | octets | A view ns/msg | B view ns/msg | view A/B | A owned ns/msg | B owned ns/msg | owned A/B |"
echo "|---|---|---|---|---|---|---|---|"
for i in "${!hexes[@]}"; do
    hex=${hexes[$i]}
    if [[ -z $hex ]]; then
        log "error: no hex for ${names[$i]}"
        exit 1
    fi
    av=() bv=() ao=() bo=() rv=() ro=()
    for ((r = 1; r <= RUNS; r++)); do
        read -r a_o a_v < <(measure "$A" "$hex")
        read -r b_o b_v < <(measure "$B" "$hex")
        av+=("$a_v") bv+=("$b_v") ao+=("$a_o") bo+=("$b_o")
        rv+=("$(ratio "$a_v" "$b_v")") ro+=("$(ratio "$a_o" "$b_o")")
        log "${names[$i]}: run $r/$RUNS: view A $a_v / B $b_v ns, owned A $a_o / B $b_o ns"
    done
    printf '| %s | %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |\n' \
        "${names[$i]}" $((${#hex} / 2)) \
        "$(printf '%s\n' "${av[@]}" | median)" "$(printf '%s\n' "${bv[@]}" | median)" \
        "$(printf '%s\n' "${rv[@]}" | median)" \
        "$(printf '%s\n' "${ao[@]}" | median)" "$(printf '%s\n' "${bo[@]}" | median)" \
        "$(printf '%s\n' "${ro[@]}" | median)"
done
echo
echo "(A = $(basename "$A"), B = $(basename "$B"); $RUNS runs × $ITERATIONS iterations per binary and"
echo "message, A and B alternating run by run; medians; A/B = median of the per-run ratios A ns ÷ B ns)"
