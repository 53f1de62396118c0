#!/usr/bin/env bash
# API load benchmark: `netguardian serve` on a database of about a million flows,
# measured with wrk (requests/s, p50 and p99 latency per endpoint).
#
# usage: bench/api.sh
#
# environment (script-only variables are NG_*; NETGUARDIAN_* would be read as config):
#   NG_BIN=PATH         netguardian binary (default $CARGO_TARGET_DIR/release/netguardian,
#                       CARGO_TARGET_DIR defaulting to ~/.cache/netguardian-target; no build)
#   NG_WORK=DIR         where the capture, database and server state go (default
#                       bench-out/api; a tmpfs such as /dev/shm/… keeps the disk out of it)
#   NG_FLOWS=N          flows in the generated capture (default 1000000)
#   NG_DEVICES=N        devices (default 50)
#   NG_FORCE=1          regenerate the capture and database even if they exist
#   NG_PORT=N           API port (default 18080)
#   NG_CONNECTIONS="…"  wrk connection counts to run each endpoint with (default "1 4")
#   NG_DURATION=SECS    seconds per measurement (default 10), after a 2 s warm-up
#   NG_THREADS=N        wrk threads (default 2)
#
# Steps:
#  1. bench/gen-flows.py writes NG_WORK/flows.pcap: NG_FLOWS short TCP and DNS flows of
#     NG_DEVICES devices over the 24 h before it runs (~0.9 GB for a million flows, ~40 s).
#  2. `netguardian analyze` reads it into NG_WORK/flows.duckdb (both are reused on the
#     next run; the time span is kept in flows.end, so the analytics window still
#     covers the data on later days).
#  3. `netguardian serve --db NG_WORK/flows.duckdb --pcap tiny.pcap` (a 10-flow replay, so
#     no live capture competes for the CPU), state dir NG_WORK/state.
#  4. For every endpoint: one checked request (must be 200), a 2 s warm-up, then
#     `wrk --latency` with the bearer token for each connection count.
# Prints a markdown table (endpoint, connections, requests/s, p50, p99, non-2xx) with
# the load average before and after, and appends the raw results to
# NG_WORK/results.jsonl. The target (issue #3) is p99 < 20 ms.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/netguardian-target}"
bin="${NG_BIN:-$target/release/netguardian}"
work="${NG_WORK:-$repo/bench-out/api}"
flows="${NG_FLOWS:-1000000}"
devices="${NG_DEVICES:-50}"
port="${NG_PORT:-18080}"
conns="${NG_CONNECTIONS:-1 4}"
duration="${NG_DURATION:-10}"
threads="${NG_THREADS:-2}"

die() { echo "api-bench: $*" >&2; exit 1; }
log() { echo "api-bench: $*" >&2; }

if ! command -v wrk >/dev/null; then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    log "installing wrk (apt)"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 wrk >&2 \
        || { $sudo apt-get update -q -o DPkg::Lock::Timeout=600 >&2 \
             && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 wrk >&2; }
fi
for t in wrk curl python3; do command -v "$t" >/dev/null || die "$t not found"; done
[[ -x "$bin" ]] || die "binary $bin not found (build with cargo build --release, or set NG_BIN)"
mkdir -p "$work"

pcap="$work/flows.pcap"
db="$work/flows.duckdb"
if [[ "${NG_FORCE:-0}" == 1 ]]; then
    rm -f "$pcap" "$db" "$db.wal" "$work/flows.end"
fi
# --- 1. capture ------------------------------------------------------------------
if [[ ! -s "$pcap" || ! -s "$work/flows.end" ]]; then
    end=$(date +%s)
    log "generating $flows flows ($devices devices, 24 h ending now) into $pcap"
    python3 "$here/gen-flows.py" "$pcap.tmp" --flows "$flows" --devices "$devices" --end "$end"
    mv -f "$pcap.tmp" "$pcap"
    echo "$end" >"$work/flows.end"
    rm -f "$db" "$db.wal"
fi
end=$(cat "$work/flows.end")
# --- 2. database -------------------------------------------------------------------
if [[ ! -s "$db" ]]; then
    log "netguardian analyze $pcap --db $db"
    "$bin" analyze "$pcap" --db "$db.tmp" --no-progress >&2
    [[ -f "$db.tmp.wal" ]] && mv -f "$db.tmp.wal" "$db.wal"
    mv -f "$db.tmp" "$db"
fi
tiny="$work/tiny.pcap"
[[ -s "$tiny" ]] || python3 "$here/gen-flows.py" "$tiny" --flows 10 --devices "$devices" --end "$end" --seed 2 2>/dev/null

# --- 3. server -----------------------------------------------------------------------
state="$work/state"
mkdir -p "$state"
export NETGUARDIAN_STATE_DIR="$state" NETGUARDIAN_API__LISTEN="127.0.0.1:$port" NETGUARDIAN_LOGGING__LEVEL=warn
base="http://127.0.0.1:$port"
curl -s -o /dev/null "$base/api/health" && die "something already listens on port $port (set NG_PORT)"
log "serve --db $db on $base"
# Started as root, serve would become service.user ("netguardian", else "nobody"),
# which cannot write in a checkout or NG_WORK under /root: stay who we are.
NETGUARDIAN_SERVICE__USER="${NETGUARDIAN_SERVICE__USER:-$(id -un)}" \
    "$bin" serve --db "$db" --pcap "$tiny" 2>"$work/serve.log" &
server=$!
stop_server() {
    kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
}
trap stop_server EXIT
for _ in $(seq 1 600); do
    curl -sf -o /dev/null "$base/api/health" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; die "serve exited"; }
    sleep 0.1
done
curl -sf -o /dev/null "$base/api/health" || die "serve did not answer within 60 s"
token="$("$bin" token)"
auth=(-H "Authorization: Bearer $token")
# Wait for the replay to end so the measurements see an idle pipeline.
for _ in $(seq 1 300); do
    curl -sf "${auth[@]}" "$base/api/capture" | grep -q '"running":false' && break
    sleep 0.2
done

# An existing device and an hour inside the data, for the filtered queries.
mac=$(curl -sf "${auth[@]}" "$base/api/devices?sort=bytes&limit=5" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][2]["mac"])')
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
until_=$(iso "$end")
hour_from=$(iso $((end - 13 * 3600)))
hour_to=$(iso $((end - 12 * 3600)))

endpoints=(
    "/api/health"
    "/api/stats"
    "/api/devices"
    "/api/flows?limit=100"
    "/api/flows?limit=100&protocol=dns&state=SF&min_bytes=100"
    "/api/flows?limit=100&device=$mac&port=443"
    "/api/flows?limit=100&since=$hour_from&until=$hour_to"
    "/api/alerts"
    "/api/analytics?hours=24&until=$until_"
)

rows=$(curl -sf "${auth[@]}" "$base/api/stats" \
    | python3 -c 'import json,sys; t={x["table"]: x["rows"] for x in json.load(sys.stdin)["tables"]}; print(t["flows"], t["devices"], t["dns"])')
read -r n_flows n_devices n_dns <<<"$rows"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "database: $n_flows flows, $n_devices devices, $n_dns dns rows; load average $load_before"

out="$work/wrk"
rm -rf "$out"
mkdir -p "$out"
i=0
for ep in "${endpoints[@]}"; do
    i=$((i + 1))
    code=$(curl -s -o "$out/$i.body" -w '%{http_code}' "${auth[@]}" "$base$ep")
    [[ "$code" == 200 ]] || { cat "$out/$i.body" >&2; die "$ep answered $code"; }
    wrk -t1 -c1 -d2s "${auth[@]}" "$base$ep" >/dev/null
    for c in $conns; do
        log "$ep, $c connection(s), ${duration}s"
        wrk -t"$(( c < threads ? c : threads ))" -c"$c" -d"${duration}s" --timeout 10s --latency "${auth[@]}" "$base$ep" \
            >"$out/$i.c$c.txt"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 4. report ------------------------------------------------------------------------
python3 - "$out" "$conns" "$load_before" "$load_after" "$n_flows" "$n_devices" "$n_dns" \
    "$work/results.jsonl" "$repo" "$mac" "${endpoints[@]}" <<'PY'
import datetime, json, os, re, subprocess, sys
out, conns, lb, la, n_flows, n_devices, n_dns, results, repo, mac = sys.argv[1:11]
endpoints = sys.argv[11:]

def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

def parse(text):
    r = {}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        r[f"p{pct}_ms"] = ms(*m.groups()) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: (.*)", text)
    r["socket_errors"] = m.group(1).strip() if m else None
    return r

def short(ep):
    return ep.replace(mac, "MAC")

print()
print(f"database: {n_flows} flows, {n_devices} devices, {n_dns} DNS rows; "
      f"load average before {lb}, after {la} (1/5/15 min)")
print()
print("| endpoint | conns | req/s | p50 ms | p99 ms | p99 < 20 ms | non-2xx |")
print("|---|---:|---:|---:|---:|:---:|---:|")
rec = []
for i, ep in enumerate(endpoints, 1):
    for c in conns.split():
        with open(os.path.join(out, f"{i}.c{c}.txt")) as f:
            r = parse(f.read())
        ok = "yes" if r["rps"] and r["p99_ms"] is not None and r["p99_ms"] < 20 else "**no**"
        fmt = lambda v, s: "-" if v is None else format(v, s)
        print(f"| `{short(ep)}` | {c} | {fmt(r['rps'], ',.0f')} | {fmt(r['p50_ms'], '.2f')} | "
              f"{fmt(r['p99_ms'], '.2f')} | {ok} | {r['non2xx']} |")
        rec.append({"endpoint": short(ep), "connections": int(c), **r})
try:
    rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or None
except OSError:
    rev = None
with open(results, "a") as f:
    f.write(json.dumps({
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": rev, "flows": int(n_flows), "devices": int(n_devices),
        "load_before": lb, "load_after": la, "results": rec}) + "\n")
print(f"\n(appended to {results})")
bad = [r for r in rec if r["non2xx"] or r["socket_errors"]]
if bad:
    sys.exit(f"api-bench: non-2xx responses or socket errors (timeouts) on {', '.join(sorted({r['endpoint'] for r in bad}))}")
PY
