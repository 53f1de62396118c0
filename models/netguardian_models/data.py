"""Loading the baseline from a DuckDB file or from a Parquet export.

Both sources are mounted into one in-memory DuckDB connection as views named
like the contract tables (``feature_schema``, ``flow_features``,
``device_features``, ``alerts``), so the queries below are the same for both.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
from dataclasses import dataclass, field

import duckdb
import numpy as np

from . import contract


class TrainError(Exception):
    """A problem with the input or the training run, reported without a traceback."""


@dataclass
class Dataset:
    kind: str
    feature_names: list[str]
    # Baseline rows (not overlapping an alert of their device), float32 as the
    # Rust side feeds them to the model, in deterministic (time, key) order.
    X: np.ndarray
    # Rows that overlap an alert of their device (excluded from training).
    X_alert: np.ndarray
    ts_from: str | None
    ts_to: str | None
    stats: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.feature_names).encode())
        h.update(np.ascontiguousarray(self.X, dtype="<f4").tobytes())
        return h.hexdigest()


def _q(s: str) -> str:
    """SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


class Source:
    """An in-memory DuckDB connection with the contract tables as views."""

    TABLES = ("feature_schema", "flow_features", "device_features", "alerts")

    def __init__(self, db: str | None = None, parquet: str | None = None):
        if (db is None) == (parquet is None):
            raise TrainError("give exactly one of --db FILE or --parquet DIR")
        self.con = duckdb.connect(":memory:")
        try:
            self.con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:  # pragma: no cover - ICU missing
            pass
        self.present: set[str] = set()
        self.description = db or parquet
        if db is not None:
            self._attach_db(db)
        else:
            self._mount_parquet(parquet)

    def _attach_db(self, path: str) -> None:
        if not os.path.isfile(path):
            raise TrainError(f"database file not found: {path}")
        try:
            self.con.execute(f"ATTACH {_q(path)} AS src (READ_ONLY)")
        except duckdb.Error as e:
            msg = str(e)
            if "lock" in msg.lower():
                raise TrainError(
                    f"cannot open {path}: it is locked by another process (the running "
                    "netguardian service?). Export the tables to Parquet and train with "
                    "--parquet DIR instead, or stop the service. DuckDB said: " + msg
                ) from None
            raise TrainError(f"cannot open {path} as a DuckDB database: {msg}") from None
        rows = self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' "
            "UNION SELECT view_name FROM duckdb_views() WHERE database_name = 'src'"
        ).fetchall()
        names = {r[0] for r in rows}
        for t in self.TABLES:
            if t in names:
                self.con.execute(f"CREATE VIEW {t} AS SELECT * FROM src.main.{_ident(t)}")
                self.present.add(t)

    def _mount_parquet(self, root: str) -> None:
        if not os.path.isdir(root):
            raise TrainError(f"parquet directory not found: {root}")
        for t in self.TABLES:
            single = os.path.join(root, t + ".parquet")
            folder = os.path.join(root, t)
            if os.path.isfile(single):
                src = f"read_parquet({_q(single)})"
            elif os.path.isdir(folder) and glob.glob(
                os.path.join(glob.escape(folder), "**", "*.parquet"), recursive=True
            ):
                pattern = os.path.join(folder, "**", "*.parquet")
                src = (
                    f"read_parquet({_q(pattern)}, hive_partitioning = true, "
                    "union_by_name = true)"
                )
            elif os.path.isdir(single):  # a folder named like the file, e.g. Spark output
                pattern = os.path.join(single, "**", "*.parquet")
                if not glob.glob(os.path.join(glob.escape(single), "**", "*.parquet"), recursive=True):
                    continue
                src = (
                    f"read_parquet({_q(pattern)}, hive_partitioning = true, "
                    "union_by_name = true)"
                )
            else:
                continue
            try:
                self.con.execute(f"CREATE VIEW {t} AS SELECT * FROM {src}")
            except duckdb.Error as e:
                raise TrainError(f"cannot read parquet for table {t} under {root}: {e}") from None
            self.present.add(t)

    def require(self, table: str, hint: str = "") -> None:
        if table not in self.present:
            raise TrainError(f"missing table {table!r} in {self.description}{hint}")

    def columns(self, table: str) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE {table}").fetchall()
        return {r[0]: r[1] for r in rows}


def check_schema(src: Source, kind: str) -> list[str]:
    """Checks ``feature_schema`` (and the feature table's columns) against the contract."""
    expected = list(contract.FEATURES[kind])
    src.require("feature_schema")
    cols = src.columns("feature_schema")
    for c in ("model_kind", "position", "name", "schema_version"):
        if c not in cols:
            raise TrainError(f"table feature_schema has no column {c!r}")
    rows = src.con.execute(
        "SELECT position, name, schema_version FROM feature_schema "
        "WHERE model_kind = ? ORDER BY position",
        [kind],
    ).fetchall()
    if not rows:
        raise TrainError(f"feature_schema has no rows for model_kind {kind!r}")
    versions = sorted({r[2] for r in rows})
    if versions != [contract.SCHEMA_VERSION]:
        raise TrainError(
            f"schema version mismatch: feature_schema lists version(s) {versions} for "
            f"{kind!r} features, this trainer implements version {contract.SCHEMA_VERSION}"
        )
    positions = [r[0] for r in rows]
    if len(set(positions)) != len(positions):
        raise TrainError(f"feature_schema has duplicate positions for {kind!r}")
    names = [r[1] for r in rows]
    if names != expected:
        for i, (got, want) in enumerate(zip(names, expected)):
            if got != want:
                raise TrainError(
                    f"schema mismatch: {kind} feature #{i} (position {positions[i]}) is "
                    f"{got!r} in feature_schema, contract v{contract.SCHEMA_VERSION} expects {want!r}"
                )
        raise TrainError(
            f"schema mismatch: feature_schema lists {len(names)} {kind} features, contract "
            f"v{contract.SCHEMA_VERSION} has {len(expected)}"
        )
    t = contract.TABLES[kind]
    src.require(t["table"])
    tcols = src.columns(t["table"])
    missing = [c for c in [t["ts"], t["mac"], "schema_version", *expected] if c not in tcols]
    if missing:
        raise TrainError(f"table {t['table']} lacks column(s) {missing}")
    return expected


def _parse_time(s: str | None, flag: str) -> str | None:
    if s is None:
        return None
    try:
        v = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise TrainError(f"{flag}: not an ISO-8601 time: {s!r}") from None
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return v.isoformat(sep=" ")


def load(
    src: Source,
    kind: str,
    *,
    since: str | None = None,
    until: str | None = None,
    window_secs: int = contract.WINDOW_SECS,
    min_rows: int = 1000,
    max_rows: int = 300_000,
    seed: int = 0,
    allow_missing_alerts: bool = False,
) -> Dataset:
    """Reads the baseline for ``kind``; rows overlapping an alert of their device are split off.

    A device window [ws, ws + W) is excluded when an alert of that MAC with
    interval [ts, last_ts] widened by W on both sides overlaps it; a flow is
    excluded when the window it falls in (epoch-aligned, W seconds) is.
    """
    names = check_schema(src, kind)
    t = contract.TABLES[kind]
    table, ts, mac = t["table"], _ident(t["ts"]), _ident(t["mac"])
    since_s, until_s = _parse_time(since, "--since"), _parse_time(until, "--until")

    where = []
    if since_s:
        where.append(f"CAST({ts} AS TIMESTAMP) >= TIMESTAMP {_q(since_s)}")
    if until_s:
        where.append(f"CAST({ts} AS TIMESTAMP) < TIMESTAMP {_q(until_s)}")
    time_filter = (" AND " + " AND ".join(where)) if where else ""

    versions = src.con.execute(
        f"SELECT schema_version, count(*) FROM {table} WHERE true{time_filter} "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    by_version = {v: n for v, n in versions}
    n_v1 = by_version.get(contract.SCHEMA_VERSION, 0)
    if n_v1 == 0 and by_version:
        raise TrainError(
            f"schema version mismatch: {table} has rows of schema_version "
            f"{sorted(by_version)} only, this trainer implements version {contract.SCHEMA_VERSION}"
        )

    w_us = int(window_secs) * 1_000_000
    if "alerts" in src.present:
        acols = src.columns("alerts")
        for c in ("ts", "device_mac"):
            if c not in acols:
                raise TrainError(f"table alerts has no column {c!r}")
        last = "coalesce(CAST(a.last_ts AS TIMESTAMP), CAST(a.ts AS TIMESTAMP))" if "last_ts" in acols else "CAST(a.ts AS TIMESTAMP)"
        if kind == "device":
            ws = "epoch_us(CAST(b.ts_ AS TIMESTAMP))"
        else:
            ws = f"(epoch_us(CAST(b.ts_ AS TIMESTAMP)) // {w_us}) * {w_us}"
        in_alert = (
            "EXISTS (SELECT 1 FROM alerts a WHERE a.device_mac = b.mac_ "
            f"AND {ws} < epoch_us({last}) + {w_us} "
            f"AND {ws} + {w_us} > epoch_us(CAST(a.ts AS TIMESTAMP)) - {w_us})"
        )
    elif allow_missing_alerts:
        in_alert = "false"
    else:
        raise TrainError(
            f"missing table 'alerts' in {src.description}: the baseline must exclude alert "
            "windows (pass --allow-missing-alerts to train without that exclusion)"
        )

    cols = ", ".join(f"CAST({_ident(n)} AS DOUBLE) AS {_ident(n)}" for n in names)
    finite = " AND ".join(f"coalesce(isfinite({_ident(n)}), false)" for n in names)
    key = "flow_id" if kind == "flow" else t["mac"]
    base = (
        f"SELECT CAST({ts} AS TIMESTAMP) AS ts_, {mac} AS mac_, "
        f"hash({_ident(key)}, CAST({ts} AS TIMESTAMP), {int(seed)}) AS h_, {cols} "
        f"FROM {table} WHERE schema_version = {contract.SCHEMA_VERSION}{time_filter}"
    )
    src.con.execute(f"CREATE OR REPLACE TEMP TABLE rows_ AS SELECT b.*, ({finite}) AS finite_, {in_alert} AS alert_ FROM ({base}) b")
    counts = src.con.execute(
        "SELECT count(*), count(*) FILTER (NOT finite_), count(*) FILTER (finite_ AND alert_), "
        "count(*) FILTER (finite_ AND NOT alert_) FROM rows_"
    ).fetchone()
    total, nonfinite, n_alert, n_base = counts
    stats = {
        "rows_schema_v1": int(total),
        "rows_other_schema_versions": int(sum(n for v, n in by_version.items() if v != contract.SCHEMA_VERSION)),
        "rows_nonfinite_dropped": int(nonfinite),
        "rows_overlapping_alerts": int(n_alert),
        "rows_baseline": int(n_base),
    }
    if n_base < min_rows:
        raise TrainError(
            f"too few rows: {n_base} baseline {kind} rows in {table} (schema v1, finite, outside "
            f"alert windows{', within --since/--until' if where else ''}); need at least {min_rows} "
            f"(--min-rows). Counts: {stats}"
        )
    sel = ", ".join(_ident(n) for n in names)
    limit = f"ORDER BY h_ LIMIT {int(max_rows)}" if n_base > max_rows else ""
    stats["rows_sampled"] = int(min(n_base, max_rows))
    X = _fetch(
        src,
        f"SELECT ts_, {sel} FROM (SELECT * FROM rows_ WHERE finite_ AND NOT alert_ {limit}) "
        "ORDER BY ts_, mac_, h_",
        names,
    )
    X_alert = _fetch(
        src,
        f"SELECT ts_, {sel} FROM rows_ WHERE finite_ AND alert_ ORDER BY ts_, mac_, h_ LIMIT 100000",
        names,
    )
    span = src.con.execute(
        "SELECT min(ts_), max(ts_) FROM rows_ WHERE finite_ AND NOT alert_"
    ).fetchone()
    fmt = lambda v: v.isoformat() + "Z" if v is not None else None  # noqa: E731
    src.con.execute("DROP TABLE rows_")
    return Dataset(kind, names, X, X_alert, fmt(span[0]), fmt(span[1]), stats)


def _fetch(src: Source, sql: str, names: list[str]) -> np.ndarray:
    res = src.con.execute(sql).fetchnumpy()
    if len(res[names[0]]) == 0:
        return np.zeros((0, len(names)), dtype=np.float32)
    return np.column_stack([np.asarray(res[n], dtype=np.float64) for n in names]).astype(np.float32)
