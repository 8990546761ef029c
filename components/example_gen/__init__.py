"""TFX's CsvExampleGen, read as a stream: memory stays flat however many rows come in.

component.py (the TFX component, TFX's own under the same name), executor.py (TFX's executor, its
Beam pipeline rearranged).
"""
