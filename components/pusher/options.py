"""The Pusher's custom property names, importable without TensorFlow (summary and report read them)."""

TFLITE_DESTINATION = "tflite_destination"  # <tflite dir>/<version>, published with the SavedModel
NOT_PUSHED_REASON = "not_pushed_reason"  # set when a run's model was not pushed
