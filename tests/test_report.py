"""The run report: written by `cli run` and `cli report`, checked against what MLMD and TFMA hold.

Reads the report of conftest's `retrained_run` (it has a baseline); `cli report` is
exercised in-process on the first run. The page is rendered once in headless Chromium.
"""

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cli
from lineage.metrics import overall_metrics
from report import evaluation
from report.build import report_dir

pytestmark = pytest.mark.e2e

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PICTURES = {"ROC curve", "Calibration", "Confusion matrix", "Metrics per slice", "Durations", "Lineage of the run"}


class Page(HTMLParser):
    """Text, table rows and images of an HTML page, parsed with the standard library."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.images: dict[str, str] = {}  # alt -> src
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append([])
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


def test_the_report_holds_the_metrics_tfma_stored_for_the_run(second_report):
    run, _, page = second_report
    evaluation_uri = run.output("Evaluator", "evaluation").uri
    metrics = overall_metrics(evaluation_uri)
    overall_row = next(r for r in page.rows if r and r[0] == "auc")
    assert overall_row[1] == f"{metrics['auc']:.4f}"  # candidate
    accuracy_row = next(r for r in page.rows if r and r[0] == "binary_accuracy")
    assert accuracy_row[1] == f"{metrics['binary_accuracy']:.4f}"
    # One row per slice TFMA computed, with its example count.
    slices = evaluation.slice_metrics(evaluation_uri)
    assert len(slices) > 10  # Overall and the trip_start_hour slices
    for found in slices:
        row = next(r for r in page.rows if r and r[0] == found.slice)
        assert row[1] == f"{found.candidate['example_count']:,.0f}"
    # The baseline the Evaluator compared against, and the verdict MLMD recorded.
    baseline = run.execution("Evaluator").inputs["baseline_model"][0]
    assert f"Baseline: model #{baseline.id} ({baseline.uri}), the latest blessed model." in "".join(page.text)
    assert run.output("Evaluator", "blessing").properties["blessed"] == 1
    assert "Model blessed: yes: every gate passed" in page.text


def test_the_report_shows_tfdv_statistics_the_tflite_export_and_every_component(second_report):
    run, _, page = second_report
    text = "".join(page.text)
    assert "Anomalies: none in train, eval" in text
    fare = next(r for r in page.rows if r and r[0] == "fare")
    assert fare[1] == "FLOAT" and float(fare[4]) > 0  # mean fare, from TFDV's statistics
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
    run, _, _ = second_report
    uri = run.output("Evaluator", "evaluation").uri
    metrics = overall_metrics(uri)
    curves = evaluation.curves(uri)
    assert set(curves) == {"candidate", "baseline"}
    candidate = curves["candidate"]
    assert evaluation.auc_of(candidate.roc) == pytest.approx(metrics["auc"], abs=0.01)
    assert candidate.confusion.accuracy == pytest.approx(metrics["binary_accuracy"], abs=0.01)
    assert sum(b.examples for b in candidate.buckets) == pytest.approx(metrics["example_count"])


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


def _chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(name)), None)


def test_the_report_renders_in_headless_chromium(second_report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH: the rootfs route installs Debian's chromium (tools/env.sh); "
                    "on the native route install chromium to run this check")
    _, html_path, _ = second_report
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400", f"--screenshot={shot}",
         html_path.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (2400, 1280)
    # Not blank: text, tables and pictures make the page vary a lot; a blank or error page does not.
    assert pixels.std() > 20, pixels.std()
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    # Content reaches well down the page (the pictures are laid out, not broken images).
    rows_with_content = (pixels.std(axis=(1, 2)) > 1).sum()
    assert rows_with_content > 800, rows_with_content
