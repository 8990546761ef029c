"""DataGate: stops the pipeline before Transform when the data breaks the schema or drifts.

gate.py (the checks, as plain functions on TFDV protos), component.py and executor.py (the TFX
component), options.py (choices the configuration reads without TensorFlow).
"""
