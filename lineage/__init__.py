"""Questions asked of an ML Metadata store: runs, lineage traces, graphs and run-to-run diffs.

Works on any TFX 1.21 store through the ml_metadata API alone (events and contexts; MLMD 1.21
has no ZetaSQL, so no filter queries), and never writes to it.
"""
