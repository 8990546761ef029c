"""Benchmark: every TFLite quantization mode on the latest trained model of a local run.

For each mode: file size, how many times smaller than the SavedModel's weights (variables/) and
than the whole SavedModel, agreement and max |difference| with the SavedModel on the eval split,
and single-example latency on LiteRT vs the SavedModel's serving signature on this machine.
Exits non-zero when the dynamic-range model misses a goal of the TFLite export issue.
Usage: python -m benchmarks.tflite [--output-dir outputs]   (after `make run`)
"""

import os
import platform
import sys
from pathlib import Path

import click
from tabulate import tabulate

from benchmarks import latest_outputs
from components.tflite_export import export
from components.tflite_export.options import DEFAULT_MIN_AGREEMENT, QUANTIZATION_MODES
from pipeline.locations import DEFAULT_OUTPUT_DIR
from tfx.utils import path_utils
from upstream import formats

GOALS = {"size_ratio": 3.5, "agreement": DEFAULT_MIN_AGREEMENT, "latency_ratio": 0.2}  # for the dynamic mode


@click.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="OUTPUT_DIR of a finished `make run`.")
@click.option("--parity-examples", type=int, default=5000, show_default=True)
def main(output_dir: Path, parity_examples: int) -> None:
    _, model, examples = latest_outputs(output_dir, ("Trainer", "model"), ("CsvExampleGen", "examples"))
    saved_model = path_utils.serving_model_path(model.uri)  # this project's runs: TFX 1.21 layout
    train = formats.read_examples(formats.examples_pattern(examples.uri, "train"), 200)
    evaluation = formats.read_examples(formats.examples_pattern(examples.uri, "eval"), parity_examples)

    rows, reports = [], {}
    for mode in QUANTIZATION_MODES:
        _, report = export.export(saved_model, mode, train, evaluation, min_agreement=0.0)
        reports[mode] = report
        rows.append([
            mode, f"{report.tflite_bytes / 1024:.1f}", f"{report.size_ratio:.2f}x",
            f"{report.saved_model_bytes / report.tflite_bytes:.1f}x", f"{report.agreement:.2%}",
            f"{report.max_abs_diff:.4f}", f"{report.tflite_latency_us:.0f}", f"{report.saved_model_latency_us:.0f}",
            f"{report.latency_ratio:.3f}",
        ])
    print(f"model {saved_model}\n{len(evaluation)} eval examples; {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print(tabulate(rows, tablefmt="github", headers=[
        "mode", "KiB", "vs weights", "vs SavedModel", "agreement", "max |diff|",
        "TFLite us/example", "SavedModel us/example", "latency ratio",
    ]))
    dynamic = reports["dynamic"]
    misses = [
        f"dynamic {name} {getattr(dynamic, name):.3f} (goal {'<=' if name == 'latency_ratio' else '>='} {goal})"
        for name, goal in GOALS.items()
        if (getattr(dynamic, name) > goal if name == "latency_ratio" else getattr(dynamic, name) < goal)
    ]
    print("\n" + ("goals met: " + ", ".join(f"{k} {v}" for k, v in GOALS.items()) if not misses else "MISSED: " + "; ".join(misses)))
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
