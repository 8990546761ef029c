"""DataGate's choices, importable without TensorFlow (the configuration and CLI read them)."""

# Jensen-Shannon divergence (numeric features) / L-infinity distance (categorical features)
# between this run's training statistics and those of the last data the gate accepted.
# Measured on the bundled data: its two halves differ by at most 0.31 (fare) on the compared
# features, two 2,000-row samples by at most 0.18; fares x100 score 0.96.
DEFAULT_MAX_DRIFT = 0.5
# Below this many training examples on either side, histograms are noise (two 400-row samples
# of the same data differ by up to 0.71): drift is not checked.
MIN_DRIFT_EXAMPLES = 1000
