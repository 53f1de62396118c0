#!/usr/bin/env bash
# Anomaly-model quality on the attack-scenario suite (issue #5): trains flow and device
# models on the benign captures and reports, per attack and model, ROC AUC and the
# detection rate at a 0.1 % false-positive rate (models/netguardian_models/evaluate.py).
#
#   bench/ml-quality.sh CAPTURES_DIR OUT_DIR [EXTRA_BENIGN.pcap ...]
#
# CAPTURES_DIR holds the scenario captures (tests/scenarios/netlab.sh all DIR): every
# benign_*.pcap, plus the EXTRA_BENIGN captures (e.g. a long benign_mix recorded with
# NG_MIX_SECONDS=2700 NG_SCENARIO_TIMEOUT=3000 netlab.sh run benign_mix DIR), is read into
# one baseline database; each other capture into its own. The earliest two thirds of the
# baseline's feature rows train the models (OUT_DIR/models), the last third are the
# negatives; every row of an attack capture is a positive. Detection is off while
# reading (a fresh database would raise new_device for every device, and the trainer
# leaves alerted windows out of the baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,16p "$0" >&2; exit 2; }
caps="$(realpath "$1")" out="$(realpath -m "$2")"; shift 2
target="${CARGO_TARGET_DIR:-$HOME/.cache/netguardian-target}"
bin="$target/release/netguardian"
py="${NG_VENV:-$HOME/.cache/netguardian-venv}/bin/python"
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x "$py" ] || { echo "no trainer venv at $py: run scripts/deps" >&2; exit 2; }
mkdir -p "$out/db"
analyze() {  # analyze DB PCAP...
    local db="$1"; shift
    rm -f "$db" "$db.wal"
    NETGUARDIAN_STATE_DIR="$out/state" NETGUARDIAN_DETECT__ENABLED=false \
        "$bin" analyze --no-progress --db "$db" "$@" >/dev/null
}
benign=("$caps"/benign_*.pcap "$@")
echo "baseline: ${#benign[@]} captures" >&2
analyze "$out/benign.duckdb" "${benign[@]}"
attacks=()
for p in "$caps"/*.pcap; do
    n="$(basename "$p" .pcap)"
    case "$n" in benign_*) continue ;; esac
    analyze "$out/db/$n.duckdb" "$p"
    attacks+=(--attack "$n=$out/db/$n.duckdb")
done
split="$("$py" - "$out/benign.duckdb" <<'EOF'
import sys, duckdb
c = duckdb.connect(sys.argv[1], read_only=True)
print(c.execute("SELECT strftime(quantile_disc(ts, 2/3), '%Y-%m-%dT%H:%M:%S') FROM flow_features").fetchone()[0])
EOF
)"
echo "training on baseline rows before $split" >&2
rm -rf "$out/models"
for kind in flow device; do
    (cd models && OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore::UserWarning "$py" -m netguardian_models.train --db "$out/benign.duckdb" \
        --kind "$kind" --out "$out/models" --until "$split" --min-rows 50) ||
        echo "no $kind models: too little baseline (see the error above)" >&2
done
(cd models && OMP_NUM_THREADS=1 "$py" -m netguardian_models.evaluate --models "$out/models" \
    --benign "$out/benign.duckdb" --benign-since "$split" "${attacks[@]}" --json "$out/quality.json")
