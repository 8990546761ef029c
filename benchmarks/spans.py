"""Benchmark: a run training on a rolling window of 3 spans against a run on 1 span, same span size.

Three span folders of the same rows (every k-th bundled row), one output directory: span 1 and
span 2 run on one span each (the second is the "1 span" figure: a run with a baseline model, as
every later run has), span 3 runs with --train-spans 3 (Transform and the Trainer read spans 1-3,
the Evaluator span 3). Wall time of each invocation and MLMD's duration of each component.
Usage: python -m benchmarks.spans [--rows 1800] [--train-steps 20]   (make bench-spans)
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from tabulate import tabulate

from data import spans, taxi
from lineage.query import Lineage
from lineage.store import StoreAddress, open_store

REPO = Path(__file__).resolve().parent.parent
# The small-data gates of the end-to-end tests (tests/conftest.py SMALL_RUN): a timing, not a model.
GATES = ["--min-auc", "0.5", "--min-binary-accuracy", "0.5", "--tflite-min-agreement", "0.5"]
HEAVY = ("Transform", "Trainer", "Evaluator")


@click.command()
@click.option("--rows", type=int, default=1800, show_default=True, help="Rows per span.")
@click.option("--train-steps", type=int, default=20, show_default=True)
def main(rows: int, train_steps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-spans-") as scratch:
        data, out = Path(scratch) / "data", Path(scratch) / "out"
        for n in (1, 2, 3):
            taxi.write_sample(spans.span_dir(data, n), rows=rows)
        base = [sys.executable, "-m", "cli", "run", "--output-dir", str(out), "--data-dir", str(data), "--no-report",
                "--train-steps", str(train_steps), "--eval-steps", "1", "--train-batch-size", "64", *GATES]
        walls = {}
        for label, extra in (("span 1 (first run)", ["--span", "1"]), ("span 2, 1 span", ["--span", "2"]),
                             ("span 3, window of 3", ["--span", "3", "--train-spans", "3"])):
            started = time.monotonic()
            result = subprocess.run(base + extra, cwd=REPO, capture_output=True, text=True)
            walls[label] = time.monotonic() - started
            if result.returncode != 0:
                sys.exit(f"{label}: the run failed:\n{result.stderr[-2000:]}")
        lineage = Lineage(open_store(StoreAddress(sqlite=out / "metadata.sqlite")))
        runs = [lineage.with_io(r) for r in lineage.runs()]
    table = []
    for (label, wall), run in zip(walls.items(), runs):
        seconds = {e.node_id: e.seconds for e in run.executions}
        table.append([label, f"{wall:.0f}", f"{run.seconds:.0f}", *(f"{seconds.get(n, 0):.0f}" for n in HEAVY)])
    print(f"{rows} rows a span, {train_steps} training steps")
    print(tabulate(table, headers=["run", "wall s", "MLMD s", *(f"{n} s" for n in HEAVY)]))
    print(f"window of 3 / 1 span: {walls['span 3, window of 3'] / walls['span 2, 1 span']:.2f}x wall time")


if __name__ == "__main__":
    main()
