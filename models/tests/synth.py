"""Synthetic DuckDB files with the exact contract tables, for tests and demos.

The data is made up: a handful of devices doing DNS, TLS, HTTP, NTP and local
discovery traffic, aggregated per MAC per minute for the device windows. It
only has to look plausible enough for the models to have structure to learn.

``python3 tests/synth.py OUT.duckdb`` writes one.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import duckdb
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from netguardian_models import contract  # noqa: E402

START = dt.datetime(2025, 3, 1, 0, 0, 0)
MACS = [f"02:00:00:00:00:{i:02x}" for i in range(1, 9)]
# The device whose alert window holds injected anomalies.
ALERT_MAC = MACS[2]
ALERT_FROM = START + dt.timedelta(hours=2, minutes=10)
ALERT_TO = START + dt.timedelta(hours=2, minutes=14)


def _flow_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 36] transformed flow features of ordinary traffic."""
    F = {name: np.zeros(n) for name in contract.FLOW_FEATURES}
    kind = rng.choice(5, size=n, p=[0.35, 0.4, 0.1, 0.05, 0.1])  # dns tls http ntp discovery
    l1p = np.log1p
    dns, tls, http, ntp, disc = (kind == k for k in range(5))
    tcp = tls | http
    udp = dns | ntp | disc
    op = np.where(tcp, rng.integers(4, 120, n), np.where(disc, rng.integers(1, 4, n), 1))
    rp = np.where(tcp, (op * rng.uniform(0.8, 1.6, n)).astype(int), np.where(disc, 0, 1))
    osz = np.where(tcp, rng.uniform(60, 600, n), np.where(dns, rng.uniform(60, 90, n), rng.uniform(76, 400, n)))
    rsz = np.where(tcp, rng.uniform(200, 1400, n), np.where(dns, rng.uniform(90, 300, n), 90))
    rsz = np.where(rp > 0, rsz, 0)
    ob, rb = op * osz, rp * rsz
    dur = np.where(tcp, rng.lognormal(1.0, 1.2, n), np.where(disc, 0.0, rng.uniform(0.001, 0.08, n)))
    F["duration_log"] = l1p(dur)
    F["orig_pkts_log"], F["resp_pkts_log"] = l1p(op), l1p(rp)
    F["orig_bytes_log"], F["resp_bytes_log"] = l1p(ob), l1p(rb)
    F["orig_payload_ratio"] = np.where(tcp, rng.uniform(0.3, 0.9, n), rng.uniform(0.6, 0.9, n))
    F["resp_payload_ratio"] = np.where(rp > 0, rng.uniform(0.5, 0.95, n), 0)
    F["orig_bytes_share"] = ob / np.maximum(ob + rb, 1)
    F["orig_size_mean_log"], F["resp_size_mean_log"] = l1p(osz), l1p(rsz)
    F["orig_size_std_log"] = np.where(op > 1, l1p(osz * rng.uniform(0.1, 0.8, n)), 0)
    F["resp_size_std_log"] = np.where(rp > 1, l1p(rsz * rng.uniform(0.1, 0.8, n)), 0)
    iat = np.where(op > 1, dur / np.maximum(op - 1, 1), 0)
    F["orig_iat_mean_log"] = l1p(iat * 1000)
    F["orig_iat_std_log"] = l1p(iat * 1000 * rng.uniform(0.2, 2.0, n))
    riat = np.where(rp > 1, dur / np.maximum(rp - 1, 1), 0)
    F["resp_iat_mean_log"] = l1p(riat * 1000)
    F["resp_iat_std_log"] = l1p(riat * 1000 * rng.uniform(0.2, 2.0, n))
    F["syn_log"] = np.where(tcp, l1p(2), 0)
    F["fin_log"] = np.where(tcp, l1p(rng.integers(1, 3, n)), 0)
    F["rst_log"] = np.where(tcp & (rng.random(n) < 0.05), l1p(1), 0)
    F["psh_log"] = np.where(tcp, l1p(op // 2), 0)
    F["state_established"] = (tcp | dns | ntp).astype(float)
    F["state_unanswered"] = disc.astype(float)
    F["proto_tcp"], F["proto_udp"] = tcp.astype(float), udp.astype(float)
    F["port_wellknown"] = (tcp | dns | ntp).astype(float)
    F["port_registered"] = (disc & (rng.random(n) < 0.5)).astype(float)
    F["port_dynamic"] = (disc & (F["port_registered"] == 0)).astype(float)
    F["app_dns"], F["app_tls"], F["app_http"] = dns.astype(float), tls.astype(float), http.astype(float)
    F["dns_max_label_entropy"] = np.where(dns, rng.uniform(1.5, 3.2, n), 0)
    F["dns_nxdomain"] = (dns & (rng.random(n) < 0.04)).astype(float)
    F["tls_no_sni"] = (tls & (rng.random(n) < 0.02)).astype(float)
    return np.column_stack([F[name] for name in contract.FLOW_FEATURES])


def _flow_anomalies(rng: np.random.Generator, n: int) -> np.ndarray:
    """Exfiltration-like and DGA-like flows."""
    X = _flow_rows(rng, n)
    idx = {name: i for i, name in enumerate(contract.FLOW_FEATURES)}
    X[:, idx["orig_bytes_log"]] = np.log1p(rng.uniform(5e8, 2e9, n))
    X[:, idx["orig_bytes_share"]] = 0.999
    X[:, idx["dns_max_label_entropy"]] = rng.uniform(4.5, 5.5, n)
    X[:, idx["tls_old_version"]] = 1.0
    return X


def _device_rows(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    n = len(lam)
    flows = rng.poisson(lam)
    peers = np.minimum(flows, rng.poisson(lam * 0.4) + 1)
    ports = np.minimum(peers, rng.poisson(2, n) + 1)
    out = flows * rng.lognormal(7, 1, n)
    inn = flows * rng.lognormal(8, 1.2, n)
    newd = rng.binomial(np.maximum(peers, 0), 0.05)
    dnsq = rng.poisson(lam * 0.3)
    nx = np.where(dnsq > 0, rng.binomial(dnsq, 0.03) / np.maximum(dnsq, 1), 0.0)
    snis = np.minimum(peers, rng.poisson(lam * 0.2))
    failed = rng.binomial(flows, 0.02)
    l1p = np.log1p
    return np.column_stack(
        [l1p(flows), l1p(peers), l1p(ports), l1p(out), l1p(inn), l1p(newd), l1p(dnsq), nx, l1p(snis), l1p(failed)]
    ).astype(float)


def make_db(
    path: str,
    *,
    n_flows: int = 6000,
    hours: int = 4,
    seed: int = 1,
    schema_version: int = 1,
    feature_schema_version: int | None = None,
    rename_feature: tuple[str, str] | None = None,
    alerts: bool = True,
    anomalies_in_alert: int = 60,
) -> dict:
    """Writes the contract tables to a new DuckDB file; returns facts tests check against."""
    rng = np.random.default_rng(seed)
    if os.path.exists(path):
        os.unlink(path)
    con = duckdb.connect(path)
    fs_ver = schema_version if feature_schema_version is None else feature_schema_version
    con.execute(
        "CREATE TABLE feature_schema(model_kind VARCHAR, position INTEGER, name VARCHAR, "
        "unit VARCHAR, transform VARCHAR, description VARCHAR, schema_version INTEGER)"
    )
    for kind, names in contract.FEATURES.items():
        for pos, name in enumerate(names):
            if rename_feature and name == rename_feature[0]:
                name = rename_feature[1]
            transform = "log1p" if name.endswith("_log") else "none"
            con.execute(
                "INSERT INTO feature_schema VALUES (?, ?, ?, ?, ?, ?, ?)",
                [kind, pos, name, "", transform, f"synthetic {name}", fs_ver],
            )

    # flows: ordinary traffic over `hours`, plus anomalies inside the alert window
    secs = hours * 3600
    ts_us = np.sort(rng.integers(0, secs * 1_000_000, n_flows))
    macs = rng.choice(MACS, n_flows)
    # keep the alert device's own flows out of its alert window, so the window holds anomalies only
    a_lo = int((ALERT_FROM - START).total_seconds() - 2 * contract.WINDOW_SECS) * 1_000_000
    a_hi = int((ALERT_TO - START).total_seconds() + 2 * contract.WINDOW_SECS) * 1_000_000
    clash = (macs == ALERT_MAC) & (ts_us >= a_lo) & (ts_us < a_hi)
    macs[clash] = MACS[0]
    X = _flow_rows(rng, n_flows)
    n_anom = anomalies_in_alert
    a_ts = rng.integers(
        int((ALERT_FROM - START).total_seconds() * 1e6), int((ALERT_TO - START).total_seconds() * 1e6), n_anom
    )
    X = np.vstack([X, _flow_anomalies(rng, n_anom)])
    ts_us = np.concatenate([ts_us, a_ts])
    macs = np.concatenate([macs, np.array([ALERT_MAC] * n_anom)])
    base_us = int(START.replace(tzinfo=dt.timezone.utc).timestamp() * 1e6)
    cols = ", ".join(f"{n} DOUBLE" for n in contract.FLOW_FEATURES)
    con.execute(
        f"CREATE TABLE flow_features(flow_id BIGINT, ts TIMESTAMP, device_mac VARCHAR, schema_version INTEGER, {cols})"
    )
    data = {
        "flow_id": np.arange(1, len(X) + 1, dtype=np.int64),
        "ts_us": (ts_us + base_us).astype(np.int64),
        "device_mac": macs.astype(str),
        "schema_version": np.full(len(X), schema_version, dtype=np.int32),
    }
    for i, n in enumerate(contract.FLOW_FEATURES):
        data[n] = X[:, i]
    con.register("flow_src", data)
    sel = ", ".join(contract.FLOW_FEATURES)
    con.execute(
        f"INSERT INTO flow_features SELECT flow_id, make_timestamp(ts_us), device_mac, schema_version, {sel} FROM flow_src"
    )
    con.unregister("flow_src")

    # device windows: every MAC every minute
    minutes = secs // 60
    wins = np.repeat(np.arange(minutes), len(MACS))
    wmacs = np.tile(np.array(MACS), minutes)
    lam = np.tile(np.linspace(3, 25, len(MACS)), minutes)
    D = _device_rows(rng, lam)
    w_start = START + dt.timedelta(seconds=0)
    alert_win = (wmacs == ALERT_MAC) & (wins >= (ALERT_FROM - w_start).total_seconds() // 60) & (
        wins <= (ALERT_TO - w_start).total_seconds() // 60
    )
    D[alert_win, 0] = np.log1p(5000)  # a scan: thousands of flows, many ports, failures
    D[alert_win, 2] = np.log1p(3000)
    D[alert_win, 9] = np.log1p(4000)
    dcols = ", ".join(f"{n} DOUBLE" for n in contract.DEVICE_FEATURES)
    con.execute(
        f"CREATE TABLE device_features(window_start TIMESTAMP, mac VARCHAR, schema_version INTEGER, {dcols})"
    )
    ddata = {
        "ws_us": (wins.astype(np.int64) * 60_000_000 + base_us),
        "mac": wmacs.astype(str),
        "schema_version": np.full(len(D), schema_version, dtype=np.int32),
    }
    for i, n in enumerate(contract.DEVICE_FEATURES):
        ddata[n] = D[:, i]
    con.register("dev_src", ddata)
    dsel = ", ".join(contract.DEVICE_FEATURES)
    con.execute(
        f"INSERT INTO device_features SELECT make_timestamp(ws_us), mac, schema_version, {dsel} FROM dev_src"
    )
    con.unregister("dev_src")

    con.execute(
        "CREATE TABLE alerts(id BIGINT, ts TIMESTAMP, last_ts TIMESTAMP, rule VARCHAR, device_mac VARCHAR, "
        "severity VARCHAR, detail VARCHAR)"
    )
    if alerts:
        con.execute(
            "INSERT INTO alerts VALUES (1, ?, ?, 'port_scan', ?, 'high', 'synthetic'), "
            "(2, ?, NULL, 'dga_dns', ?, 'medium', 'synthetic')",
            [ALERT_FROM, ALERT_TO, ALERT_MAC, ALERT_FROM + dt.timedelta(minutes=1), ALERT_MAC],
        )
    con.close()
    return {
        "flows": len(X),
        "flow_anomalies": n_anom,
        "device_windows": len(D),
        "device_alert_windows": int(alert_win.sum()),
    }


def export_parquet(db: str, out: str, *, hive: bool = True) -> None:
    """Writes the Parquet layout the trainer accepts (what the service's export would do)."""
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect(db, read_only=True)
    q = lambda p: "'" + p.replace("'", "''") + "'"  # noqa: E731
    con.execute(f"COPY feature_schema TO {q(os.path.join(out, 'feature_schema.parquet'))} (FORMAT parquet)")
    con.execute(f"COPY alerts TO {q(os.path.join(out, 'alerts.parquet'))} (FORMAT parquet)")
    for table, ts in (("flow_features", "ts"), ("device_features", "window_start")):
        if hive:
            con.execute(
                f"COPY (SELECT *, strftime({ts}, '%Y-%m-%d-%H') AS hour FROM {table}) TO "
                f"{q(os.path.join(out, table))} (FORMAT parquet, PARTITION_BY (hour), OVERWRITE_OR_IGNORE)"
            )
        else:
            os.makedirs(os.path.join(out, table), exist_ok=True)
            con.execute(f"COPY {table} TO {q(os.path.join(out, table, 'part-0.parquet'))} (FORMAT parquet)")
    con.close()


if __name__ == "__main__":
    print(make_db(sys.argv[1]))
