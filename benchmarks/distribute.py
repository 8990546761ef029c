"""Benchmark: the Trainer's examples/s on 1 replica, N logical CPU replicas and N worker processes.

Trains on the latest run's Transform output, each setting in worker processes exactly as the
Trainer's run_fn starts them (models/distributed.py), and prints the step-time breakdown each
chief measured: process start-up (imports), first step (tracing, all-reduce set-up), steady
step time and examples/s, export; plus the wall time of the whole `distributed.train` call.
Usage: python -m benchmarks.distribute [--output-dir outputs] [--replicas 2] [--steps 300]
(after `make run`; `make bench` runs it on its own project run).
"""

import json
import os
import tempfile
import time
from pathlib import Path

import click
from tabulate import tabulate

from benchmarks import latest_outputs
from benchmarks.pipeline import loadavg
from models import distributed
from models.hyperparameters import Hyperparameters
from pipeline.config import PipelineConfig
from pipeline.locations import DEFAULT_OUTPUT_DIR
from upstream import formats


@click.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="OUTPUT_DIR of a finished `make run` (its Transform output is trained on).")
@click.option("--replicas", "count", type=int, default=2, show_default=True, help="N: logical replicas, and workers.")
@click.option("--steps", type=int, default=300, show_default=True, help="Training steps per setting.")
@click.option("--json-out", type=click.Path(path_type=Path), default=None, help="Also write the figures here.")
def main(output_dir: Path, count: int, steps: int, json_out: Path | None) -> None:
    run, examples, graph = latest_outputs(output_dir, ("Transform", "transformed_examples"), ("Transform", "transform_graph"))
    base = PipelineConfig().hyperparameters.to_dict()
    settings = {
        "1 replica": Hyperparameters(**base),
        f"{count} logical replicas": Hyperparameters(**{**base, "replicas": count}),
        f"{count} worker processes": Hyperparameters(**{**base, "distribution_strategy": "multi_worker", "workers": count}),
    }
    machine = f"{os.cpu_count()} cores, load average at start {loadavg()}"
    rows, figures = [], {}
    for label, hp in settings.items():
        click.echo(f"... {label}", err=True)
        with tempfile.TemporaryDirectory(prefix="bench-distribute-") as tmp:
            began = time.perf_counter()
            facts = distributed.train(
                [formats.examples_pattern(examples.uri, "train")], [formats.examples_pattern(examples.uri, "eval")],
                graph.uri, hp, steps, 5, os.path.join(tmp, "model"), os.path.join(tmp, "run"), backup_dir=None)
            facts["wall_s"] = round(time.perf_counter() - began, 2)
        figures[label] = facts
        rows.append([label, facts["replicas_in_sync"], facts["workers"], facts["train_examples_per_s"],
                     f"{facts['step_s'] * 1000:.1f}", facts["startup_s"], facts["first_step_s"], facts["export_s"],
                     facts["wall_s"]])
    click.echo(f"{steps} steps of global batch {settings['1 replica'].train_batch_size}, Transform output of run "
               f"{run.run_id}; {machine}\n")
    click.echo(tabulate(rows, tablefmt="github", headers=[
        "setting", "replicas", "processes", "train examples/s", "ms/step", "start-up s", "first step s", "export s",
        "wall s"]))
    if json_out:
        json_out.write_text(json.dumps({"machine": machine, "steps": steps, "settings": figures}, indent=1))


if __name__ == "__main__":
    main()
