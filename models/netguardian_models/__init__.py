"""netguardian anomaly-model trainer.

Trains a StandardScaler + IsolationForest and a StandardScaler + autoencoder
(scikit-learn MLPRegressor) on the feature tables the Rust service writes to
DuckDB, and exports both as plain-ONNX graphs that tract-onnx 0.23 runs.

Entry point: ``python3 -m netguardian_models.train --help``.
"""

__version__ = "0.1.0"
