"""Benchmark: ServingCheck's cost on the latest trained model of a local run.

Runs the check as the component does (a fresh `python -I` server replaying the warm-up requests
while this process computes its own answers), `--repeat` times, and prints the wall time of each
and its parts: the server's TensorFlow start-up, the model's load, request latencies, peak RSS.
Usage: python -m benchmarks.serving [--output-dir outputs] [--repeat 3]   (after `make run`)
"""

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import click
from tabulate import tabulate
from tfx.utils import path_utils

from benchmarks import latest_outputs
from components.serving_check import check
from components.serving_check.options import DEFAULT_LOAD_TIMEOUT, DEFAULT_REQUESTS, WARMUP_FILE
from pipeline.config import PipelineConfig
from pipeline.locations import DEFAULT_OUTPUT_DIR
from upstream import formats


@click.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="OUTPUT_DIR of a finished `make run`.")
@click.option("--repeat", type=int, default=3, show_default=True)
def main(output_dir: Path, repeat: int) -> None:
    _, model, examples = latest_outputs(output_dir, ("Trainer", "model"), ("CsvExampleGen", "examples"))
    model_dir = path_utils.serving_model_path(model.uri)
    eval_examples = formats.read_examples(formats.examples_pattern(examples.uri, "eval"), DEFAULT_REQUESTS)
    requests = check.predict_requests(eval_examples, PipelineConfig().model_name)
    rows, walls = [], []
    for i in range(repeat):
        with tempfile.TemporaryDirectory() as workdir:
            warmup = os.path.join(workdir, WARMUP_FILE)
            started = time.perf_counter()
            check.write_warmup(requests, warmup)
            server = check.Server(model_dir, warmup, workdir, DEFAULT_LOAD_TIMEOUT)
            try:
                expected = check.in_process_answers(model_dir, eval_examples)
                responses, measured = server.result()
            finally:
                server.stop()
            check.judge(requests, responses, expected)
            wall = time.perf_counter() - started
        walls.append(wall)
        f = check.figures(measured, len(requests))
        rows.append([i + 1, f"{wall:.2f}", f"{measured['import_seconds']:.2f}", f"{f['load_seconds']:.2f}",
                     f"{f['latency_p50_ms']:.2f}", f"{f['latency_p99_ms']:.2f}", f"{f['peak_rss_mb']:.0f}"])
    print(f"model {model_dir}\n{len(requests)} requests; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    print(tabulate(rows, tablefmt="github", headers=[
        "try", "wall s", "server TF import s", "model load s", "p50 ms", "p99 ms", "server peak RSS MB"]))
    print(f"\nmedian wall: {statistics.median(walls):.2f} s (the component's cost; cached on an unchanged re-run)")


if __name__ == "__main__":
    main()
