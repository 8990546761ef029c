"""ServingCheck's defaults and property names, importable without TensorFlow."""

DEFAULT_LOAD_TIMEOUT = 60.0  # seconds for the fresh process to load the SavedModel
DEFAULT_REQUESTS = 100  # PredictRequests of one real eval example each: the check and the warm-up file
WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving's name, under the SavedModel's assets.extra/
# InfraBlessing custom properties besides TFX's `blessed`.
MEASURES = ("load_seconds", "latency_p50_ms", "latency_p99_ms", "peak_rss_mb", "requests")
REASON = "reason"
NOT_CHECKED = "not checked"  # how the reason of a model left unchecked (not blessed by the Evaluator) starts
