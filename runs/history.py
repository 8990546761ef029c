"""`python -m cli history`: every run of the pipeline, one row each, read from MLMD and the
artifacts it names (one source of truth): the span it read and the rows in it, the spans its model
was trained on, the data gate's verdict with each compared feature's drift score against the
accepted span it was compared with, the anomalies, the model's eval metrics, blessed or not, and
the version pushed. Also written as Markdown and HTML (with the drift chart) under <output>/reports/.
"""

import dataclasses
import html
from pathlib import Path
from typing import Any

from lineage.query import Lineage, RunInfo
from pipeline.gate_records import accepted_from, statistics_spans
from report import build as report_build

MAIN = ("auc", "binary_accuracy")


@dataclasses.dataclass
class Row:
    run_id: str
    state: str
    span: int | None
    rows: int | None
    trained_on: list[int]
    gate: str  # passed / stopped / not run
    compared_with: int | None  # the accepted span the drift was measured against
    drift: dict[str, float]  # feature -> score
    max_drift: float | None
    anomalies: int | None  # blocking findings
    metrics: dict[str, float]
    blessed: bool | None
    pushed: str | None  # the version pushed (its directory name)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def collect(lineage: Lineage, store, pipeline: str) -> list[Row]:  # noqa: ANN001  (an MLMD store)
    out = []
    for listed in lineage.runs(pipeline):
        run = lineage.with_io(listed)
        out.append(_row(run, store))
    return out


def _row(run: RunInfo, store) -> Row:  # noqa: ANN001
    examples = run.output("CsvExampleGen", "examples")
    statistics = run.output("StatisticsGen", "statistics")
    rows = None
    if statistics is not None:
        from report.statistics import load_statistics

        rows = sum(s.examples for s in load_statistics(statistics.uri))
    verdict = report_build.gate_verdict(run)
    gate_state = (run.states().get("DataGate") or "").upper()
    gate = ("stopped" if gate_state == "FAILED" or (verdict is not None and not verdict.passed)
            else "passed" if gate_state in ("COMPLETE", "CACHED") else "not run")
    compared = None
    gate_execution = run.execution("DataGate")
    baseline = (gate_execution.inputs.get("baseline_statistics") or []) if gate_execution else []
    if baseline:
        source = accepted_from(store, [baseline[0].id])
        compared = statistics_spans(store, list(source.values())).get(source.get(baseline[0].id))
    evaluation = report_build.collect_evaluation(run)
    metrics = dict(evaluation.overall.candidate) if evaluation is not None and evaluation.overall else {}
    pushed = report_build.pushed_destination(run.output("Pusher", "pushed_model"))
    drift = {d.feature: d.score for d in verdict.drift} if verdict else {}
    return Row(
        run_id=run.run_id, state=run.state, span=int(examples.properties.get("span") or 0) if examples else None,
        rows=rows, trained_on=report_build.trained_spans(run), gate=gate, compared_with=compared, drift=drift,
        max_drift=max(drift.values()) if drift else None,
        anomalies=sum(f.blocking for f in verdict.findings) if verdict else None,
        metrics={k: v for k, v in metrics.items() if k in MAIN},
        blessed=report_build.is_blessed(run.output("Evaluator", "blessing")),
        pushed=Path(pushed).name if pushed else None,
    )


HEAD = ["run", "span", "rows", "trained on", "gate", "vs span", "max drift", "blocking", "auc", "accuracy",
        "blessed", "pushed"]


def _cells(r: Row) -> list[str]:
    def num(v, fmt="{:.3f}"):
        return "-" if v is None else fmt.format(v)

    top = max(r.drift, key=r.drift.get) if r.drift else None
    return [r.run_id, num(r.span, "{}"), num(r.rows, "{}"), ",".join(map(str, r.trained_on)) or "-", r.gate,
            num(r.compared_with, "{}"), f"{r.max_drift:.3f} ({top})" if top else "-", num(r.anomalies, "{}"),
            num(r.metrics.get("auc")), num(r.metrics.get("binary_accuracy")),
            {True: "yes", False: "no", None: "-"}[r.blessed], r.pushed or "-"]


def text(found: list[Row]) -> str:
    table = [HEAD] + [_cells(r) for r in found]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEAD))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def _drift_table(found: list[Row]) -> tuple[list[str], list[list[str]]]:
    features = sorted({f for r in found for f in r.drift})
    rows = [[r.run_id, str(r.span), str(r.compared_with)] + [f"{r.drift[f]:.3f}" if f in r.drift else "-" for f in features]
            for r in found if r.drift]
    return ["run", "span", "vs span"] + features, rows


def markdown(found: list[Row]) -> str:
    def md(head, rows):
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(r) + " |" for r in rows])

    drift_head, drift_rows = _drift_table(found)
    return (f"# Run history\n\n{md(HEAD, [_cells(r) for r in found])}\n\n"
            f"## Drift of each compared feature against the accepted span before (TFDV)\n\n{md(drift_head, drift_rows)}\n")


def chart(found: list[Row]) -> bytes | None:
    """Per span: the largest drift score and the eval AUC, one point per run (PNG)."""
    points = [r for r in found if r.span is not None]
    if not points:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(7, 3.2))
    runs = list(range(1, len(points) + 1))
    axis.plot(runs, [r.max_drift if r.max_drift is not None else float("nan") for r in points], "o-", label="max drift")
    axis.plot(runs, [r.metrics.get("auc", float("nan")) for r in points], "s-", label="eval AUC")
    for x, r in zip(runs, points):
        if r.gate == "stopped":
            axis.axvline(x, color="red", alpha=0.3)
    axis.set_xticks(runs, [f"span {r.span}" for r in points], rotation=30)
    axis.set_xlabel("run (red: stopped by the data gate)")
    axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


def write(found: list[Row], directory: Path) -> tuple[Path, Path]:
    """history.md and history.html (chart inline) in `directory`."""
    import base64

    directory.mkdir(parents=True, exist_ok=True)
    md_path, html_path = directory / "history.md", directory / "history.html"
    md_path.write_text(markdown(found))

    def table(head, rows):
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{cells}</tr>{body}</table>"

    png = chart(found)
    picture = f'<img alt="drift and AUC per run" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else ""
    html_path.write_text(
        "<!doctype html><meta charset=utf-8><title>Run history</title>"
        "<style>td,th{padding:2px 8px;border-bottom:1px solid #ddd;font-family:sans-serif}</style>"
        f"<h1>Run history</h1>{picture}{table(HEAD, [_cells(r) for r in found])}"
        f"<h2>Drift of each compared feature against the accepted span before (TFDV)</h2>{table(*_drift_table(found))}")
    return html_path, md_path
