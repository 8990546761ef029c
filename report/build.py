"""A run's report: what it gathered (collect) and the files it is written to (write).

Everything comes from the run's MLMD records and the artifacts they point to: TFMA's metrics,
plots and validation result, TFDV's statistics and anomalies, the TFLite export's measurements,
and the executions' own timestamps. Artifacts are found by type, not by node id, so a pipeline
that names its components differently still gets its report.
"""

import base64
import dataclasses
import html
import re
from pathlib import Path
from typing import Any

from components.pusher import options as pusher_options
from components.serving_check import options as serving_options
from components.tflite_export import options as tflite_options
from lineage.query import ArtifactInfo, ExecutionInfo, RunInfo
from models.hyperparameters import Hyperparameters
from report import charts
from report.evaluation import (
    OVERALL, Curves, Gate, SliceMetrics, curves, failure_lines, gates, slice_metrics, validation_result,
)
from report.statistics import Anomaly, SplitStatistics, load_anomalies, load_statistics

MAIN_METRICS = ("auc", "binary_accuracy", "example_count")
SLICE_COLUMNS = ("example_count", "auc", "binary_accuracy", "calibration", "mean_label", "mean_prediction")
TFLITE_PROPERTIES = tflite_options.MEASURES


@dataclasses.dataclass
class Evaluation:
    """What the Evaluator decided and why."""

    uri: str
    metrics: list[SliceMetrics]
    gates: list[Gate]
    failures: list[str]  # TFMA's own failure records
    blessed: bool | None
    baseline: ArtifactInfo | None  # the model compared against (None: no baseline yet)
    execution_state: str

    @property
    def overall(self) -> SliceMetrics | None:
        return next((m for m in self.metrics if m.slice == OVERALL), None)


@dataclasses.dataclass
class RunReport:
    run: RunInfo
    evaluation: Evaluation | None
    model: ArtifactInfo | None
    pushed: ArtifactInfo | None
    tflite: ArtifactInfo | None
    statistics: list[SplitStatistics]
    anomaly_splits: list[str]
    anomalies: list[Anomaly]
    curves: dict[str, Curves]
    pictures: dict[str, bytes]  # name -> PNG
    where: dict[str, str]  # label -> path (MLMD store, TensorBoard logs, log file, ...)
    serving_check: ArtifactInfo | None = None  # ServingCheck's InfraBlessing


def find_output(run: RunInfo, type_suffix: str, key: str | None = None) -> tuple[ExecutionInfo, ArtifactInfo] | tuple[None, None]:
    """The last artifact of a type (matched on the type name's end: 'TFLiteModel') the run output,
    under output `key` when given (Transform also outputs ExampleStatistics, as pre/post_transform_stats)."""
    for execution in reversed(run.executions):
        for name, artifacts in execution.outputs.items():
            if key is not None and name != key:
                continue
            for artifact in reversed(artifacts):
                if artifact.type == type_suffix or artifact.type.endswith("." + type_suffix):
                    return execution, artifact
    return None, None


def collect_evaluation(run: RunInfo) -> Evaluation | None:
    """The Evaluator's metrics, gates and verdict, from TFMA's outputs and MLMD."""
    execution, evaluation = find_output(run, "ModelEvaluation")
    if evaluation is None:
        return None
    metrics = slice_metrics(evaluation.uri)
    baseline = next(iter(execution.inputs.get("baseline_model", [])), None)
    validation = validation_result(evaluation.uri)
    blessing = next((a for artifacts in execution.outputs.values() for a in artifacts if a.type == "ModelBlessing"), None)
    blessed = is_blessed(blessing)
    found = gates(execution.properties.get("eval_config") or {}, metrics, validation, baseline is not None)
    return Evaluation(evaluation.uri, metrics, found, failure_lines(validation), blessed, baseline, execution.state)


def is_blessed(blessing: ArtifactInfo | None) -> bool | None:
    """A ModelBlessing's verdict (None: no blessing artifact)."""
    return None if blessing is None else blessing.properties.get("blessed") == 1


def collect(run: RunInfo, where: dict[str, str] | None = None, pictures: bool = True) -> RunReport:
    evaluation = collect_evaluation(run)
    _, model = find_output(run, "Model")
    _, pushed = find_output(run, "PushedModel")
    _, tflite = find_output(run, "TFLiteModel")
    _, serving_check = find_output(run, "InfraBlessing")
    _, stats = find_output(run, "ExampleStatistics", key="statistics")
    _, anomalies = find_output(run, "ExampleAnomalies")
    anomaly_splits, found_anomalies = load_anomalies(anomalies.uri) if anomalies else ([], [])
    report = RunReport(
        run=run, evaluation=evaluation, model=model, pushed=pushed, tflite=tflite, serving_check=serving_check,
        statistics=load_statistics(stats.uri) if stats else [],
        anomaly_splits=anomaly_splits, anomalies=found_anomalies,
        curves=curves(evaluation.uri) if evaluation else {},
        pictures={}, where=dict(where or {}),
    )
    if pictures:
        report.pictures = draw_pictures(report)
    return report


def draw_pictures(report: RunReport) -> dict[str, bytes]:
    out = {}
    if report.curves:
        out["roc"] = charts.roc(report.curves)
        out["calibration"] = charts.calibration(report.curves)
        candidate = report.curves.get("candidate")
        if candidate and candidate.confusion:
            out["confusion_matrix"] = charts.confusion_matrix(candidate.confusion)
    if report.evaluation and len(report.evaluation.metrics) > 1:
        out["slices"] = charts.slices(report.evaluation.metrics)
    if report.run.executions:
        out["durations"] = charts.durations([(e.node_id, e.state, e.seconds) for e in report.run.executions])
        out["lineage"] = charts.lineage_picture(report.run)
    return out


# --- text shared by the console summary and the report files ------------------------------------


def _pushed(report_or_artifact: Any) -> ArtifactInfo | None:
    return report_or_artifact.pushed if isinstance(report_or_artifact, RunReport) else report_or_artifact


def pushed_destination(report_or_artifact: Any, key: str = "pushed_destination") -> str | None:
    """Where the Pusher published the SavedModel (or, with key=TFLITE_DESTINATION, its twin)."""
    pushed = _pushed(report_or_artifact)
    if pushed is not None and pushed.properties.get("pushed") == 1 and pushed.properties.get(key):
        return str(pushed.properties[key])
    return None


def pushed_tflite(report_or_artifact: Any) -> str | None:
    return pushed_destination(report_or_artifact, pusher_options.TFLITE_DESTINATION)


def serving_check_line(props: dict) -> str:
    """ServingCheck's verdict and figures in one line (summary and report)."""
    reason = props.get(serving_options.REASON, "see the log")
    if props.get("blessed") != 1:
        return reason if reason.startswith(serving_options.NOT_CHECKED) else f"failed: {reason}"
    return (f"passed: {props['requests']} TF Serving requests from a fresh process without this project's code "
            f"(load {props['load_seconds']:.1f} s, latency p50 {props['latency_p50_ms']:.1f} ms, "
            f"p99 {props['latency_p99_ms']:.1f} ms, peak RSS {props['peak_rss_mb']:.0f} MB)")


def not_pushed_reason(report_or_artifact: Any) -> str | None:
    pushed = _pushed(report_or_artifact)
    return None if pushed is None else pushed.properties.get(pusher_options.NOT_PUSHED_REASON)


def verdict(evaluation: Evaluation | None) -> tuple[str, list[str]]:
    """('yes'/'no'/..., the reasons): failed gates first, then the rest."""
    if evaluation is None:
        return "no evaluation in this run", []
    if evaluation.blessed is None:
        return f"unknown (the Evaluator is {evaluation.execution_state})", []
    ordered = sorted(evaluation.gates, key=lambda g: g.status != "failed")
    reasons = [g.describe() for g in ordered]
    described = {(g.metric) for g in evaluation.gates if g.status == "failed"}
    # Failures TFMA reported that no configured gate explains (e.g. a missing slice).
    reasons += [line for line in evaluation.failures if not any(f" {m} = " in line for m in described)]
    if evaluation.blessed:
        head = "yes: every gate passed" if all(g.status != "failed" for g in evaluation.gates) else "yes"
    else:
        failed = [g for g in evaluation.gates if g.status == "failed"]
        head = "no: " + "; ".join(f"{g.metric}{' change' if g.kind == 'change' else ''} failed {g.bound.replace('change ', '')}"
                                  for g in failed) if failed else "no"
    return head, reasons


def training_line(run: RunInfo) -> str | None:
    """How many replicas and worker processes trained the model, from the Trainer's execution in MLMD
    (its custom_config holds the hyperparameters the run_fn trained with)."""
    trainer = run.execution("Trainer")
    config = trainer.properties.get("custom_config") if trainer else None
    values = config.get("hyperparameters") if isinstance(config, dict) else None
    if not isinstance(values, dict):
        return None
    try:
        hp = Hyperparameters.from_dict(values)
    except TypeError:  # recorded by another version of the code
        return None
    replicas = hp.replicas_in_sync
    if hp.distribution_strategy == "multi_worker":
        how = f"{hp.workers} worker process{'es' if hp.workers > 1 else ''} (MultiWorkerMirroredStrategy, chief exports)"
    else:
        how = f"1 process ({hp.distribution_strategy} strategy" + (f", {hp.replicas} logical CPU devices)" if hp.replicas > 1 else ")")
    return f"{replicas} replica{'s' if replicas > 1 else ''} in sync, {how}; global batch {hp.train_batch_size}"


def gate_verdict(run: RunInfo) -> "gate.Verdict | None":
    """The data gate's check of the run, repeated from what MLMD recorded of its execution (its
    findings and every compared feature's drift score); None when it did not run or its inputs
    were not recorded (cached)."""
    from components.data_gate import gate

    execution = next((e for e in run.executions if e.component_type.endswith("DataGate")), None)
    inputs = execution.inputs if execution is not None else {}
    if not all(inputs.get(key) for key in ("statistics", "anomalies", "schema")):
        return None
    baseline = inputs.get("baseline_statistics") or [None]
    return gate.check(inputs["statistics"][0].uri, inputs["anomalies"][0].uri, inputs["schema"][0].uri,
                      baseline[0].uri if baseline[0] else None, execution.properties)


def trained_spans(run: RunInfo) -> list[int]:
    """The spans the run's model was trained on: those of the Examples Transform read (MLMD)."""
    transform = run.execution("Transform")
    examples = transform.inputs.get("examples", []) if transform else []
    return sorted({int(a.properties.get("span") or 0) for a in examples})


def spans_line(run: RunInfo) -> str | None:
    """Which spans the run read and its model saw; None on a flat directory (span 0 only)."""
    examples = run.output("CsvExampleGen", "examples")
    span = int(examples.properties.get("span") or 0) if examples is not None else 0
    trained = trained_spans(run)
    if not span and not any(trained):
        return None
    seen = f"trained on span{'s' if len(trained) > 1 else ''} {', '.join(map(str, trained))}" if trained else "no model trained"
    return f"span {span} read; {seen}; evaluated on span {span}'s eval split"


def metric_line(values: dict[str, float], names: tuple[str, ...] = MAIN_METRICS) -> str:
    return ", ".join(f"{k}={values[k]:.4g}" for k in names if k in values)


def baseline_line(evaluation: Evaluation) -> str | None:
    overall = evaluation.overall
    if evaluation.baseline is None or overall is None or not overall.baseline:
        return None
    parts = [f"{k}={overall.baseline[k]:.4g} (candidate {overall.diff.get(k, 0):+.4f})"
             for k in MAIN_METRICS[:2] if k in overall.baseline]
    return f"model #{evaluation.baseline.id}: " + ", ".join(parts)


# --- files ---------------------------------------------------------------------------------------


def report_dir(reports_root: Path, run: RunInfo) -> Path:
    """<reports root>/run-<run id as a file name>, e.g. run-20261125T210225."""
    stem = re.sub(r"[^0-9A-Za-z]+", "", run.run_id.split(".")[0]) or "run"
    return reports_root / f"run-{stem}"


def write(report: RunReport, directory: Path) -> tuple[Path, Path]:
    """Writes report.html (self-contained: images inline) and report.md (+ images/*.png)."""
    directory.mkdir(parents=True, exist_ok=True)
    images = directory / "images"
    images.mkdir(exist_ok=True)
    for name, png in report.pictures.items():
        (images / f"{name}.png").write_bytes(png)
    html_path, md_path = directory / "report.html", directory / "report.md"
    html_path.write_text(to_html(report), encoding="utf-8")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    return html_path, md_path


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclasses.dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclasses.dataclass
class Section:
    title: str
    text: list[str]
    tables: list[Table]
    pictures: list[tuple[str, str]]  # (picture name, caption)


def sections(report: RunReport) -> list[Section]:
    """The report's content, once, for both the HTML and the Markdown writer."""
    run, ev = report.run, report.evaluation
    out = []

    # Verdict and main metrics.
    head, reasons = verdict(ev)
    text = [f"Model blessed: {head}"] + [f"- {r}" for r in reasons]
    tables = []
    if ev and ev.overall:
        overall = ev.overall
        names = [k for k in SLICE_COLUMNS if k in overall.candidate] + sorted(
            k for k in overall.candidate if k not in SLICE_COLUMNS)
        if overall.baseline:
            rows = [[k, _metric(k, overall.candidate.get(k)), _metric(k, overall.baseline.get(k)),
                     f"{overall.diff[k]:+.4f}" if k in overall.diff else "-"] for k in names]
            tables.append(Table("Whole eval split: candidate vs baseline", ["metric", "candidate", "baseline", "change"], rows,
                                f"Baseline: model #{ev.baseline.id} ({ev.baseline.uri}), the latest blessed model."))
        else:
            rows = [[k, _metric(k, overall.candidate.get(k))] for k in names]
            tables.append(Table("Whole eval split", ["metric", "value"], rows,
                                "No baseline: this is the first model evaluated with a blessed model before it."))
        tables.append(Table("Gates (eval_config thresholds; verdicts from TFMA's validation result)",
                            ["metric", "bound", "value", "verdict"],
                            [[g.metric + (" change vs baseline" if g.kind == "change" else "") +
                              ("" if g.slice == OVERALL else f" ({g.slice})"), g.bound.replace("change ", ""),
                              _fmt(g.value) if g.kind == "value" or g.value is None else f"{g.value:+.4f}",
                              g.status] for g in ev.gates]))
    out.append(Section("Evaluation", text, tables, []))

    if report.curves:
        candidate = report.curves.get("candidate")
        source = candidate.source if candidate else next(iter(report.curves.values())).source
        out.append(Section(
            "Curves and confusion matrix",
            [f"From {source}, whole eval split; no prediction is recomputed. The ROC's area is shown as a "
             "check of the curve against TFMA's AUC."],
            [], [("roc", "ROC curve"), ("calibration", "Calibration"), ("confusion_matrix", "Confusion matrix")]))

    if ev and len(ev.metrics) > 1:
        has_baseline = any(m.baseline for m in ev.metrics)
        headers = ["slice"] + list(SLICE_COLUMNS) + (["auc change vs baseline"] if has_baseline else [])
        rows = [[m.slice] + [_slice_value(m, k) for k in SLICE_COLUMNS] +
                ([f"{m.diff['auc']:+.4f}" if "auc" in m.diff else "-"] if has_baseline else [])
                for m in ev.metrics]
        out.append(Section("Metrics per slice", [], [Table("", headers, rows)], [("slices", "Metrics per slice")]))

    # Data.
    tables, text = [], []
    spans = spans_line(run)
    if spans:
        text.append(f"Spans: {spans} (the statistics below are span {spans.split()[1]}'s).")
    for split in report.statistics:
        text.append(f"{split.split}: {split.examples:,} examples")
    train = next((s for s in report.statistics if s.split == "train"), report.statistics[0] if report.statistics else None)
    if train:
        tables.append(feature_table(report.statistics, train))
    if report.anomaly_splits:
        if report.anomalies:
            tables.append(Table("Anomalies (ExampleValidator, against the curated schema)",
                                ["split", "feature", "severity", "anomaly", "details"],
                                [[a.split, a.feature, a.severity, a.short, a.description] for a in report.anomalies]))
        else:
            text.append(f"Anomalies: none in {', '.join(report.anomaly_splits)} (checked against the curated schema).")
    out.append(Section("Data", text, tables, []))

    if report.serving_check is not None:
        props = report.serving_check.properties
        rows = [[k, _fmt(props[k])] for k in serving_options.MEASURES if k in props]
        out.append(Section("Serving check", [serving_check_line(props)],
                           [Table("", ["measure", "value"], rows)] if rows else [], []))

    if report.tflite is not None:
        props = report.tflite.properties
        if props.get("exported") == 1:
            rows = [[k, _fmt(props[k])] for k in TFLITE_PROPERTIES if k in props]
            out.append(Section("TFLite model", [f"Artifact #{report.tflite.id}: {report.tflite.uri}"],
                               [Table("", ["measure", "value"], rows)], []))
        else:
            out.append(Section("TFLite model", [f"Not exported: {props.get('skip_reason', 'see the log')}"], [], []))

    rows = [[i + 1, e.node_id, e.component_type.rpartition(".")[2], e.state, f"{e.seconds:.1f}"]
            for i, e in enumerate(run.executions)]
    components = [f"Run {run.run_id}: {run.state}, {run.seconds:.1f} s in all (MLMD timestamps)."]
    if training_line(run):
        components.append(f"Trained by {training_line(run)}.")
    out.append(Section("Components", components,
                       [Table("", ["#", "node", "type", "state", "seconds"], rows)], [("durations", "Durations")]))
    out.append(Section("Lineage", ["Executions (boxes) and the artifacts they read and wrote (ovals), from MLMD."],
                       [], [("lineage", "Lineage of the run")]))

    where = {}
    if report.model:
        where["Trained model"] = report.model.uri
    if pushed_destination(report):
        where["Pushed model"] = pushed_destination(report)
    if pushed_tflite(report):
        where["TFLite model"] = pushed_tflite(report)
    if ev:
        where["TFMA evaluation"] = ev.uri
    where.update(report.where)
    out.append(Section("Where things are", [], [Table("", ["what", "path"], [[k, v] for k, v in where.items()])], []))
    return out


def feature_table(splits: list[SplitStatistics], measured: SplitStatistics) -> Table:
    """Each feature: how many rows of each split have no value, then `measured`'s statistics of
    the rows that have one (none for a feature without values there)."""
    by_split = {s.split: {f.name: f for f in s.features} for s in splits}
    names = sorted({name for features in by_split.values() for name in features})
    rows = []
    for name in names:
        f = by_split[measured.split].get(name)
        no_values = [_no_value(by_split[s.split].get(name)) for s in splits]
        stats = [_fmt(f.mean), _fmt(f.std), _fmt(f.min), _fmt(f.max), _fmt(f.unique), f.top or "-"] if f else ["-"] * 6
        rows.append([name, f.type if f else "-", *no_values, *stats])
    headers = ["feature", "type", *(f"no value ({s.split})" for s in splits),
               "mean", "std", "min", "max", "unique", "most frequent"]
    return Table(f"Features (TFDV statistics; mean to most frequent: {measured.split} split)", headers, rows,
                 "No value: rows where the feature is absent or holds no value (an empty CSV cell). The "
                 "statistics are of the rows that have a value; '-' where no row has one.")


def _no_value(f) -> str:
    if f is None:
        return "-"
    if f.no_value is None:
        return "unknown (a list feature)"
    return f"{f.no_value:,} ({f.no_value_share:.1%})"


def one_class(m: SliceMetrics) -> bool:
    """A slice whose examples all have the same label: AUC is undefined there (TFMA stores 0)."""
    return m.candidate.get("mean_label") in (0.0, 1.0)


def _metric(name: str, value: float | None) -> str:
    """A metric value as shown: counts whole, the rest to 4 decimals."""
    if value is not None and name.endswith("count"):
        return f"{value:,.0f}"
    return _fmt(value)


def _slice_value(m: SliceMetrics, name: str) -> str:
    if name == "auc" and one_class(m):
        return "n/a (one class)"
    return _metric(name, m.candidate.get(name))


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f6f8; } caption { text-align: left; font-weight: 600; padding: .3em 0; }
.verdict { padding: .6em 1em; border-radius: 6px; font-weight: 600; }
.yes { background: #e3f5e1; border: 1px solid #7cc47a; } .no { background: #fde2e1; border: 1px solid #e0807a; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figcaption { font-size: .85em; color: #555; } img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: .85em; }
"""


def to_html(report: RunReport) -> str:
    esc = html.escape
    run = report.run
    head, _ = verdict(report.evaluation)
    css_class = "yes" if head.startswith("yes") else "no"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Run {esc(run.run_id)} of {esc(run.pipeline)}</title><style>{CSS}</style></head><body>",
        f"<h1>Run {esc(run.run_id)} of {esc(run.pipeline)}</h1>",
        f'<p class="verdict {css_class}">Model blessed: {esc(head)}</p>',
    ]
    for section in sections(report):
        parts.append(f"<h2>{esc(section.title)}</h2>")
        lines = section.text[1:] if section.title == "Evaluation" else section.text
        bullets = [line[2:] for line in lines if line.startswith("- ")]
        for line in lines:
            if not line.startswith("- "):
                parts.append(f"<p>{esc(line)}</p>")
        if bullets:
            parts.append("<ul>" + "".join(f"<li>{esc(b)}</li>" for b in bullets) + "</ul>")
        for table in section.tables:
            parts.append("<table>" + (f"<caption>{esc(table.title)}</caption>" if table.title else ""))
            parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.headers) + "</tr>")
            for row in table.rows:
                parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
            if table.note:
                parts.append(f'<p class="note">{esc(table.note)}</p>')
        for name, caption in section.pictures:
            png = report.pictures.get(name)
            if png:
                data = base64.b64encode(png).decode("ascii")
                parts.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: RunReport) -> str:
    run = report.run
    lines = [f"# Run {run.run_id} of {run.pipeline}", ""]
    for section in sections(report):
        lines += [f"## {section.title}", ""]
        for line in section.text:
            lines.append(line if line.startswith("- ") else f"{line}\n")
        if section.text:
            lines.append("")
        for table in section.tables:
            if table.title:
                lines += [f"**{table.title}**", ""]
            lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
            lines.append("|" + "---|" * len(table.headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
            lines.append("")
            if table.note:
                lines += [f"_{table.note}_", ""]
        for name, caption in section.pictures:
            if name in report.pictures:
                lines += [f"![{caption}](images/{name}.png)", ""]
    return "\n".join(lines)
