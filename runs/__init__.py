"""The run machinery every runner shares: check and prepare the data, stage the schema, hold the
output directory's lock and recover from interrupted runs (state.py), the quiet console with
progress lines (console.py), and the summary and report at the end (summary.py). A runner gives
it the pipeline's locations and the one call that hands the graph to its orchestrator
(execute.run).
"""
