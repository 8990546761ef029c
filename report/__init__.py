"""What a run shows its user: quiet console progress (progress.py), and the run report, HTML and
Markdown with pictures (build.py), all read from the run's MLMD records and the TFMA/TFDV
outputs they point to.
"""
