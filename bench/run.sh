#!/usr/bin/env bash
# Throughput benchmark: netguardian analyze vs. a plain `tcpdump -r` read.
#
# usage: bench/run.sh [CAPTURE]
#   CAPTURE  default bench-out/bench.pcap (built by bench/build-capture.sh if missing)
#
# environment:
#   CARGO_TARGET_DIR  cargo target dir (default ~/.cache/netguardian-target)
#   NETGUARDIAN=PATH  use this binary instead of building target/release/netguardian
#   SKIP_BUILD=1      don't run cargo build (use the existing release binary)
#   KEEP=1            keep the DuckDB file and summary JSON (path printed)
#   ANALYZE_ARGS="…"  extra arguments for `netguardian analyze`
#
# Both programs run under /usr/bin/time -v (peak RSS) after the capture was
# read once to warm the page cache, so both measure CPU work, not the disk.
# The tcpdump line is the floor: libpcap reading and writing every packet
# with no decoding.  netguardian's packets/s uses the wall time around the
# whole process (startup, DuckDB writes and shutdown included); its own
# elapsed_secs from the summary is shown alongside.
# Each run appends one JSON line to bench-out/results.jsonl.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
CAPTURE="${1:-$repo/bench-out/bench.pcap}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/netguardian-target}"

die() { echo "run: $*" >&2; exit 1; }
log() { echo "run: $*" >&2; }

apt_install() {
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    log "installing $* (apt)"
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | $sudo debconf-set-selections 2>/dev/null || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "$@" >&2 \
        || { $sudo apt-get update -q -o DPkg::Lock::Timeout=600 >&2 \
             && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "$@" >&2; }
}
command -v tcpdump >/dev/null || apt_install tcpdump
[[ -x /usr/bin/time ]] || apt_install time
command -v capinfos >/dev/null || apt_install wireshark-common
for t in tcpdump /usr/bin/time capinfos python3; do
    command -v "$t" >/dev/null || die "$t not found"
done

# --- capture ------------------------------------------------------------------
if [[ ! -s "$CAPTURE" ]]; then
    [[ $# -eq 0 ]] || die "capture $CAPTURE not found"
    log "no $CAPTURE yet: building it"
    "$here/build-capture.sh" "$CAPTURE"
fi
cap_packets=$(capinfos -T -r -M -c "$CAPTURE" | cut -f2)
cap_bytes=$(stat -c %s "$CAPTURE")

# --- binary -------------------------------------------------------------------
if [[ -n "${NETGUARDIAN:-}" ]]; then
    bin="$NETGUARDIAN"
else
    bin="$CARGO_TARGET_DIR/release/netguardian"
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        (cd "$repo" && cargo build --release --bin netguardian --example flow_memory) >&2
    fi
fi
[[ -x "$bin" ]] || die "binary $bin not found or not executable"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/netguardian-bench.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
    trap 'log "kept $tmp"' EXIT
else
    trap 'rm -rf "$tmp"' EXIT
fi

now() { date +%s.%N; }

log "warming the page cache ($((cap_bytes / 1048576)) MiB)"
cat "$CAPTURE" >/dev/null

# --- tcpdump ------------------------------------------------------------------
log "tcpdump -r $CAPTURE -w /dev/null"
t0=$(now)
/usr/bin/time -v -o "$tmp/tcpdump.time" tcpdump -n -r "$CAPTURE" -w /dev/null 2>"$tmp/tcpdump.err" \
    || { cat "$tmp/tcpdump.err" >&2; die "tcpdump failed"; }
t1=$(now)

# --- netguardian --------------------------------------------------------------
db="$tmp/bench.duckdb"
summary="$tmp/summary.json"
# shellcheck disable=SC2206 # word splitting of ANALYZE_ARGS is intended
extra=(${ANALYZE_ARGS:-})
log "$bin analyze $CAPTURE --db $db --summary-json $summary ${extra[*]}"
t2=$(now)
/usr/bin/time -v -o "$tmp/ng.time" "$bin" analyze "$CAPTURE" --db "$db" --summary-json "$summary" "${extra[@]}" \
    || die "netguardian analyze failed (exit $?)"
t3=$(now)
[[ -s "$summary" ]] || die "netguardian wrote no summary JSON at $summary"

db_bytes=0
for f in "$db" "$db.wal"; do
    [[ -f "$f" ]] && db_bytes=$((db_bytes + $(stat -c %s "$f")))
done

# --- report -------------------------------------------------------------------
python3 - "$summary" "$tmp/tcpdump.time" "$tmp/ng.time" "$t0" "$t1" "$t2" "$t3" \
    "$cap_packets" "$cap_bytes" "$db_bytes" "$CAPTURE" "$repo/bench-out/results.jsonl" "$repo" <<'PY'
import datetime, json, os, re, subprocess, sys

(summary_path, tcpdump_time, ng_time, t0, t1, t2, t3, cap_packets, cap_bytes,
 db_bytes, capture, results, repo) = sys.argv[1:]
t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
cap_packets, cap_bytes, db_bytes = int(cap_packets), int(cap_bytes), int(db_bytes)

try:
    with open(summary_path) as f:
        summary = json.load(f)
    if not isinstance(summary, dict):
        raise ValueError("not a JSON object")
except (OSError, ValueError) as e:
    sys.exit(f"run: cannot read summary JSON {summary_path}: {e}")

def num(key):
    v = summary.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

def fs_written_mb(path):
    # GNU time's "File system outputs" is the kernel's ru_oublock: bytes sent towards
    # storage (the process's write_bytes), in 512-byte units. For the appliance this is
    # SD-card wear: the WAL and every checkpoint's rewrite count, not just the final file.
    try:
        m = re.search(r"File system outputs:\s*(\d+)", open(path).read())
    except OSError:
        return None
    return int(m.group(1)) * 512 / 1048576 if m else None

def peak_rss_mb(path):
    try:
        m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", open(path).read())
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None

td_secs, ng_secs = t1 - t0, t3 - t2
ng_packets = num("packets")
flows = num("flows")
if ng_packets is None:
    print("run: warning: summary has no numeric 'packets'; using the capture's count", file=sys.stderr)
elif ng_packets != cap_packets:
    print(f"run: warning: netguardian counted {ng_packets} packets, capinfos {cap_packets}", file=sys.stderr)
pk = ng_packets if ng_packets is not None else cap_packets

def rate(n, s):
    return n / s if n is not None and s > 0 else None

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

rows = [
    ("tcpdump -r", cap_packets, td_secs, None, None, None, peak_rss_mb(tcpdump_time), None, None),
    ("netguardian", pk, ng_secs, num("elapsed_secs"), flows, num("devices"), peak_rss_mb(ng_time),
     db_bytes / 1048576, fs_written_mb(ng_time)),
]
print()
print(f"capture: {capture}  ({cap_packets} packets, {cap_bytes / 1048576:.0f} MiB, "
      f"mean {cap_bytes / max(cap_packets, 1):.0f} B/packet on disk)")
hdr = f"{'':<12} {'packets':>10} {'wall s':>8} {'own s':>8} {'packets/s':>11} {'Mpps':>6} {'flows':>9} {'flows/s':>9} {'devices':>7} {'peak RSS MB':>11} {'DB MB':>7} {'written MB':>10}"
print(hdr)
print("-" * len(hdr))
for name, n, secs, own, fl, dev, rss, dbmb, wmb in rows:
    pps = rate(n, secs)
    print(f"{name:<12} {n:>10} {secs:>8.2f} {fmt(own, '8.2f'):>8} {fmt(pps, '11,.0f'):>11} "
          f"{fmt(pps / 1e6 if pps else None, '6.3f'):>6} {fmt(fl, 'd') if isinstance(fl, int) else fmt(fl, '.0f'):>9} "
          f"{fmt(rate(fl, secs), '9,.0f'):>9} {fmt(dev, 'd') if isinstance(dev, int) else fmt(dev, '.0f'):>7} "
          f"{fmt(rss, '11.1f'):>11} {fmt(dbmb, '7.1f'):>7} {fmt(wmb, '10.1f'):>10}")
ng_pps, td_pps = rate(pk, ng_secs), rate(cap_packets, td_secs)
if ng_pps and td_pps:
    print(f"\nnetguardian runs at {ng_pps / td_pps:.1%} of tcpdump's read rate"
          + (f"; bytes {summary['bytes']}" if num("bytes") is not None else ""))

try:
    rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or None
except OSError:
    rev = None
record = {
    "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git": rev, "capture": os.path.abspath(capture), "capture_packets": cap_packets,
    "tcpdump_secs": round(td_secs, 3), "tcpdump_pps": round(td_pps or 0),
    "netguardian_secs": round(ng_secs, 3), "netguardian_pps": round(ng_pps or 0),
    "peak_rss_mb": peak_rss_mb(ng_time), "db_bytes": db_bytes,
    "written_mb": fs_written_mb(ng_time), "summary": summary,
}
try:
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"(appended to {results})")
except OSError as e:
    print(f"run: cannot append to {results}: {e}", file=sys.stderr)
PY

# --- memory per tracked flow ----------------------------------------------------
flowmem="$(dirname "$bin")/examples/flow_memory"
if [[ -x "$flowmem" ]]; then
    echo
    log "flow table memory: 1,000,000 single-SYN flows (a flood from random sources)"
    "$flowmem" 1000000
fi
