"""TFLiteExport: the blessed model as a quantized TFLite file, checked on LiteRT, before the Pusher publishes it beside the SavedModel.

component.py (the TFX component and its TFLiteModel artifact type), executor.py (a thin adapter),
export.py (the logic, as plain functions), options.py (choices the CLI reads without TensorFlow).
"""
