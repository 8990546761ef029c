"""The run report: written by `cli run` and `cli report`, checked against what MLMD, TFMA's files
and the data themselves hold, never against the report's own readers.

Reads the report of conftest's `retrained_run` (it has a baseline); `cli report` is exercised
in-process on the first run; the data section is also checked on the whole bundled data
(ExampleGen and StatisticsGen only). The page is rendered in headless Chromium.
"""

import base64
import csv
import glob
import hashlib
import html as html_lib
import io
import json
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

import cli
from data import taxi
from report import build
from report.build import report_dir

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PICTURES = {"ROC curve", "Calibration", "Confusion matrix", "Metrics per slice", "Durations", "Lineage of the run"}


class Page(HTMLParser):
    """Text, tables and images of an HTML page, parsed with the standard library."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.tables: list[list[list[str]]] = []  # each table's rows, its header row first
        self.images: dict[str, str] = {}  # alt -> src
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.rows.append([])
            self.tables[-1].append(self.rows[-1])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images[attrs.get("alt", "")] = attrs.get("src", "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, first_header: str, having: str) -> tuple[list[str], list[list[str]]]:
        """(headers, rows) of the one table whose header row starts with `first_header` and
        names `having`."""
        (found,) = [t for t in self.tables if t and t[0][:1] == [first_header] and having in t[0]]
        return found[0], found[1:]


def _parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def second_report(two_runs, retrained_run):
    output_dir = two_runs[0]
    _, run = retrained_run
    html_path = report_dir(output_dir / "reports", run) / "report.html"
    return run, html_path, _parse(html_path)


# --- what the checks compare with, read without the project's readers ----------------------------


def examples_of(examples_uri: str, split: str) -> list[dict[str, list]]:
    """ExampleGen's tf.Examples of one split, as {feature: its values} (an empty list: no value)."""
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz")))
    assert files, (examples_uri, split)
    out = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            row[name] = [v.decode() if isinstance(v, bytes) else v for v in values]
        out.append(row)
    return out


def tfma_file_metrics(evaluation_uri: str) -> dict[str, dict[str, dict[str, float]]]:
    """{slice: {"candidate"|"baseline": {metric: value}}}, straight from TFMA's metrics file with
    TFMA's MetricsForSlice proto. Slices are named as the report shows them: "Overall", "column=value"."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    files = sorted(glob.glob(os.path.join(evaluation_uri, "metrics-*")))
    assert files, evaluation_uri
    out = {}
    for record in tf.data.TFRecordDataset(files):
        message = metrics_for_slice_pb2.MetricsForSlice.FromString(record.numpy())
        keys = message.slice_key.single_slice_keys
        name = ", ".join(f"{k.column}={getattr(k, k.WhichOneof('kind'))}" for k in keys) or "Overall"
        models = out.setdefault(name, {"candidate": {}, "baseline": {}})
        for kv in message.metric_keys_and_values:
            if kv.value.HasField("double_value") and not kv.key.is_diff:
                whose = "baseline" if kv.key.model_name == "baseline" else "candidate"
                models[whose][kv.key.name] = kv.value.double_value.value
    return out


def big_tip(row: dict[str, list]) -> int:
    """The README's label, by hand: tip > 20% of the fare (float32, as the graph computes it);
    no fare: 0; no tip: a tip of 0."""
    fare = row.get("fare") or [math.nan]
    tips = row.get("tips") or [0.0]
    if math.isnan(fare[0]):
        return 0
    return int(np.float32(tips[0]) > np.float32(fare[0]) * np.float32(0.2))


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def shown_as(cell: str, value: float) -> bool:
    """Whether a report cell shows `value` (4 decimals; whole numbers from 1,000 up)."""
    return abs(number(cell) - value) <= (0.5 if abs(value) >= 1000 else 5e-5 + 1e-6 * abs(value))


# --- evaluation ------------------------------------------------------------------------------------


def test_the_report_holds_the_metrics_tfma_stored_for_the_run(second_report):
    run, _, page = second_report
    stored = tfma_file_metrics(run.output("Evaluator", "evaluation").uri)
    _, overall = page.table("metric", "baseline")
    by_metric = {r[0]: r for r in overall}
    for name in ("auc", "binary_accuracy"):
        assert by_metric[name][1] == f"{stored['Overall']['candidate'][name]:.4f}", (name, by_metric[name])
        assert by_metric[name][2] == f"{stored['Overall']['baseline'][name]:.4f}", (name, by_metric[name])
    # The baseline the Evaluator compared against, and the verdict MLMD recorded.
    baseline = run.execution("Evaluator").inputs["baseline_model"][0]
    assert f"Baseline: model #{baseline.id} ({baseline.uri}), the latest blessed model." in "".join(page.text)
    assert run.output("Evaluator", "blessing").properties["blessed"] == 1
    assert "Model blessed: yes: every gate passed" in page.text


def test_each_slice_row_matches_the_eval_examples_and_tfmas_file(second_report):
    """Counts and label means by hand from the eval split the Evaluator read; AUC and accuracy
    from TFMA's metrics file, read with TFMA's proto."""
    run, _, page = second_report
    evaluator = run.execution("Evaluator")
    examples = examples_of(evaluator.inputs["examples"][0].uri, "eval")
    stored = tfma_file_metrics(run.output("Evaluator", "evaluation").uri)
    by_slice: dict[str, list[int]] = {"Overall": [big_tip(r) for r in examples]}
    for row in examples:
        for hour in row.get("trip_start_hour", []):
            by_slice.setdefault(f"trip_start_hour={hour}", []).append(big_tip(row))

    headers, rows = page.table("slice", "mean_label")
    table = {r[0]: dict(zip(headers, r)) for r in rows}
    assert set(table) == set(by_slice) == set(stored), (sorted(table), sorted(by_slice))
    assert len(table) > 10  # Overall and the hours of the day
    for name, labels in by_slice.items():
        shown = table[name]
        assert shown["example_count"] == f"{len(labels):,}", (name, shown)
        assert shown_as(shown["mean_label"], sum(labels) / len(labels)), (name, shown, sum(labels) / len(labels))
        if 0 < sum(labels) < len(labels):
            assert shown["auc"] == f"{stored[name]['candidate']['auc']:.4f}", (name, shown)
        else:  # one class: AUC is undefined
            assert shown["auc"] == "n/a (one class)", (name, shown)
        assert shown["binary_accuracy"] == f"{stored[name]['candidate']['binary_accuracy']:.4f}", (name, shown)


# --- data ------------------------------------------------------------------------------------------


def csv_columns(path: Path) -> tuple[int, dict[str, list[str]]]:
    """(rows, {column: its non-empty cells}) of a CSV file."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return len(rows), {column: [r[column] for r in rows if r[column] != ""] for column in rows[0]}


def check_data_section(page: Page, csv_path: Path, examples_uri: str) -> set[str]:
    """The Data section against the CSV the run read (rows without a value, per column) and
    ExampleGen's train split (the statistics of the rows that have one). Returns the columns with
    no value in the train split."""
    total, non_empty = csv_columns(csv_path)
    train = examples_of(examples_uri, "train")
    text = "".join(page.text)
    assert f"train: {len(train):,} examples" in text
    eval_count = int(re.search(r"eval: ([\d,]+) examples", text).group(1).replace(",", ""))
    assert len(train) + eval_count == total

    headers, rows = page.table("feature", "no value (train)")
    table = {r[0]: dict(zip(headers, r)) for r in rows}
    assert set(table) == set(non_empty)
    empty_in_train = set()
    for column, values in non_empty.items():
        shown = table[column]
        counts = {}
        for split in ("train", "eval"):
            match = re.fullmatch(r"([\d,]+) \(\d+\.\d%\)", shown[f"no value ({split})"])
            assert match, (column, shown)
            counts[split] = int(match.group(1).replace(",", ""))
        # Every empty cell of the CSV, and nothing else, is a row without a value.
        assert counts["train"] + counts["eval"] == total - len(values), (column, shown, total - len(values))

        train_values = [v for r in train for v in r.get(column, [])]
        assert counts["train"] == len(train) - len(train_values), (column, shown)
        statistics = [shown[k] for k in ("mean", "std", "min", "max", "unique", "most frequent")]
        if not train_values:  # nothing measured: nothing shown
            empty_in_train.add(column)
            assert statistics == ["-"] * 6, (column, shown)
        elif isinstance(train_values[0], str):
            frequency = Counter(train_values)
            assert number(shown["unique"]) == len(frequency), (column, shown)
            top, count = re.fullmatch(r"(.*) \((\d+)\)", shown["most frequent"]).groups()
            assert int(count) == max(frequency.values()) == frequency[top], (column, shown)
        else:
            assert shown_as(shown["min"], min(train_values)), (column, shown)
            assert shown_as(shown["max"], max(train_values)), (column, shown)
            assert shown_as(shown["mean"], float(np.mean(np.asarray(train_values, dtype=np.float64)))), (column, shown)
    return empty_in_train


def test_the_data_section_counts_the_rows_without_a_value(second_report, two_runs):
    run, _, page = second_report
    data_dir = two_runs[1]
    empty_in_train = check_data_section(page, data_dir / "data.csv", run.output("CsvExampleGen", "examples").uri)
    assert "pickup_census_tract" in empty_in_train  # empty in every row of the 600-row sample
    assert "Anomalies: none in train, eval" in "".join(page.text)


@pytest.fixture(scope="module")
def bundled_data_report(tmp_path_factory):
    """ExampleGen and StatisticsGen on the whole bundled CSV (15,002 rows, a few seconds), and the
    report written for that run as `cli run` writes one."""
    from tfx import v1 as tfx

    from lineage.query import Lineage
    from lineage.store import StoreAddress, open_store
    from pipeline.beam import DirectBeam

    root = tmp_path_factory.mktemp("bundled_data")
    data_dir = taxi.materialize(root / "data")
    example_gen = tfx.components.CsvExampleGen(input_base=str(data_dir))
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="bundled_data", pipeline_root=str(root / "root"), components=[example_gen, statistics],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "mlmd.sqlite")),
        beam_pipeline_args=DirectBeam("in_memory").args(),
    ))
    run = Lineage(open_store(StoreAddress(sqlite=root / "mlmd.sqlite"))).run("latest")
    html_path, _ = build.write(build.collect(run, pictures=False), root / "report")
    return run, data_dir / "data.csv", _parse(html_path)


def test_the_data_section_of_the_bundled_data_says_which_columns_are_empty(bundled_data_report):
    run, csv_path, page = bundled_data_report
    empty_in_train = check_data_section(page, csv_path, run.output("CsvExampleGen", "examples").uri)
    # pickup_census_tract holds a value in one row of 15,002, not in the train split: an INT
    # column that TFDV sees in every row, with no value to measure.
    assert "pickup_census_tract" in empty_in_train
    _, rows = page.table("feature", "no value (train)")
    assert {r[0]: r[1] for r in rows}["pickup_census_tract"] == "INT"


def test_the_report_shows_the_tflite_export_and_every_component(second_report):
    run, _, page = second_report
    tflite = run.output("TFLiteExport", "tflite_model").properties
    agreement = next(r for r in page.rows if r and r[0] == "agreement")
    assert agreement[1] == f"{tflite['agreement']:.4f}"
    components = {r[1]: r[3] for r in page.rows if len(r) == 5 and r[0].isdigit()}
    assert components == run.states()


def test_the_pictures_are_embedded_pngs_of_real_content(second_report):
    _, html_path, page = second_report
    assert set(page.images) == PICTURES
    for alt, src in page.images.items():
        assert src.startswith("data:image/png;base64,"), alt
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_SIGNATURE) and len(png) > 8_000, (alt, len(png))
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
        assert min(pixels.shape) > 200 and pixels.std() > 5, alt
    # The Markdown twin links the same pictures, written beside it.
    markdown = (html_path.parent / "report.md").read_text()
    for name in ("roc", "calibration", "confusion_matrix", "slices", "durations", "lineage"):
        assert f"(images/{name}.png)" in markdown and (html_path.parent / "images" / f"{name}.png").is_file()
    assert "| auc |" in markdown


def test_the_curves_drawn_agree_with_the_metrics_tfma_computed(second_report):
    from report import evaluation

    run, _, _ = second_report
    uri = run.output("Evaluator", "evaluation").uri
    stored = tfma_file_metrics(uri)["Overall"]["candidate"]
    curves = evaluation.curves(uri)
    assert set(curves) == {"candidate", "baseline"}
    candidate = curves["candidate"]
    assert evaluation.auc_of(candidate.roc) == pytest.approx(stored["auc"], abs=0.01)
    assert candidate.confusion.accuracy == pytest.approx(stored["binary_accuracy"], abs=0.01)
    assert sum(b.examples for b in candidate.buckets) == pytest.approx(stored["example_count"])


def test_cli_report_writes_an_earlier_run(two_runs, tmp_path):
    output_dir, _, (_, first_run), _ = two_runs
    # By its id: other tests may have added runs to this store since (latest~N would move).
    result = CliRunner().invoke(cli.main, ["report", first_run.run_id, "--output-dir", str(output_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"Report of run {first_run.run_id}: {tmp_path / 'report.html'}" in result.output
    page = _parse(tmp_path / "report.html")
    assert "No baseline: this is the first model evaluated with a blessed model before it." in "".join(page.text)
    assert ["auc change vs baseline", ">= -0.01", "-", "not checked (no baseline yet)"] in page.rows
    log_row = next(r for r in page.rows if r and r[0] == "Log file")
    assert Path(log_row[1]).parent == output_dir / "logs"


def test_cli_report_names_an_unknown_run(two_runs):
    output_dir = two_runs[0]
    result = CliRunner().invoke(cli.main, ["report", "no-such-run", "--output-dir", str(output_dir)])
    assert result.exit_code == 1 and "no run 'no-such-run'" in result.output


# --- the page in a real browser ---------------------------------------------------------------------

WINDOW = (1280, 2400)  # a laptop's page width
LINEAGE = "Lineage of the run"


def _chromium() -> str:
    browser = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                    if shutil.which(name)), None)
    if browser is None:  # in CI (CI=true) conftest turns this skip into a failure
        pytest.skip("no Chromium on PATH: the rootfs route installs Debian's chromium (tools/env.sh); "
                    "on the native route install chromium to run this check")
    return browser


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile, nothing fetched, nothing synced."""
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
        capture_output=True, text=True, timeout=180,
    )


def test_the_report_renders_in_headless_chromium(second_report, tmp_path):
    _, html_path, _ = second_report
    shot = tmp_path / "report.png"
    result = chromium(tmp_path / "profile", f"--screenshot={shot}", html_path.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    # Not blank: text, tables and pictures make the page vary a lot; a blank or error page does not.
    assert pixels.std() > 20, pixels.std()
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    # Content reaches well down the page (the pictures are laid out, not broken images).
    rows_with_content = (pixels.std(axis=(1, 2)) > 1).sum()
    assert rows_with_content > 800, rows_with_content


# Appended to a copy of the page: writes the lineage picture's laid-out size into the DOM, which
# Chromium's --dump-dom prints once the page has loaded.
MEASURE = """<script>
window.addEventListener("load", () => {
  const img = [...document.images].find(i => i.alt === %s);
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({width: img.width, height: img.height, natural_width: img.naturalWidth,
    viewport: document.documentElement.clientWidth, page_width: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


def text_line_heights(png: bytes) -> list[int]:
    """Heights, in the picture's own pixels, of the lines of black label text in a lineage picture
    (box outlines are #444444 and arrows #888888, both lighter than the threshold)."""
    from scipy import ndimage

    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    lines = ndimage.binary_closing(gray < 50, structure=np.ones((1, 5)))  # letters of a line joined
    labelled, _ = ndimage.label(lines)
    heights = []
    for rows, columns in ndimage.find_objects(labelled):
        height, width = rows.stop - rows.start, columns.stop - columns.start
        if height >= 3 and width >= 2 * height:  # a word or line, not a stray dot or a glyph part
            heights.append(height)
    return heights


def test_the_lineage_picture_is_legible_at_page_width(second_report, tmp_path):
    """Laid out by Chromium at a laptop's width, the lineage picture fits the page and its labels
    are at least 7 CSS pixels tall (capitals of a 10 px font): today's readable minimum."""
    _, html_path, page = second_report
    copy = tmp_path / "measure.html"
    copy.write_text(html_path.read_text(encoding="utf-8").replace("</body>", MEASURE % json.dumps(LINEAGE) + "</body>"),
                    encoding="utf-8")
    result = chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    measured = json.loads(html_lib.unescape(found.group(1)))
    assert measured["page_width"] <= measured["viewport"], measured  # no sideways scrolling
    assert 0 < measured["width"] <= measured["viewport"], measured

    png = base64.b64decode(page.images[LINEAGE].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).width == measured["natural_width"]
    heights = text_line_heights(png)
    assert len(heights) >= 30, heights  # two lines of text per node, 20-odd nodes
    scale = measured["width"] / measured["natural_width"]
    rendered = float(np.median(heights)) * scale
    assert rendered >= 7, (rendered, measured, sorted(heights))


# --- the environment in CI ------------------------------------------------------------------------------


def test_in_ci_the_environment_fails_when_chromium_cannot_be_installed(tmp_path):
    """tools/env.sh adds Chromium to the rootfs; when that fails, CI=true stops with one error
    line, where elsewhere a note says the rendering tests will be skipped. Run on a stand-in rootfs
    marked built, with an `unshare` that fails as the install in it would."""
    suite = re.search(r"^FROM debian:([a-z]+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    lock = tmp_path / "lock.txt"
    lock.write_text("# no packages\n")
    cache = tmp_path / "cache"
    rootfs = cache / f"rootfs-{suite}"
    venv = rootfs / "usr" / "local" / "tfx-venvs" / hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    venv.mkdir(parents=True)
    (rootfs / ".complete").touch()
    (venv / ".complete").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "unshare").write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
    (bin_dir / "unshare").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("TFX_ENV_ACTIVE", "CI")}
    env.update(TFX_PIPELINE_CACHE=str(cache), TFX_ENV_LOCK=str(lock), TFX_ENV_ROUTE="rootfs",
               PATH=f"{bin_dir}:{os.environ['PATH']}")

    def ensure(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(REPO / "tools" / "env.sh"), "ensure"], env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    for ci in ("true", "TRUE", "1"):
        failed = ensure(CI=ci)
        assert failed.returncode != 0, (ci, failed.stderr)
        errors = [line for line in failed.stderr.splitlines() if line.startswith("env: error:")]
        assert len(errors) == 1 and errors == failed.stderr.splitlines()[-1:], failed.stderr
        assert "CI=true" in errors[0] and "chromium" in errors[0], errors
        assert "route=" not in failed.stderr
    for outside_ci in ({}, {"CI": "false"}):
        noted = ensure(**outside_ci)
        assert noted.returncode == 0, (outside_ci, noted.stderr)
        assert "chromium" in noted.stderr and "tests that need them are skipped" in noted.stderr
        assert "env: error" not in noted.stderr and "route=rootfs" in noted.stderr
