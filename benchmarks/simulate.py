"""Continuous training, simulated: synthetic spans arrive one at a time, the pipeline runs after each.

Span i is written into the data directory (data.synthetic.write_span: fares rising by
--fare-drift a span, span --broken-span broken the --broken-kind way), then
`python -m cli run --data-dir DATA --output-dir OUT ARGS...` runs on it, as a scheduler would
after each day's data landed. A broken span's run fails (the data gate stops it) and the next span
goes on. At the end `python -m cli history` shows every run; the table printed before it gives
each run's exit status and wall time.

    python -m benchmarks.simulate --spans 5 --output-dir /tmp/sim [--broken-span 3] [-- --warm-start ...]
    make simulate SPANS=5 [OUTPUT_DIR=...] [ARGS="--warm-start"]
"""

import subprocess
import sys
import time
from pathlib import Path

import click
from tabulate import tabulate

from data import synthetic

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--spans", type=click.IntRange(min=1), required=True, help="How many spans arrive.")
@click.option("--output-dir", type=click.Path(path_type=Path), required=True,
              help="The pipeline's output directory (a new one: its history is this simulation's).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where the spans land (a new directory) [default: <output dir>/spans].")
@click.option("--rows", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Rows per span (2/3 train: the data gate compares drift from 1,000 training rows).")
@click.option("--fare-drift", type=float, default=0.03, show_default=True, help="Fares rise this much a span.")
@click.option("--broken-span", type=int, default=None, help="This span is broken [default: 3 when --spans >= 4].")
@click.option("--broken-kind", type=click.Choice(synthetic.BROKEN_KINDS), default="payment", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def main(spans: int, output_dir: Path, data_dir: Path | None, rows: int, fare_drift: float, broken_span: int | None,
         broken_kind: str, seed: int, run_args: tuple[str, ...]) -> None:
    """RUN_ARGS go to every `cli run` (e.g. --warm-start --train-steps 300)."""
    data_dir = data_dir or output_dir / "spans"
    if broken_span is None and spans >= 4:
        broken_span = 3
    for directory, what in ((output_dir, "--output-dir"), (data_dir, "--data-dir")):
        if directory.exists() and any(p for p in directory.iterdir() if p != data_dir):
            raise click.UsageError(f"{what} {directory} is not empty: a simulation starts from no data and no "
                                   f"runs (remove it, or choose another)")
    if broken_span is not None and not 1 <= broken_span <= spans:
        raise click.UsageError(f"--broken-span must be between 1 and {spans}, got {broken_span}")
    generator = synthetic.Generator()
    results = []
    for span in range(1, spans + 1):
        broken = broken_kind if span == broken_span else None
        synthetic.write_span(data_dir, span, rows, seed, fare_drift, broken, generator)
        what = f"broken: {broken}" if broken else f"fares x{(1 + fare_drift) ** (span - 1):.3f}"
        click.echo(f"\n=== span {span}/{spans} arrived ({rows} rows, {what}): "
                   f"{' '.join(['cli', 'run', '--data-dir', str(data_dir), '--output-dir', str(output_dir), *run_args])}",
                   err=True)
        started = time.perf_counter()
        status = subprocess.run(cli("run", "--data-dir", str(data_dir), "--output-dir", str(output_dir), *run_args),
                                cwd=REPO).returncode
        seconds = time.perf_counter() - started
        results.append([span, what, "ok" if status == 0 else f"failed (exit {status})", f"{seconds:.0f}"])
    click.echo("\n" + tabulate(results, headers=["span", "data", "run", "wall s"]))
    expected = {span for span, _, run, _ in results if run != "ok"} == ({broken_span} if broken_span else set())
    click.echo(f"\n=== history: cli history --output-dir {output_dir}")
    history = subprocess.run(cli("history", "--output-dir", str(output_dir)), cwd=REPO).returncode
    if not expected or history != 0:
        sys.exit("simulate: " + ("the runs did not fail exactly on the broken span" if not expected
                                 else f"cli history failed (exit {history})"))


if __name__ == "__main__":
    main()
