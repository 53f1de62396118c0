#!/usr/bin/env bash
# Build the benchmark capture: a realistic mix of the shared corpus's Ethernet
# captures laid out on one timeline, repeated until TARGET_PACKETS.
#
# usage: bench/build-capture.sh [OUT] [TARGET_PACKETS]
#   OUT             default bench-out/bench.pcap (repo-relative; bench-out/ is git-ignored)
#   TARGET_PACKETS  default 3000000; the output holds exactly this many packets
#
# environment:
#   FORCE=1             rebuild even if OUT exists
#   CORPUS=DIR          capture folder (default <repo>/../shared/corpus/ndpi/pcap)
#   MAX_DURATION=SECS   skip captures spanning more than this (default 3600)
#   MAX_FILE_MB=MB      skip captures larger than this (default 64)
#   SPREAD_SECS=SECS    window over which the captures' starts are spread (default 600)
#   GAP_SECS=SECS       quiet time between two repetitions (default 600)
#   EXCLUDE=REGEX       skip file names matching this Python regex (default "fuzz":
#                       fuzzer output with garbage headers/timestamps is no traffic mix)
#
# How the capture is made (see bench/README.md):
#  1. Every file in CORPUS is probed with capinfos; kept are those capinfos
#     reads without error, whose encapsulation is Ethernet ("ether", whatever
#     the container: pcap or pcapng, by content not by name), with at least
#     one packet, spanning at most MAX_DURATION seconds (many nDPI test files
#     are concatenations whose timestamps span years), at most MAX_FILE_MB,
#     and whose name does not match EXCLUDE.
#  2. Each kept file is time-shifted (editcap -t) so that its first packet
#     falls at T0 + slot, T0 = 2024-01-01T00:00:00Z, slots spread evenly over
#     SPREAD_SECS in a fixed pseudo-random order (hash of the name): the
#     protocols overlap in time like the devices of a home network do.  The
#     shifted files are merged chronologically (mergecap -F pcap) and sorted
#     (reordercap; ~30 corpus files are not in time order): the "base".
#  3. The base is repeated; repetition k is shifted by k * PERIOD, where
#     PERIOD = span of the base + GAP_SECS.  Repetitions never overlap and a
#     5-tuple seen again in the next repetition has been silent for at least
#     GAP_SECS (10 min), longer than the flow idle timeouts, so the flow
#     tracker sees the copies as new flows rather than extending old ones.
#     (Addresses are NOT rewritten: a tracker with an idle timeout above
#     GAP_SECS would merge the copies.)  The last repetition is cut so the
#     output holds exactly TARGET_PACKETS packets; repetitions are
#     concatenated (mergecap -a -F pcap).
# The result is deterministic for a given corpus and settings.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

OUT="${1:-$repo/bench-out/bench.pcap}"
TARGET_PACKETS="${2:-3000000}"
CORPUS="${CORPUS:-$repo/../shared/corpus/ndpi/pcap}"
MAX_DURATION="${MAX_DURATION:-3600}"
MAX_FILE_MB="${MAX_FILE_MB:-64}"
SPREAD_SECS="${SPREAD_SECS:-600}"
GAP_SECS="${GAP_SECS:-600}"
EXCLUDE="${EXCLUDE-fuzz}"
T0=1704067200 # 2024-01-01T00:00:00Z

die() { echo "build-capture: $*" >&2; exit 1; }
[[ "$TARGET_PACKETS" =~ ^[1-9][0-9]*$ ]] || die "TARGET_PACKETS must be a positive integer, got '$TARGET_PACKETS'"

# --- tools --------------------------------------------------------------------
apt_install() {
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "build-capture: installing $* (apt)" >&2
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | $sudo debconf-set-selections 2>/dev/null || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "$@" >&2 \
        || { $sudo apt-get update -q -o DPkg::Lock::Timeout=600 >&2 \
             && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "$@" >&2; }
}
for t in editcap mergecap capinfos reordercap; do
    command -v "$t" >/dev/null || { apt_install wireshark-common; break; }
done
for t in editcap mergecap capinfos reordercap python3; do
    command -v "$t" >/dev/null || die "$t not found"
done

stats() { # file -> prints packets, mean size, file size
    capinfos -T -r -M -c -z -s "$1" | awk -F'\t' '{printf "packets=%s mean_packet_bytes=%s file_bytes=%s (%.0f MiB)\n", $2, $4, $3, $3/1048576}'
}

if [[ -s "$OUT" && "${FORCE:-0}" != 1 ]]; then
    echo "build-capture: $OUT exists (FORCE=1 to rebuild)"
    stats "$OUT"
    exit 0
fi
[[ -d "$CORPUS" ]] || die "corpus folder $CORPUS not found (expected ../shared/corpus next to the repo)"

start_ns=$(date +%s%N)
mkdir -p "$(dirname "$OUT")"
work="$(mktemp -d "$(dirname "$OUT")/.build-capture.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- 1. probe -----------------------------------------------------------------
# Columns: name, type, encap, packets, file size, data size, duration, start, end
probe="$work/probe.tsv"
n_all=0
for f in "$CORPUS"/*; do
    [[ -f "$f" ]] || continue
    n_all=$((n_all + 1))
    # Files capinfos cannot fully read (truncated, not a capture) are skipped.
    if row=$(capinfos -T -r -M -S -t -E -c -s -d -u -a -e "$f" 2>/dev/null); then
        printf '%s\n' "$row" >>"$probe"
    fi
done
[[ -s "$probe" ]] || die "no readable capture in $CORPUS"

# --- 2. plan: select files, compute shifts ---------------------------------
plan="$work/plan.tsv"
python3 - "$probe" "$plan" "$MAX_DURATION" "$MAX_FILE_MB" "$SPREAD_SECS" "$T0" "$EXCLUDE" <<'PY'
import hashlib, re, sys
from decimal import Decimal
probe, plan, max_dur, max_mb, spread, t0, exclude = sys.argv[1:]
exclude = re.compile(exclude) if exclude else None
max_dur, spread, t0 = Decimal(max_dur), Decimal(spread), Decimal(t0)
max_bytes = Decimal(max_mb) * 1024 * 1024
keep, why = [], {}
for line in open(probe, encoding="utf-8", errors="replace"):
    c = line.rstrip("\n").split("\t")
    if len(c) < 9:
        why["unparsable"] = why.get("unparsable", 0) + 1
        continue
    name, ftype, encap, pkts, fsize, dsize, dur, start, end = c[:9]
    try:
        pkts, fsize, dur, start = int(pkts), Decimal(fsize), Decimal(dur), Decimal(start)
    except Exception:
        why["bad numbers"] = why.get("bad numbers", 0) + 1
        continue
    reason = None
    if exclude and exclude.search(name.rsplit("/", 1)[-1]): reason = "excluded by name"
    elif encap != "ether": reason = f"encap {encap}"
    elif pkts < 1: reason = "empty"
    elif dur > max_dur: reason = f"spans > {max_dur}s"
    elif fsize > max_bytes: reason = "too big"
    if reason:
        why[reason] = why.get(reason, 0) + 1
        continue
    keep.append((hashlib.sha1(name.rsplit("/", 1)[-1].encode()).hexdigest(), name, pkts, dur, start))
keep.sort()
n = len(keep)
span = Decimal(0)
with open(plan, "w") as out:
    for i, (_, name, pkts, dur, start) in enumerate(keep):
        slot = (spread * i / n).quantize(Decimal("0.000001")) if n else Decimal(0)
        shift = t0 + slot - start
        span = max(span, slot + dur)
        out.write(f"{name}\t{shift}\t{pkts}\t{slot}\t{dur}\n")
print(f"selected {n} captures, {sum(k[2] for k in keep)} packets, base span {span:.0f}s; "
      "skipped: " + ", ".join(f"{v} {k}" for k, v in sorted(why.items(), key=lambda kv: -kv[1])), file=sys.stderr)
with open(plan + ".span", "w") as f:
    f.write(f"{span}\n")
PY
n_sel=$(wc -l <"$plan")
[[ $n_sel -gt 0 ]] || die "no Ethernet capture selected from $CORPUS"
echo "build-capture: probed $n_all files in $CORPUS" >&2

# --- 3. shift each capture and merge them into the base ---------------------
mkdir -p "$work/shifted"
i=0
while IFS=$'\t' read -r name shift _; do
    i=$((i + 1))
    editcap -F pcap -t "$shift" "$name" "$work/shifted/$(printf '%04d' "$i").pcap"
done <"$plan"
base="$work/base.pcap"
mergecap -F pcap -w "$work/merged.pcap" "$work"/shifted/*.pcap
rm -rf "$work/shifted"
reordercap "$work/merged.pcap" "$base" >&2
rm -f "$work/merged.pcap"
base_pkts=$(capinfos -T -r -M -c "$base" | cut -f2)
[[ "$base_pkts" -gt 0 ]] || die "empty base capture"
span=$(cat "$plan.span")
period=$(python3 -c "import math,sys; print(math.ceil(float(sys.argv[1])) + int(sys.argv[2]))" "$span" "$GAP_SECS")

# --- 4. repeat with time shifts up to TARGET_PACKETS ------------------------
reps=$(( (TARGET_PACKETS + base_pkts - 1) / base_pkts ))
last=$(( TARGET_PACKETS - (reps - 1) * base_pkts ))
echo "build-capture: base $base_pkts packets; $reps repetition(s) every ${period}s (span ${span%.*}s + gap ${GAP_SECS}s), last cut to $last" >&2
mkdir -p "$work/reps"
for ((k = 0; k < reps; k++)); do
    rep="$work/reps/$(printf '%05d' "$k").pcap"
    args=(-F pcap -t $((k * period)))
    sel=()
    if ((k == reps - 1)) && ((last < base_pkts)); then
        args+=(-r)        # -r: keep only the selected packets...
        sel=("1-$last")   # ...the first $last
    fi
    editcap "${args[@]}" "$base" "$rep" "${sel[@]}"
done
mergecap -a -F pcap -w "$OUT.tmp" "$work"/reps/*.pcap
mv -f "$OUT.tmp" "$OUT"

# Manifest: what went in, for the record.
{
    echo "# bench capture built $(date -u +%Y-%m-%dT%H:%M:%SZ) by bench/build-capture.sh"
    echo "# corpus=$CORPUS target_packets=$TARGET_PACKETS base_packets=$base_pkts repetitions=$reps period_secs=$period gap_secs=$GAP_SECS spread_secs=$SPREAD_SECS max_duration=$MAX_DURATION t0=$T0"
    echo "# file	shift_secs	packets	slot_secs	duration_secs"
    sed "s|^$CORPUS/||" "$plan"
} >"${OUT%.pcap}.manifest.tsv"

end_ns=$(date +%s%N)
echo "build-capture: wrote $OUT in $(( (end_ns - start_ns) / 1000000 )) ms"
stats "$OUT"
