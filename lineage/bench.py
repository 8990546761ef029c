"""Benchmark: `trace latest-pushed-model` on a store with many runs.

Copies a store written by real runs, appends N more runs that mirror its latest one (cached
executions over the same artifacts, as TFX records a run that changed nothing), then times the
trace; exits non-zero when the median misses the 1 s goal. Every added run touches the traced
artifacts' events, which is what a long history costs a trace (retrained models do not lengthen
an upstream trace: it leaves baselines out). Usage: python -m lineage.bench [--mlmd-sqlite outputs/metadata.sqlite] [--runs 100]
"""

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import click
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from lineage.query import Lineage
from lineage.store import StoreAddress, open_store


def add_cached_runs(path: Path, runs: int) -> None:
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    add_cached_runs_to(metadata_store.MetadataStore(config), runs)


def add_cached_runs_to(store: metadata_store.MetadataStore, runs: int) -> None:
    """Appends `runs` runs mirroring the store's latest one (see the module docstring)."""
    template = Lineage(store).runs()[-1]
    run_type = store.get_context_type("pipeline_run")
    pipeline_context = next(c for c in store.get_parent_contexts_by_context(template.context_id) if c.type == "pipeline")
    executions = store.get_executions_by_id([e.id for e in template.executions])
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in events})}
    for i in range(runs):
        [run_id] = store.put_contexts([mlmd.Context(type_id=run_type.id, name=f"bench-run-{i:05d}")])
        store.put_parent_contexts([mlmd.ParentContext(child_id=run_id, parent_id=pipeline_context.id)])
        run_context = store.get_contexts_by_id([run_id])[0]
        for execution in executions:
            copy = mlmd.Execution(type_id=execution.type_id, last_known_state=mlmd.Execution.CACHED)
            for key, value in execution.custom_properties.items():
                copy.custom_properties[key].CopyFrom(value)
            pairs = [
                (artifacts[ev.artifact_id], mlmd.Event(type=ev.type, path=ev.path))
                for ev in events
                if ev.execution_id == execution.id
            ]
            contexts = [c for c in store.get_contexts_by_execution(execution.id) if c.type != "pipeline_run"]
            store.put_execution(copy, pairs, contexts + [run_context])


@click.command()
@click.option("--mlmd-sqlite", type=click.Path(exists=True, path_type=Path), default=Path("outputs/metadata.sqlite"),
              show_default=True, help="A store written by real runs (run 'make run' first).")
@click.option("--runs", type=int, default=100, show_default=True, help="Runs to add.")
@click.option("--repeat", type=int, default=5, show_default=True)
def main(mlmd_sqlite: Path, runs: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "bench.sqlite"
        shutil.copyfile(mlmd_sqlite, copy)
        started = time.perf_counter()
        add_cached_runs(copy, runs)
        click.echo(f"added {runs} runs in {time.perf_counter() - started:.1f}s")
        report_trace(StoreAddress(sqlite=copy), repeat)


def report_trace(address: StoreAddress, repeat: int) -> None:
    """Times `trace latest-pushed-model` `repeat` times on a freshly opened store each time (as
    the CLI opens it), prints the figures, and exits non-zero when the median misses 1 s."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        lin = Lineage(open_store(address))
        trace = lin.trace("latest-pushed-model")
        timings.append(time.perf_counter() - started)
    click.echo(
        f"trace latest-pushed-model on {len(lin.runs())} runs in {address.describe()}: median "
        f"{statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms over {repeat} tries "
        f"({len(trace.executions)} executions, {len(trace.artifacts)} artifacts in the trace; goal <= 1000 ms)"
    )
    if statistics.median(timings) > 1.0:
        raise SystemExit("goal missed: the median trace took more than 1 s")


if __name__ == "__main__":
    main()
