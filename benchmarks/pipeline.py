"""Benchmark: this project's pipeline side by side with TFX's own chicago taxi example.

In one invocation, on one machine, back to back:

  (a) this project's default run (`python -m cli run`) on the bundled data: cold, then twice more
      on the same store (the same command again: the 2nd and 3rd runs are cached through the push;
      TFX's example re-evaluates its model against itself on its 2nd run);
  (b) TFX's `taxi_pipeline_native_keras.py` (its own BeamDagRunner, Beam args and module file),
      copied with its data out of the installed tfx package into a scratch HOME (the layout it
      expects: ~/taxi/...), run unmodified, the same three times;
  (c) optionally (--rows N, repeatable) this project on N synthetic rows (data/synthetic.py).

Per run: wall time, peak RSS of the whole process tree (sampled every 0.2 s from /proc),
per-component wall time from MLMD executions, rows/s for ExampleGen, Transform and Evaluator,
training examples/s (steps x batch / Trainer wall), eval binary accuracy and AUC (TFMA), and the
load average before and after. Writes bench.md, bench.json and bench.png under --output-dir and
prints the Markdown. Figures, not a test: nothing here passes or fails.

    python -m benchmarks.pipeline --output-dir outputs/bench [--rows 100000 --rows 1000000]
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parent.parent
ANCHOR_PIPELINE = "chicago_taxi_native_keras"
ANCHOR_FILES = ("taxi_pipeline_native_keras.py", "taxi_utils_native_keras.py")
ANCHOR_TRAIN = (1000, 40)  # its TrainArgs(num_steps=1000) and run_fn's batch size 40
PROJECT_PIPELINE = "chicago_taxi"
# Runs on one store: the first is cold. In TFX's example the second re-runs the Evaluator (the first
# run's model, now blessed, becomes its own baseline), the Pusher and what follows; from the third
# on, everything is cached. This project's baseline is never the candidate (pipeline/baseline.py),
# so its second run is already cached through the push.
RUN_NAMES = ("cold", "2nd run", "3rd run")


def run_name(i: int) -> str:
    return RUN_NAMES[i] if i < len(RUN_NAMES) else f"run {i + 1}"


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- process tree RSS ---------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and all its descendants."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    return total


@dataclasses.dataclass
class Timed:
    wall_s: float
    peak_rss: int
    returncode: int
    load_before: str
    load_after: str
    log: Path


def timed_run(argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> Timed:
    """Runs argv to completion, its output to `log`; wall time and peak process-tree RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    before = loadavg()
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak, done = 0, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss(proc.pid))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    return Timed(wall, peak, code, before, loadavg(), log)


# --- what MLMD and the artifacts say ------------------------------------------------------------


@dataclasses.dataclass
class RunFigures:
    label: str
    timed: Timed
    rows: int
    train_examples: int  # steps x batch size
    components: dict[str, float] = dataclasses.field(default_factory=dict)  # node id -> seconds
    states: dict[str, str] = dataclasses.field(default_factory=dict)
    split_rows: dict[str, int] = dataclasses.field(default_factory=dict)
    accuracy: float | None = None
    auc: float | None = None
    run_seconds: float | None = None  # first execution start to last end, from MLMD
    beam_mode: str = ""  # the Beam running mode the components ran in

    def rate(self, node: str, rows: int) -> float | None:
        seconds = self.components.get(node)
        if not seconds or self.states.get(node) != "COMPLETE":
            return None
        return rows / seconds

    def rates(self) -> dict[str, float | None]:
        total = self.rows
        evaluated = self.split_rows.get("eval", 0)
        return {
            "ExampleGen rows/s": self.rate("CsvExampleGen", total),
            "Transform rows/s": self.rate("Transform", total),
            "Evaluator rows/s": self.rate("Evaluator", evaluated),
            "Trainer examples/s": self.rate("Trainer", self.train_examples),
        }

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["timed"]["log"] = str(self.timed.log)
        out["rates"] = self.rates()
        return out


def read_figures(label: str, timed: Timed, metadata: Path, pipeline: str, rows: int,
                 train_examples: int) -> RunFigures:
    from lineage.query import Lineage
    from lineage.store import StoreAddress, open_store

    figures = RunFigures(label, timed, rows, train_examples)
    if not metadata.is_file():
        return figures
    run = Lineage(open_store(StoreAddress(sqlite=metadata))).latest_run(pipeline)
    figures.run_seconds = run.seconds
    for execution in run.executions:
        figures.components[execution.node_id] = execution.seconds
        figures.states[execution.node_id] = execution.state
    stats = run.output("StatisticsGen", "statistics")
    if stats is not None:
        from report.statistics import load_statistics

        figures.split_rows = {s.split: s.examples for s in load_statistics(stats.uri)}
    evaluation = run.output("Evaluator", "evaluation")
    if evaluation is not None:
        from report.evaluation import OVERALL, slice_metrics

        overall = next((s for s in slice_metrics(evaluation.uri) if s.slice == OVERALL), None)
        if overall is not None:
            figures.accuracy = overall.candidate.get("binary_accuracy")
            figures.auc = overall.candidate.get("auc")
    return figures


def csv_rows(data_dir: Path) -> int:
    rows = 0
    for path in data_dir.glob("*.csv"):
        with path.open("rb") as f:
            rows += sum(1 for _ in f) - 1
    return rows


# --- the runs -----------------------------------------------------------------------------------


def project_runs(out: Path, data_dir: Path | None, label: str, runs: int, extra: list[str]) -> list[RunFigures]:
    """This project's `cli run`, `runs` times on one output dir (the first cold)."""
    from pipeline.config import PipelineConfig
    from pipeline.locations import OutputDir

    target = out / label
    shutil.rmtree(target, ignore_errors=True)
    config, output = PipelineConfig(), OutputDir(target)
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(target)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    from data import taxi

    rows = csv_rows(data_dir or taxi.materialize())
    hp = config.hyperparameters
    results = []
    for i in range(runs):
        name = f"{label} {run_name(i)}"
        click.echo(f"... {name}", err=True)
        timed = timed_run(argv + extra, out / "logs" / f"{label}-{i + 1}.log", REPO)
        figures = read_figures(name, timed, output.metadata_path, PROJECT_PIPELINE, rows,
                               config.train_steps * hp.train_batch_size)
        figures.beam_mode = beam_mode_of(data_dir, extra)
        results.append(figures)
    return results


def beam_mode_of(data_dir: Path | None, extra: list[str]) -> str:
    """The running mode `cli run` resolves for this data and these options."""
    from pipeline.beam import DirectBeam

    mode = next((a.split("=", 1)[1] for a in extra if a.startswith("--beam-mode=")), "auto")
    return DirectBeam(mode).resolved_mode(str(data_dir) if data_dir else None)


def anchor_runs(out: Path, runs: int) -> list[RunFigures]:
    """TFX's own taxi example, unmodified, in a scratch HOME laid out as its docstring says."""
    import tfx

    from data import taxi

    source = Path(tfx.__file__).resolve().parent / "examples" / "chicago_taxi_pipeline"
    home = out / "tfx_example_home"
    shutil.rmtree(home, ignore_errors=True)
    (home / "taxi" / "data" / "simple").mkdir(parents=True)
    for name in ANCHOR_FILES:
        shutil.copy2(source / name, home / "taxi" / name)
    shutil.copy2(taxi.bundled_csv(), home / "taxi" / "data" / "simple" / "data.csv")
    env = {**os.environ, "HOME": str(home)}
    env.pop("TF_USE_LEGACY_KERAS", None)  # as a user would run it: TFT picks its Keras itself
    metadata = home / "tfx" / "metadata" / ANCHOR_PIPELINE / "metadata.db"
    rows = csv_rows(home / "taxi" / "data" / "simple")
    results = []
    for i in range(runs):
        name = f"TFX example {run_name(i)}"
        click.echo(f"... {name}", err=True)
        timed = timed_run([sys.executable, ANCHOR_FILES[0]], out / "logs" / f"tfx-example-{i + 1}.log",
                          home / "taxi", env)
        results.append(read_figures(name, timed, metadata, ANCHOR_PIPELINE, rows, ANCHOR_TRAIN[0] * ANCHOR_TRAIN[1]))
    return results


def synthetic_dir(out: Path, rows: int, seed: int) -> tuple[Path, float]:
    """Synthetic data for `rows` (reused when complete); and the seconds generating it took."""
    from data import synthetic

    target = out / "data" / f"synthetic-{rows}-seed{seed}"
    if synthetic.is_complete(target, rows):
        return target, 0.0
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    synthetic.write(target, rows, seed)
    return target, time.perf_counter() - started


# --- the report ---------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    if max(a, b) < 0.05:  # both cached or trivial: a ratio of milliseconds is noise
        return ""
    return f"{a / b:.2f}"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


# Components side by side; each row: (label, project node id, anchor node id).
COMPONENT_ROWS = (
    ("ExampleGen", "CsvExampleGen", "CsvExampleGen"),
    ("StatisticsGen", "StatisticsGen", "StatisticsGen"),
    ("SchemaGen / ImportSchemaGen", "ImportSchemaGen", "SchemaGen"),
    ("ExampleValidator", "ExampleValidator", "ExampleValidator"),
    ("Transform", "Transform", "Transform"),
    ("Trainer", "Trainer", "Trainer"),
    ("Evaluator", "Evaluator", "Evaluator"),
    ("Pusher", "Pusher", "Pusher"),
)


def component_rows(project: RunFigures, anchor: RunFigures) -> list[tuple[str, float | None, float | None]]:
    listed = {p for _, p, _ in COMPONENT_ROWS} | {a for _, _, a in COMPONENT_ROWS}
    rows = [(label, project.components.get(p), anchor.components.get(a)) for label, p, a in COMPONENT_ROWS]
    rows += [(node, s, None) for node, s in project.components.items() if node not in listed and "resolver" not in node]
    rows += [(node, None, s) for node, s in anchor.components.items() if node not in listed and "resolver" not in node]
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Benchmark: this project vs TFX's chicago taxi example ({results['machine']})", ""]
    pairs = results["pairs"]
    if pairs:
        lines += ["| | " + " | ".join(f"{p['project'].label} | {p['anchor'].label} | ratio" for p in pairs) + " |",
                  "|---|" + "---:|---:|---:|" * len(pairs)]

        def row(name: str, get, fmt=_s) -> None:
            cells = []
            for p in pairs:
                a, b = get(p["project"]), get(p["anchor"])
                cells += [fmt(a), fmt(b), _ratio(a, b)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")

        row("wall time, s (process start to exit)", lambda r: r.timed.wall_s)
        row("pipeline time, s (MLMD: first start to last end)", lambda r: r.run_seconds)
        row("peak RSS, GiB (process tree)", lambda r: r.timed.peak_rss, _gib)
        for label, p_node, a_node in COMPONENT_ROWS:
            row(f"{label}, s", lambda r, p=p_node, a=a_node: r.components.get(p if r.label.startswith("project") else a))
        extra = [n for p in pairs for n in p["project"].components if n not in {x[1] for x in COMPONENT_ROWS}
                 and "resolver" not in n]
        for node in dict.fromkeys(extra):
            row(f"{node} (project only), s", lambda r, n=node: r.components.get(n) if r.label.startswith("project") else None)
        for key in ("ExampleGen rows/s", "Transform rows/s", "Evaluator rows/s", "Trainer examples/s"):
            row(key, lambda r, k=key: r.rates()[k], lambda v: _s(v, 0))
        row("eval binary accuracy", lambda r: r.accuracy, lambda v: _s(v, 4))
        row("eval AUC", lambda r: r.auc, lambda v: _s(v, 4))
        def text_row(name: str, get) -> None:
            cells = []
            for p in pairs:
                cells += [get(p["project"]), get(p["anchor"]), ""]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")

        text_row("components executed (not cached)", lambda r: str(sum(s == "COMPLETE" for s in r.states.values())))
        text_row("load average before -> after", lambda r: f"{r.timed.load_before} -> {r.timed.load_after}")
        lines.append("")
        lines.append("ratio = project / TFX example (below 1: the project is faster or smaller).")
        lines.append("")
    large: list[RunFigures] = results["large"]
    if large:
        lines += ["## This project on synthetic data", "",
                  "| rows | Beam mode | generate, s | wall, s | peak RSS, GiB | ExampleGen, s | StatisticsGen, s | Transform, s | "
                  "Trainer, s | Evaluator, s | ExampleGen rows/s | Transform rows/s | Evaluator rows/s | accuracy | AUC | "
                  "load before -> after |",
                  "|---:|---|" + "---:|" * 13 + "---|"]
        for r in large:
            rates = r.rates()
            c = r.components
            lines.append(
                f"| {r.rows:,} | {r.beam_mode} | {_s(results['generate_s'].get(r.rows))} | {r.timed.wall_s:.0f} | {_gib(r.timed.peak_rss)} | "
                f"{_s(c.get('CsvExampleGen'))} | {_s(c.get('StatisticsGen'))} | {_s(c.get('Transform'))} | "
                f"{_s(c.get('Trainer'))} | {_s(c.get('Evaluator'))} | {_s(rates['ExampleGen rows/s'], 0)} | "
                f"{_s(rates['Transform rows/s'], 0)} | {_s(rates['Evaluator rows/s'], 0)} | {_s(r.accuracy, 4)} | "
                f"{_s(r.auc, 4)} | {r.timed.load_before} -> {r.timed.load_after} |")
        if len(large) > 1:
            a, b = large[0], large[-1]
            lines += ["", f"From {a.rows:,} to {b.rows:,} rows ({b.rows / a.rows:.0f}x): wall x{b.timed.wall_s / a.timed.wall_s:.1f}, "
                      f"Beam components (ExampleGen+StatisticsGen+Transform+Evaluator) x"
                      f"{_beam_seconds(b) / max(_beam_seconds(a), 1e-9):.1f}."]
        lines.append("")
    lines += targets(results)
    failed = [r for r in results["all"] if r.timed.returncode != 0]
    for r in failed:
        lines.append(f"**{r.label} FAILED** (exit {r.timed.returncode}): see {r.timed.log}")
    return "\n".join(lines) + "\n"


# The benchmark issue's targets, as ratios measured in this one invocation.
MAX_WALL_RATIO = 0.5
LARGE_ROWS, LARGE_MAX_WALL_S, LARGE_MAX_RSS = 1_000_000, 30 * 60, 8 * 2**30


def targets(results: dict[str, Any]) -> list[str]:
    """One line per target: the figure, the limit, met or not."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = []
    for i, pair in enumerate(results["pairs"]):
        ours, theirs = pair["project"], pair["anchor"]
        if not (ours.timed.wall_s and theirs.timed.wall_s):
            continue
        ratio = ours.timed.wall_s / theirs.timed.wall_s
        what = "cold" if i == 0 else f"re-run ({run_name(i)})"
        lines.append(f"- {what} wall <= {MAX_WALL_RATIO}x the TFX example's: {ratio:.2f}x "
                     f"({ours.timed.wall_s:.1f} s vs {theirs.timed.wall_s:.1f} s): {verdict(ratio <= MAX_WALL_RATIO)}")
        if i == 0 and ours.accuracy is not None and theirs.accuracy is not None:
            lines.append(f"- eval binary accuracy >= the TFX example's: {ours.accuracy:.4f} vs {theirs.accuracy:.4f}: "
                         f"{verdict(ours.accuracy >= theirs.accuracy)} (AUC {_s(ours.auc, 4)})")
    for r in results["large"]:
        if r.rows == LARGE_ROWS and r.timed.wall_s:
            ok = r.timed.wall_s <= LARGE_MAX_WALL_S and r.timed.peak_rss <= LARGE_MAX_RSS
            lines.append(f"- {r.rows:,} synthetic rows in <= 30 min with peak RSS <= 8 GiB: {r.timed.wall_s:.0f} s, "
                         f"{_gib(r.timed.peak_rss)} GiB: {verdict(ok)}")
    return ["## Targets", "", *lines, ""] if lines else []


def _beam_seconds(r: RunFigures) -> float:
    return sum(r.components.get(n, 0.0) for n in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"))


def plot(results: dict[str, Any], path: Path) -> None:
    """Per-component bars, project vs TFX example, one panel per run; and the synthetic sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs, large = results["pairs"], results["large"]
    panels = len(pairs) + (1 if large else 0)
    if not panels:
        return
    columns = min(panels, 2)
    grid_rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(grid_rows, columns, figsize=(7.5 * columns, 5.5 * grid_rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[panels:]:
        ax.axis("off")
    for ax, p in zip(flat, pairs):
        rows = component_rows(p["project"], p["anchor"])
        rows.append(("whole run (wall)", p["project"].timed.wall_s, p["anchor"].timed.wall_s))
        y = range(len(rows))
        ax.barh([i - 0.2 for i in y], [r[1] or 0 for r in rows], height=0.4, label=p["project"].label)
        ax.barh([i + 0.2 for i in y], [r[2] or 0 for r in rows], height=0.4, label=p["anchor"].label)
        ax.set_yticks(list(y), [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("seconds (MLMD execution times; last row: process wall time)")
        ax.set_title(f"{p['project'].label} vs {p['anchor'].label}", fontsize=10)
        ax.legend(loc="center right", fontsize=8)
    if large:
        ax = flat[panels - 1]
        nodes = [n for n in ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "TFLiteExport")]
        labels = [f"{r.rows:,}\n{r.beam_mode}" for r in large]
        left = [0.0] * len(large)
        for node in nodes:
            widths = [r.components.get(node, 0.0) for r in large]
            ax.barh(labels, widths, left=left, label=node)
            left = [a + b for a, b in zip(left, widths)]
        others = [max(r.timed.wall_s - l, 0.0) for r, l in zip(large, left)]
        ax.barh(labels, others, left=left, label="everything else (start-up, other components)", color="lightgrey")
        ax.set_xlabel("seconds (wall)")
        ax.set_ylabel("synthetic rows")
        ax.set_title("This project on synthetic data", fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=7)
    fig.suptitle(f"Per-component wall time, {results['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_json(path: Path) -> tuple[str, list[RunFigures], list[RunFigures], list[RunFigures], dict[int, float]]:
    """An earlier bench.json, back as (machine, project runs, TFX example runs, synthetic runs, generate_s)."""
    saved = json.loads(Path(path).read_text())
    runs = []
    for r in saved["runs"]:
        timed = Timed(**{**r["timed"], "log": Path(r["timed"]["log"])})
        runs.append(RunFigures(timed=timed, **{k: v for k, v in r.items() if k not in ("timed", "rates")}))
    ours = [r for r in runs if r.label.startswith("project ")]
    theirs = [r for r in runs if r.label.startswith("TFX example")]
    large = [r for r in runs if r.label.startswith("project-")]
    return saved["machine"], ours, theirs, large, {int(k): v for k, v in saved["generate_s"].items()}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("outputs/bench"), show_default=True)
@click.option("--runs", type=int, default=3, show_default=True,
              help="Runs of each pipeline on the default data: cold, 2nd (TFX's example re-evaluates), 3rd (all cached).")
@click.option("--anchor/--no-anchor", default=True, show_default=True, help="Also run TFX's example.")
@click.option("--project/--no-project", default=True, show_default=True, help="Also run this project on the default data.")
@click.option("--rows", "large_rows", type=int, multiple=True, help="Also run the project on this many synthetic rows; repeatable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Synthetic data seed.")
@click.option("--from-json", type=click.Path(exists=True, path_type=Path), default=None,
              help="Only re-render bench.md and bench.png from an earlier bench.json (runs nothing).")
@click.option("--arg", "extra", multiple=True, help="Extra `cli run` option for the project runs, e.g. --arg=--beam-mode=in_memory.")
def main(output_dir: Path, runs: int, anchor: bool, project: bool, large_rows: tuple[int, ...], seed: int,
         from_json: Path | None, extra: tuple[str, ...]) -> None:
    out = output_dir.absolute()
    out.mkdir(parents=True, exist_ok=True)
    if from_json is not None:
        machine, ours, theirs, large, generate_s = load_json(from_json)
    else:
        machine = f"{os.cpu_count()} cores, load average at start {loadavg()}"
        ours = project_runs(out, None, "project", runs, list(extra)) if project else []
        theirs = anchor_runs(out, runs) if anchor else []
        large, generate_s = [], {}
        for rows in large_rows:
            click.echo(f"... synthetic data, {rows:,} rows", err=True)
            data_dir, generate_s[rows] = synthetic_dir(out, rows, seed)
            large += project_runs(out, data_dir, f"project-{rows}", 1, list(extra))
    pairs = [{"project": a, "anchor": b} for a, b in zip(ours, theirs)]
    results = {"machine": machine, "pairs": pairs, "large": large, "generate_s": generate_s,
               "all": ours + theirs + large}
    text = markdown(results)
    (out / "bench.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(
        {"machine": machine, "runs": [r.to_json() for r in results["all"]], "generate_s": generate_s}, indent=1))
    plot(results, out / "bench.png")
    click.echo(text)
    click.echo(f"Written: {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")


if __name__ == "__main__":
    main()
