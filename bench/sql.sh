#!/usr/bin/env bash
# SQL and export benchmark: a database with 10 million flows (built with DuckDB SQL in
# the real schema, reused between runs), Parquet export speed and the latency of the
# README's example queries through the SQL sandbox (median of 3).
#
# usage: bench/sql.sh [DB] [FLOWS]   (default /tmp/ng-sql-bench.duckdb, 10000000)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/netguardian-target}"
cd "$repo"
cargo build --release --example sql_bench >&2
exec "$CARGO_TARGET_DIR/release/examples/sql_bench" "$@"
