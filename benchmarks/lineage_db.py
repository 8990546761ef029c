"""Benchmark: `trace latest-pushed-model` on a database store (MySQL, MariaDB) with 100+ runs.

Copies a store written by real runs into an empty database (`metadata copy`), appends N runs
that mirror its latest one (lineage/bench.py), then times the trace as the CLI runs it; exits
non-zero when the median misses the 1 s goal, as on SQLite.

    MLMD_MYSQL_PASSWORD=... python -m benchmarks.lineage_db --from outputs/metadata.sqlite \\
        --to mysql://USER@HOST[:PORT]/EMPTY_DATABASE [--runs 100]
"""

import time
from pathlib import Path

import click

from lineage.bench import add_cached_runs_to, report_trace
from lineage.store import StoreAddress
from pipeline import metadata


@click.command()
@click.option("--from", "source", type=click.Path(exists=True, path_type=Path), default=Path("outputs/metadata.sqlite"),
              show_default=True, help="A store written by real runs (run 'make run' first).")
@click.option("--to", "target", required=True, help="mysql://USER@HOST[:PORT]/DATABASE, an empty database.")
@click.option("--runs", type=int, default=100, show_default=True, help="Runs to add.")
@click.option("--repeat", type=int, default=5, show_default=True)
def main(source: Path, target: str, runs: int, repeat: int) -> None:
    dst = metadata.parse(target, Path(target))
    dst.check(write=True)
    started = time.perf_counter()
    metadata.copy_store(metadata.MetadataStore(sqlite=source.absolute()), dst)
    add_cached_runs_to(dst.open(), runs)
    click.echo(f"copied {source} and added {runs} runs in {time.perf_counter() - started:.1f}s")
    report_trace(StoreAddress.of(dst), repeat)


if __name__ == "__main__":
    main()
