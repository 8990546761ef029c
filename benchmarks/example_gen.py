"""CsvExampleGen alone: TFX's executor against the project's, on the same synthetic rows.

Each run is a fresh process that runs one executor's Do on Beam's FnApiRunner (multi_processing,
`--workers`) over the synthetic CSV shards, outside any pipeline (no MLMD, no driver); the
benchmark measures its wall time and the peak RSS of its process tree (its workers included),
sampled every 0.2 s. A run whose tree passes `--rss-limit-gib` is killed and marked so. Writes
bench-example-gen.md/.json under --output-dir and prints the Markdown. Figures, not a test.

    python -m benchmarks.example_gen --output-dir outputs/bench --rows 1000000 --rows 3000000
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

import click

from benchmarks.beam_clusters import measured_run
from benchmarks.pipeline import _gib, synthetic_dir

EXECUTORS = {
    "tfx": "tfx.components.example_gen.csv_example_gen.executor",
    "project": "components.example_gen.executor",
}


def run_executor(executor_class, beam_args: list[str], data_dir: Path, out_dir: Path):
    """One CsvExampleGen executor's Do on every *.csv under data_dir, into out_dir (TFX's default
    2:1 train/eval split, gzipped TFRecords of tf.Examples); returns the Examples artifact."""
    from tfx.components.example_gen import utils
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts, standard_component_specs as keys
    from tfx.utils import proto_utils

    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    exec_properties = {
        keys.INPUT_BASE_KEY: str(data_dir),
        keys.INPUT_CONFIG_KEY: proto_utils.proto_to_json(utils.make_default_input_config("*.csv")),
        keys.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(utils.make_default_output_config(example_gen_pb2.Input())),
        keys.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        keys.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    context = BaseBeamExecutor.Context(beam_pipeline_args=beam_args, tmp_dir=str(out_dir / ".tmp"))
    executor_class(context).Do({}, {keys.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def measure(argv: list[str], log: Path, rss_limit: int) -> dict:
    """beam_clusters' measured run, as this table's row (no daemons here: the run's tree is all)."""
    wall, code, peaks, before, after = measured_run(argv, log, {}, rss_limit)
    return {"wall_s": round(wall, 1), "peak_rss": peaks["run"], "returncode": code,
            "killed_at_rss_limit": code == -signal.SIGKILL, "load_before": before, "load_after": after,
            "log": str(log)}


def markdown(runs: list[dict], workers: int) -> str:
    lines = [f"CsvExampleGen alone, FnApiRunner multi_processing, {workers} workers",
             "", "| executor | rows | wall | rows/s | peak RSS (process tree), GiB | load before -> after |",
             "|---|---:|---:|---:|---:|---|"]
    for r in runs:
        if r["returncode"] == 0:
            wall, rate = f"{r['wall_s']:.0f} s", f"{r['rows'] / r['wall_s']:,.0f}"
        else:
            wall = f"{'killed at the RSS limit' if r['killed_at_rss_limit'] else 'failed'} after {r['wall_s']:.0f} s"
            rate = "-"
        lines.append(f"| {r['executor']} | {r['rows']:,} | {wall} | {rate} | {_gib(r['peak_rss'])} | "
                     f"{r['load_before']} -> {r['load_after']} |")
    return "\n".join(lines) + "\n"


@click.group(invoke_without_command=True)
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("outputs/bench"), show_default=True)
@click.option("--rows", "row_counts", type=int, multiple=True, default=(1_000_000,), show_default=True)
@click.option("--executor", "executors", type=click.Choice(sorted(EXECUTORS)), multiple=True,
              default=("tfx", "project"), show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rss-limit-gib", type=float, default=20.0, show_default=True)
@click.pass_context
def main(ctx, output_dir: Path, row_counts, executors, workers: int, seed: int, rss_limit_gib: float) -> None:
    if ctx.invoked_subcommand:
        return
    runs = []
    for rows in row_counts:
        data, _ = synthetic_dir(output_dir, rows, seed)
        for name in executors:
            out = output_dir / "example-gen" / f"{name}-{rows}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            out.mkdir(parents=True)
            print(f"... {name}, {rows:,} rows", flush=True)
            argv = [sys.executable, "-m", "benchmarks.example_gen", "one", "--executor", name, "--workers",
                    str(workers), "--data", str(data), "--out", str(out / "examples")]
            runs.append({"executor": name, "rows": rows,
                         **measure(argv, out / "run.log", int(rss_limit_gib * 2**30))})
            subprocess.run(["rm", "-rf", str(out / "examples")], check=True)  # gigabytes at 10M rows
            (output_dir / "bench-example-gen.json").write_text(json.dumps(runs, indent=1))
            (output_dir / "bench-example-gen.md").write_text(markdown(runs, workers))
    print(markdown(runs, workers))


@main.command("one")
@click.option("--executor", type=click.Choice(sorted(EXECUTORS)), required=True)
@click.option("--workers", type=int, required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def one(executor: str, workers: int, data: Path, out: Path) -> None:
    """One executor's run, in this process (what `main` measures)."""
    import importlib

    import models  # noqa: F401  (the project's Keras choice, before TensorFlow is imported)

    module = importlib.import_module(EXECUTORS[executor])
    args = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    run_executor(module.Executor, args, data, out)


if __name__ == "__main__":
    main()
