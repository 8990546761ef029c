"""Benchmark: the Beam components on this machine's direct runner and on a Flink cluster, side by side.

The same synthetic rows (data/synthetic.py), one run each, back to back:

  direct-mp   `beam_runner.py --profile direct-mp --beam-workers 2` (FnApiRunner, 2 worker processes)
  flink       `beam_runner.py --profile flink` on a Flink session cluster this benchmark starts
              (tools/cluster.sh, its own ports and run directory: a JobManager and two one-slot
              TaskManagers, parallelism 2) and stops afterwards; SDK workers LOOPBACK
  flink-pool  the same with `--environment-type EXTERNAL` on the cluster's SDK worker pool

Per run: wall time, peak RSS of the run's process tree (the pipeline, its Beam workers and Beam's
job server JVM) and of each cluster JVM (JobManager, each TaskManager: daemons, not children of
the run), their peak sum, and per-component time from MLMD. `--scale` instead runs one profile
(`--profile`, or `auto`: the faster of an earlier side-by-side's bench-beam.json) at each
`--rows`: the scaling line. Writes bench-beam.md/.json (or bench-scale.md/.json) under
--output-dir and prints the Markdown. Figures, not a test.

    python -m benchmarks.beam_clusters --output-dir outputs/bench --rows 1000000
    python -m benchmarks.beam_clusters --output-dir outputs/bench --scale --rows 1000000 --rows 3000000 --rows 10000000
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from benchmarks.pipeline import REPO, _gib, _s, loadavg, read_figures, synthetic_dir, tree_rss

# flink: SDK workers LOOPBACK (threads of the run's process); flink-pool: EXTERNAL, the worker
# pool tools/cluster.sh starts beside the cluster (one Python process per TaskManager).
PROFILES = ("direct-mp", "flink", "flink-pool")
INTERRUPTED = -signal.SIGINT  # a run stopped by Ctrl-C: its figures so far are kept, no later run starts
BEAM_NODES = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")
OTHER_NODES = ("Trainer", "TFLiteExport", "ServingCheck")


@dataclasses.dataclass
class ClusterRun:
    profile: str
    rows: int
    wall_s: float
    returncode: int
    peak_rss: dict[str, int]  # process -> peak bytes ("run": the run's tree; "sum": all at once)
    components: dict[str, float]
    load_before: str
    load_after: str
    log: str


def flink_daemons(run_dir: Path) -> dict[str, int]:
    """The cluster's JVMs and its SDK worker pool by name, from the pid files tools/cluster.sh writes."""
    daemons = {}
    for kind, name in (("standalonesession", "JobManager"), ("taskexecutor", "TaskManager")):
        pidfile = run_dir / f"flink-tfx-taxi-{kind}.pid"
        pids = pidfile.read_text().split() if pidfile.is_file() else []
        for i, pid in enumerate(pids, 1):
            daemons[name if kind == "standalonesession" else f"{name} {i}"] = int(pid)
    pool = run_dir / "worker-pool.pid"
    if pool.is_file():  # the SDK worker pool, and with it (its process tree) its workers
        daemons["worker pool"] = int(pool.read_text().split()[0])
    return daemons


def measured_run(argv: list[str], log: Path, daemons: dict[str, int],
                 rss_limit: int | None = None) -> tuple[float, int, dict[str, int], str, str]:
    """Runs argv; its wall time, exit code and the peak RSS of its tree, of each daemon and of all together.

    Over rss_limit bytes (all together), the run's process tree is killed (exit -9): a run past the
    goal's memory has failed it, and the machine stays usable.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    before = loadavg()
    peaks = {"run": 0, **{name: 0 for name in daemons}, "sum": 0}
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                now = {"run": tree_rss(proc.pid), **{name: tree_rss(pid) for name, pid in daemons.items()}}
                for name, value in now.items():
                    peaks[name] = max(peaks[name], value)
                peaks["sum"] = max(peaks["sum"], sum(now.values()))
                if rss_limit and peaks["sum"] > rss_limit and proc.poll() is None:
                    out.write(f"\nbenchmark: killed, peak RSS {_gib(peaks['sum'])} GiB over the limit "
                              f"{_gib(rss_limit)} GiB\n")
                    out.flush()
                    os.killpg(proc.pid, signal.SIGKILL)
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C (SIGINT): stop the run, keep what it measured so far
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = INTERRUPTED
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    return wall, code, peaks, before, loadavg()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster(action: str, env: dict[str, str]) -> None:
    result = subprocess.run(["bash", "tools/cluster.sh", "flink", action], cwd=REPO, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise click.ClickException(f"tools/cluster.sh flink {action} failed: {result.stderr.strip()[-2000:]}")


def one_run(out: Path, profile: str, rows: int, data: Path, extra: list[str], flink: str | None,
            daemons: dict[str, int], rss_limit: int | None = None, pool_port: str | None = None) -> ClusterRun:
    from pipeline.locations import OutputDir

    target = out / f"beam-{profile}-{rows}"
    shutil.rmtree(target, ignore_errors=True)
    argv = [sys.executable, "beam_runner.py", "--profile", profile.removesuffix("-pool"), "--output-dir",
            str(target), "--data-dir", str(data), *extra]
    if profile.startswith("flink"):
        argv += ["--flink-master", flink]
        if profile == "flink-pool":
            argv += ["--environment-type", "EXTERNAL", "--image", f"127.0.0.1:{pool_port}"]
    else:
        argv += ["--beam-workers", "2"]
    click.echo(f"... {profile}, {rows:,} rows", err=True)
    wall, code, peaks, before, after = measured_run(argv, out / "logs" / f"beam-{profile}-{rows}.log",
                                                    daemons if profile.startswith("flink") else {}, rss_limit)
    figures = read_figures(profile, None, OutputDir(target).metadata_path, "chicago_taxi", rows, 0)
    # A component still RUNNING when the run was killed has no time of its own (n/a, not 0).
    times = {n: t for n, t in figures.components.items() if figures.states.get(n) in ("COMPLETE", "CACHED", "FAILED")}
    return ClusterRun(profile, rows, wall, code, peaks, times, before, after,
                      str(out / "logs" / f"beam-{profile}-{rows}.log"))


# Issue 16's goal for this machine: these rows end to end within both limits.
GOAL_ROWS, GOAL_WALL_S, GOAL_RSS = 10_000_000, 30 * 60, 12 * 2**30


def goal_lines(runs: list[ClusterRun]) -> list[str]:
    """A verdict for every run at the goal's row count."""
    head = f"Goal ({GOAL_ROWS:,} rows end to end in <= {GOAL_WALL_S // 60} min and <= {_gib(GOAL_RSS)} GiB)"
    return [f"{head}, {r.profile}: " + ("met" if r.returncode == 0 and r.wall_s <= GOAL_WALL_S
                                        and r.peak_rss["sum"] <= GOAL_RSS else "NOT met")
            + f" ({r.wall_s / 60:.1f} min, {_gib(r.peak_rss['sum'])} GiB"
            + ("" if r.returncode == 0 else ", did not complete") + ")"
            for r in runs if r.rows == GOAL_ROWS]


def markdown(title: str, runs: list[ClusterRun]) -> str:
    lines = [f"# {title} ({os.cpu_count()} cores)", "",
             "| profile | rows | wall, s | peak RSS sum, GiB | peak RSS per process, GiB | "
             + " | ".join(f"{n}, s" for n in BEAM_NODES + OTHER_NODES) + " | load before -> after |",
             "|---|---:|---:|---:|---|" + "---:|" * len(BEAM_NODES + OTHER_NODES) + "---|"]
    for r in runs:
        per = ", ".join(f"{name} {_gib(v)}" for name, v in r.peak_rss.items() if name != "sum")
        cells = " | ".join(_s(r.components.get(n)) for n in BEAM_NODES + OTHER_NODES)
        status = ("" if r.returncode == 0 else f" **KILLED at the RSS limit ({r.log})**"
                  if r.returncode == -signal.SIGKILL else f" **STOPPED by hand ({r.log})**"
                  if r.returncode == INTERRUPTED else f" **FAILED (exit {r.returncode}, {r.log})**")
        lines.append(f"| {r.profile}{status} | {r.rows:,} | {r.wall_s:.0f} | {_gib(r.peak_rss['sum'])} | {per} | "
                     f"{cells} | {r.load_before} -> {r.load_after} |")
    lines += ["", "run: the pipeline's process tree (its Beam workers, Beam's job server JVM); JobManager and "
              "TaskManagers: the Flink cluster's JVMs; worker pool: the SDK worker pool and its workers (flink-pool); "
              "sum: the peak of all of them at once.", ""]
    goal = goal_lines(runs)
    return "\n".join(lines + goal + ([""] if goal else []))


def faster(previous: Path) -> str:
    runs = json.loads(previous.read_text())["runs"]
    ok = [r for r in runs if r["returncode"] == 0]
    if not ok:
        raise click.ClickException(f"{previous}: no successful run to pick the faster profile from")
    return min(ok, key=lambda r: r["wall_s"])["profile"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("outputs/bench"), show_default=True)
@click.option("--rows", "row_counts", type=int, multiple=True, required=True, help="Synthetic rows; repeatable.")
@click.option("--scale", is_flag=True, default=False, help="The scaling line: one profile at each --rows.")
@click.option("--profile", "scale_profile", type=click.Choice(("auto",) + PROFILES), default="auto",
              show_default=True, help="--scale: the profile; auto: the faster in <output dir>/bench-beam.json.")
@click.option("--seed", type=int, default=0, show_default=True, help="Synthetic data seed.")
@click.option("--arg", "extra", multiple=True, help="Extra beam_runner.py option for every run, e.g. --arg=--no-report.")
@click.option("--rss-limit-gib", type=float, default=20.0, show_default=True,
              help="Kill a run whose processes hold more than this together (0: no limit).")
def main(output_dir: Path, row_counts: tuple[int, ...], scale: bool, scale_profile: str, seed: int,
         extra: tuple[str, ...], rss_limit_gib: float) -> None:
    out = output_dir.absolute()
    out.mkdir(parents=True, exist_ok=True)
    if scale:
        profiles = (scale_profile if scale_profile != "auto" else
                    faster(out / "bench-beam.json") if (out / "bench-beam.json").is_file() else "direct-mp",)
    else:
        profiles = PROFILES
    env, flink, daemons = None, None, {}
    if any(p.startswith("flink") for p in profiles):
        run_dir = out / "flink-run"
        shutil.rmtree(run_dir, ignore_errors=True)
        env = dict(os.environ, FLINK_REST_PORT=str(free_port()), FLINK_RPC_PORT=str(free_port()),
                   FLINK_WORKER_POOL_PORT=str(free_port()), FLINK_RUN_DIR=str(run_dir))
        click.echo("... starting a Flink cluster", err=True)
        cluster("up", env)
        flink, daemons = f"127.0.0.1:{env['FLINK_REST_PORT']}", flink_daemons(run_dir)
    name = "bench-scale" if scale else "bench-beam"
    title = (f"Scaling: {profiles[0]} at " + ", ".join(f"{r:,}" for r in row_counts) + " rows") if scale else \
        "The Beam components on direct-mp and on Flink (parallelism 2), the same rows"
    runs, limit = [], int(rss_limit_gib * 2**30) or None
    try:
        for rows in row_counts:
            data, _ = synthetic_dir(out, rows, seed)
            for profile in profiles:
                runs.append(one_run(out, profile, rows, data, list(extra), flink, daemons, limit,
                                    env and env["FLINK_WORKER_POOL_PORT"]))
                # After every run, so that a long series stopped part way keeps what it measured.
                text = markdown(title, runs)
                (out / f"{name}.md").write_text(text)
                (out / f"{name}.json").write_text(json.dumps({"runs": [dataclasses.asdict(r) for r in runs]},
                                                             indent=1))
                if runs[-1].returncode == INTERRUPTED:
                    break
            if runs and runs[-1].returncode == INTERRUPTED:
                break
    finally:
        if env is not None:
            cluster("down", env)
    click.echo(text)
    click.echo(f"Written: {out / (name + '.md')}, {out / (name + '.json')}")


if __name__ == "__main__":
    main()
