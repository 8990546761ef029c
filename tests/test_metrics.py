"""The run's Prometheus metrics, seen the way a team sees them: pushed to a real Pushgateway,
scraped by a real Prometheus (both started here on 127.0.0.1, stopped afterwards), asked for
through Prometheus's HTTP API, and the example alert rules (ops/alerts.yml) evaluated on them.

Two pipeline runs on one store: a good one, then one on drifted data that the data gate stops.
Each push replaces the pipeline's group, so each run's values are looked for right after it.
"""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from components.data_gate.options import DEFAULT_MAX_DRIFT
from data import taxi
from tests import prometheus
from tests.conftest import REPO, SMALL_RUN, latest_summary
from tests.mariadb import free_port

ROWS = 1800  # 1,200 training rows: enough for the data gate's drift check (1,000 on each side)
ALERTS = REPO / "ops" / "alerts.yml"
SELECTOR = '{job="tfx_pipeline",pipeline="chicago_taxi",model="taxi"}'


def cli(output_dir: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), "--no-report",
            "--data-dir", str(data_dir)]
    return subprocess.run(argv + SMALL_RUN + list(extra), cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with prometheus.servers(tmp_path_factory.mktemp("prometheus"), [ALERTS]) as found:
        yield found


@pytest.fixture(scope="module")
def good_run(servers, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    data_dir = taxi.write_sample(root / "good", rows=ROWS)
    output_dir = root / "out"
    result = cli(output_dir, data_dir, "--pushgateway", servers.pushgateway)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return data_dir, output_dir, result, latest_summary(output_dir)


def values(servers: prometheus.Servers, name: str, **labels: str) -> dict[tuple, float]:
    """{(label values but the base ones, sorted by name): value} of one metric's series."""
    selector = SELECTOR[:-1] + "".join(f',{k}="{v}"' for k, v in labels.items()) + "}"
    out = {}
    for series in servers.query(name + selector):
        own = tuple(v for k, v in sorted(series["metric"].items())
                    if k not in ("__name__", "job", "instance", "pipeline", "model", *labels))
        out[own] = float(series["value"][1])
    print(f"query {name}{labels or ''}: {out}")  # what Prometheus answered (pytest -s shows it)
    return out


def scraped(servers: prometheus.Servers, run_id: str) -> None:
    """Waits until Prometheus has scraped the push of run `run_id`."""
    prometheus.wait_for(lambda: values(servers, "tfx_pipeline_run_info", run_id=run_id),
                        f"run {run_id} in Prometheus", timeout=60)


def firing(servers: prometheus.Servers) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for alert in servers.alerts():
        if alert["state"] == "firing":
            out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
    return out


def test_promtool_accepts_the_alert_rules():
    prometheus.require_binaries()
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout, result.stdout


def test_a_bad_pushgateway_url_is_refused_before_anything_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cli", "run", "--output-dir", str(tmp_path / "out"),
                             "--pushgateway", "ftp://somewhere"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--pushgateway: expects a Pushgateway URL such as http://HOST:9091, got 'ftp://somewhere'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_unreachable_pushgateway_is_one_warning_line(tmp_path):
    """A run refused for its data (no component starts, so no pipeline is needed) still writes
    its metrics, and an unreachable Pushgateway changes nothing but one warning line."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "data.csv").write_text("")
    nobody = f"http://127.0.0.1:{free_port()}"
    result = cli(tmp_path / "out", data_dir, "--pushgateway", nobody)
    assert result.returncode == 1
    assert f"{data_dir / 'data.csv'}: the file is empty" in result.stderr, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and f"the Pushgateway at {nobody} (" in warnings[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    textfile = tmp_path / "out" / "metrics" / "chicago_taxi.prom"
    assert 'tfx_pipeline_run_succeeded{model="taxi",pipeline="chicago_taxi"} 0.0' in textfile.read_text()


@pytest.mark.e2e
def test_a_good_run_is_in_prometheus(servers, good_run):
    from lineage.metrics import run_metrics

    data_dir, output_dir, result, run = good_run
    assert not [line for line in result.stderr.splitlines() if line.startswith("Warning:")], result.stderr[-2000:]
    scraped(servers, run.run_id)
    assert values(servers, "tfx_pipeline_run_succeeded") == {(): 1.0}
    assert values(servers, "tfx_pipeline_run_duration_seconds")[()] > 10
    states = values(servers, "tfx_pipeline_component_state")
    assert sorted(component for component, _ in states) == sorted(e.node_id for e in run.executions)
    assert {state for _, state in states} == {"ran"}
    assert values(servers, "tfx_pipeline_component_duration_seconds", component="Trainer")[()] > 1

    examples = values(servers, "tfx_data_examples", span="0")
    assert set(examples) == {("train",), ("eval",)} and sum(examples.values()) == ROWS, examples
    assert values(servers, "tfx_data_gate_passed") == {(): 1.0}
    assert values(servers, "tfx_data_anomalies") == {}
    assert values(servers, "tfx_data_drift_score") == {}  # the first run: no accepted data to compare with

    # TFMA's own metrics, read by lineage.metrics (not the code that exports them).
    auc = values(servers, "tfx_model_eval_metric", metric="auc")[()]
    assert auc == pytest.approx(run_metrics(run)["Evaluator.auc"], abs=1e-9)
    bounds = values(servers, "tfx_model_eval_gate_bound", metric="auc")
    assert bounds[("lower", "value")] == 0.6  # SMALL_RUN's --min-auc
    assert ("lower", "change") in bounds
    assert values(servers, "tfx_model_eval_gate_passed", kind="value") == {("lower", "auc"): 1.0, ("lower", "binary_accuracy"): 1.0}
    assert values(servers, "tfx_model_blessed") == {(): 1.0}
    assert values(servers, "tfx_model_runs_since_blessed") == {(): 0.0}
    assert values(servers, "tfx_model_pushed") == {(): 1.0}

    # What was pushed, as the serving directory holds it.
    (version,) = [p.name for p in (output_dir / "serving" / "taxi").iterdir()]
    assert values(servers, "tfx_model_pushed_version") == {(): float(version)}
    (tflite,) = (output_dir / "serving" / "taxi_tflite").glob("*/model.tflite")
    assert values(servers, "tfx_tflite_model_bytes") == {(): float(tflite.stat().st_size)}
    assert 0.8 <= values(servers, "tfx_tflite_agreement")[()] <= 1
    assert values(servers, "tfx_tflite_min_agreement") == {(): 0.8}  # SMALL_RUN's --tflite-min-agreement
    # The serving check's figures, as MLMD recorded them on its InfraBlessing.
    serving = run.output("ServingCheck", "blessing").properties
    assert values(servers, "tfx_serving_check_passed") == {(): 1.0}
    latency = values(servers, "tfx_serving_check_latency_seconds")
    assert latency == {("50",): pytest.approx(serving["latency_p50_ms"] / 1000),
                       ("99",): pytest.approx(serving["latency_p99_ms"] / 1000)}
    assert firing(servers) == {}

    # The same metrics for node_exporter's textfile collector, in a format promtool accepts.
    textfile = output_dir / "metrics" / "chicago_taxi.prom"
    check = subprocess.run(["promtool", "check", "metrics"], input=textfile.read_text(), capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f'run_id="{run.run_id}"' in textfile.read_text()


@pytest.mark.e2e
def test_a_run_the_data_gate_stopped_is_in_prometheus_and_fires_the_alerts(servers, good_run, tmp_path):
    data_dir, output_dir, _, _ = good_run
    drifted = tmp_path / "drifted"
    drifted.mkdir()
    with (data_dir / "data.csv").open(newline="") as f:
        header, *rows = list(csv.reader(f))
    fare = header.index("fare")
    for row in rows:  # fares x100: the gate's drift check stops the run (tests/test_safety.py)
        row[fare] = f"{float(row[fare]) * 100:.2f}" if row[fare] else row[fare]
    with (drifted / "data.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])

    result = cli(output_dir, drifted, "--pushgateway", servers.pushgateway)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Run failed in DataGate" in result.stderr
    assert "Warning:" not in result.stderr
    run = latest_summary(output_dir)
    scraped(servers, run.run_id)

    assert values(servers, "tfx_pipeline_run_succeeded") == {(): 0.0}
    assert values(servers, "tfx_data_gate_passed") == {(): 0.0}
    assert values(servers, "tfx_pipeline_component_state", component="DataGate") == {("failed",): 1.0}
    assert "Transform" not in {c for c, _ in values(servers, "tfx_pipeline_component_state")}
    anomalies = values(servers, "tfx_data_anomalies", kind="COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")
    assert anomalies == {("true", "train"): 1.0}, anomalies
    scores = values(servers, "tfx_data_drift_score")
    assert scores[("jensen_shannon_divergence", "fare")] > DEFAULT_MAX_DRIFT
    assert all(score < DEFAULT_MAX_DRIFT for (_, feature), score in scores.items() if feature != "fare"), scores
    assert set(values(servers, "tfx_data_drift_threshold").values()) == {DEFAULT_MAX_DRIFT}
    assert values(servers, "tfx_model_blessed") == {}  # the group holds this run's figures only
    assert values(servers, "tfx_model_runs_since_blessed") == {(): 1.0}

    alerts = prometheus.wait_for(lambda: (lambda f: f if {"TfxDataDrift", "TfxRunFailed"} <= set(f) else None)(
        firing(servers)), "the drift and run-failed alerts firing", timeout=60)
    assert [a["feature"] for a in alerts["TfxDataDrift"]] == ["fare"]
    assert "TfxModelNotBlessed" not in alerts  # one run since the last blessed model, the rule says 3
    assert {r["name"]: r["health"] for r in servers.rules()} == {
        "TfxDataDrift": "ok", "TfxModelNotBlessed": "ok", "TfxRunFailed": "ok"}
