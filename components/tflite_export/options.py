"""TFLiteExport's choices, importable without TensorFlow (the configuration and CLI read them)."""

# none: float32; dynamic: int8 weights, float activations; float16: float16 weights;
# int8: int8 weights and activations, ranges from a representative set of training examples.
QUANTIZATION_MODES = ("none", "dynamic", "float16", "int8")
DEFAULT_QUANTIZATION = "dynamic"
DEFAULT_MIN_AGREEMENT = 0.99
SERVING_SUFFIX = "_tflite"  # <serving dir>/<model name>_tflite/<version>/model.tflite

# What an export measures, in the order reports show it: the TFLiteModel's custom properties and
# metadata.json (export.Report computes them).
MEASURES = (
    "quantization", "tflite_bytes", "saved_model_bytes", "saved_model_weights_bytes", "size_ratio",
    "agreement", "max_abs_diff", "parity_examples", "tflite_latency_us", "saved_model_latency_us",
    "latency_ratio",
)
