"""The feature contract shared with the Rust service (schema version 1).

The Rust side writes ``feature_schema``, ``flow_features`` and
``device_features``; every value in the feature tables is already transformed
(log1p, ratios, one-hot ...). The trainer refuses to train on anything whose
``feature_schema`` does not list exactly these names in this order.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

FLOW_FEATURES: tuple[str, ...] = (
    "duration_log",
    "orig_pkts_log",
    "resp_pkts_log",
    "orig_bytes_log",
    "resp_bytes_log",
    "orig_payload_ratio",
    "resp_payload_ratio",
    "orig_bytes_share",
    "orig_size_mean_log",
    "orig_size_std_log",
    "resp_size_mean_log",
    "resp_size_std_log",
    "orig_iat_mean_log",
    "orig_iat_std_log",
    "resp_iat_mean_log",
    "resp_iat_std_log",
    "syn_log",
    "fin_log",
    "rst_log",
    "psh_log",
    "state_established",
    "state_rejected",
    "state_unanswered",
    "proto_tcp",
    "proto_udp",
    "proto_icmp",
    "port_wellknown",
    "port_registered",
    "port_dynamic",
    "app_dns",
    "app_tls",
    "app_http",
    "dns_max_label_entropy",
    "dns_nxdomain",
    "tls_no_sni",
    "tls_old_version",
)

DEVICE_FEATURES: tuple[str, ...] = (
    "flows_log",
    "distinct_peers_log",
    "distinct_ports_log",
    "bytes_out_log",
    "bytes_in_log",
    "new_destinations_log",
    "dns_queries_log",
    "nxdomain_ratio",
    "distinct_snis_log",
    "failed_connections_log",
)

FEATURES: dict[str, tuple[str, ...]] = {"flow": FLOW_FEATURES, "device": DEVICE_FEATURES}

# Per kind: the feature table, its timestamp column, its device column and the
# key columns that make the row order deterministic.
TABLES: dict[str, dict[str, str]] = {
    "flow": {"table": "flow_features", "ts": "ts", "mac": "device_mac", "order": "ts, flow_id"},
    "device": {
        "table": "device_features",
        "ts": "window_start",
        "mac": "mac",
        "order": "window_start, mac",
    },
}

# Length of a device_features window in seconds (the Rust side aggregates per
# MAC per 60 s). Also the amount by which alert intervals are widened.
WINDOW_SECS = 60

KINDS = tuple(FEATURES)
MODELS = ("iforest", "autoencoder")

# ONNX metadata keys (all values are strings; JSON where noted).
META_PREFIX = "netguardian."
META_KEYS = (
    "kind",
    "model",
    "schema_version",
    "feature_names",  # JSON list
    "threshold",
    "scaler_mean",  # JSON list
    "scaler_scale",  # JSON list
    "training_window",  # JSON {"from": ..., "to": ...}
    "rows",
    "library_versions",  # JSON object
    "data_sha256",
    "contamination",
    "trained_at",
)
