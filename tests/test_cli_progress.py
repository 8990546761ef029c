"""The console of `cli run`: quiet, one line per component, a summary that says what happened.

The real-run checks read the captured output of the session's two small pipeline runs
(conftest's `two_runs`); the failure check runs the CLI on a malformed CSV, which fails in the
first component within seconds.
"""

import csv
import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data import taxi
from runs.console import Progress
from runs.errors import first_error_line
from tests.conftest import REPO
from upstream.workarounds import COMPONENT_RECORDS

RUNNING, FINISHED, _ = COMPONENT_RECORDS["tfx.orchestration.local.local_dag_runner"]
BEAM_RUNNING, BEAM_FINISHED, _ = COMPONENT_RECORDS["tfx.orchestration.beam.beam_dag_runner"]

LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+)\s+(done|cached|failed|running|skipped)\s+(\d+\.\d)s$")
WORD = {"COMPLETE": "done", "CACHED": "cached"}


def _progress(stdout: str) -> list[tuple[int, int, str, str, float]]:
    found = [LINE.match(line) for line in stdout.splitlines()]
    return [(int(m[1]), int(m[2]), m[3], m[4], float(m[5])) for m in found if m]


@pytest.mark.e2e
def test_a_run_prints_one_line_per_component_with_the_state_mlmd_records(two_runs):
    _, _, (first, first_run), (second, second_run) = two_runs
    for result, run in ((first, first_run), (second, second_run)):
        lines = _progress(result.stdout)
        nodes = run.states()  # every node of the pipeline, as MLMD recorded the run
        assert len(nodes) >= 10 and {"CsvExampleGen", "Trainer", "Evaluator", "Pusher"} <= set(nodes)
        assert [n for n, *_ in lines] == list(range(1, len(nodes) + 1))
        assert {total for _, total, *_ in lines} == {len(nodes)}
        assert {name for _, _, name, _, _ in lines} == set(nodes)
        # The state shown is the one MLMD recorded for the run.
        assert {name: state for _, _, name, state, _ in lines} == {n: WORD[s] for n, s in run.states().items()}
    assert {state for *_, state, _ in _progress(first.stdout)} == {"done"}
    cached = {name for _, _, name, state, _ in _progress(second.stdout) if state == "cached"}
    assert {"CsvExampleGen", "Transform", "Trainer"} <= cached
    trainer_seconds = next(s for _, _, name, _, s in _progress(first.stdout) if name == "Trainer")
    assert trainer_seconds > 1  # a real duration, not a placeholder


@pytest.mark.e2e
def test_the_console_stays_short_and_the_log_file_gets_everything(two_runs):
    output_dir, _, (first, _), _ = two_runs
    # Header, a progress line per component, a summary of about a dozen lines: no TensorFlow, Beam or absl lines.
    assert len(first.stdout.splitlines()) < 30, first.stdout
    assert first.stderr.strip() == "", first.stderr[-2000:]
    [log_line] = [line for line in first.stdout.splitlines() if line.startswith("Logs:")]
    log_file = Path(log_line.split(None, 1)[1])
    assert log_file.parent == output_dir / "logs"
    log = log_file.read_text()
    assert "Component Trainer is finished" in log  # Python logging
    assert "Epoch 1/" in log  # Keras's fit() printing to stdout
    # TensorFlow's C++ logging (absl's "I0000 00:00:... file.cc:123]" lines), caught at the descriptor level.
    assert re.search(r"^[IWE]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]", log, re.M)


@pytest.mark.e2e
def test_the_summary_says_what_happened_and_where_everything_is(two_runs, retrained_run):
    output_dir, _, (first, _), _ = two_runs
    third, third_run = retrained_run
    assert "Model blessed: yes: every gate passed" in first.stdout
    assert "Baseline:      none (no blessed model before this one)" in first.stdout
    assert "auc change vs baseline n/a (needs >= -0.01): not checked (no baseline yet)" in first.stdout
    # A retrained model has the first run's blessed model as its baseline, and says which.
    baseline = third_run.execution("Evaluator").inputs["baseline_model"][0]
    assert f"Baseline:      model #{baseline.id}: auc=" in third.stdout
    assert re.search(r"auc change vs baseline [+-]\d\.\d{4} \(needs >= -0\.01\): (passed|failed)", third.stdout)
    for result in (first, third):
        for field in ("Eval metrics: auc=", "Pushed model:  ", "TFLite model:  ", "Report:        ",
                      "MLMD store:    ", "TensorBoard:   ", "Logs:          "):
            assert field in result.stdout, field
    assert "Trained by:    1 replica in sync, 1 process (mirrored strategy); global batch 64" in first.stdout
    report = next(line for line in third.stdout.splitlines() if line.startswith("Report:")).split()[1]
    assert report.startswith(str(output_dir / "reports")) and report.endswith("report.html")


@pytest.mark.e2e
def test_a_failing_run_names_the_component_the_error_and_the_log(tmp_path):
    # Well-formed CSV (the right columns), but no fare is a number: a component fails on it.
    rows = list(csv.DictReader(taxi.bundled_csv().open(newline="")))[:60]
    data = tmp_path / "data"
    data.mkdir()
    with (data / "data.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "fare": "twelve dollars"} for row in rows)
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--output-dir", str(tmp_path / "out"), "--data-dir", str(data),
         "--train-steps", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    # Here the data gate stops it (its own summary: tests/test_safety.py); any failure reads the same way.
    failed = re.match(r"Run failed in (\w+): (.+)", lines[0])
    assert failed, result.stderr[-3000:]
    component = failed[1]
    # Its progress line says so, and it is the last one: nothing ran after it.
    progress = _progress(result.stdout)
    assert progress[-1][2:4] == (component, "failed") and all(state != "failed" for *_, state, _ in progress[:-1])
    assert lines[-1].startswith(f"Full log: {tmp_path / 'out' / 'logs'}/run-")
    assert "Traceback" not in result.stderr  # no traceback on the console: it is in the log
    assert "Traceback" in Path(lines[-1].split(": ", 1)[1]).read_text()


# --- the progress handler on its own ---------------------------------------------------------------


class Console(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(msg: str, node: str) -> logging.LogRecord:
    return logging.LogRecord("absl", logging.INFO, __file__, 1, msg, (node,), None)


def test_progress_follows_the_runner_records_and_asks_mlmd_for_the_state():
    console = io.StringIO()
    progress = Progress(console, 2, {"A": "CACHED", "B": "COMPLETE"}.get, live=False)
    for msg, node in ((RUNNING, "A"), (FINISHED, "A"), (RUNNING, "B"), (FINISHED, "B")):
        progress.handle(_record(msg, node))
    progress.handle(logging.LogRecord("absl", logging.INFO, __file__, 1, "Component %s is running", ("C",), None))
    lines = console.getvalue().splitlines()
    assert [LINE.match(line).group(1, 3, 4) for line in lines] == [("1", "A", "cached"), ("2", "B", "done")]


def test_progress_follows_beam_dag_runner_records_too_in_a_column_as_wide_as_the_longest_node():
    console = io.StringIO()
    progress = Progress(console, 0, {"A": "COMPLETE", "Longer": "COMPLETE"}.get, live=False)
    progress.expect(["A", "Longer"])
    for msg, node in ((BEAM_RUNNING, "A"), (BEAM_FINISHED, "A"), (BEAM_RUNNING, "Longer"), (BEAM_FINISHED, "Longer")):
        progress.handle(_record(msg, node))
    lines = console.getvalue().splitlines()
    assert [LINE.match(line).group(1, 2, 3, 4) for line in lines] == [("1", "2", "A", "done"), ("2", "2", "Longer", "done")]
    assert lines[0].index("done") == lines[1].index("done")  # one column for the state


def test_on_a_terminal_the_running_line_is_rewritten_in_place():
    console = Console()
    progress = Progress(console, 3, lambda node: None, live=True)
    progress.start("Trainer")
    assert console.getvalue().startswith("\r[1/3] Trainer") and "running" in console.getvalue()
    assert "\n" not in console.getvalue()
    failed = progress.fail()
    progress.close()
    assert failed.node_id == "Trainer"
    assert re.search(r"\r\[1/3\] Trainer +failed +\d+\.\ds\x1b\[K\n$", console.getvalue()), console.getvalue()


def test_an_unreadable_state_does_not_break_the_run():
    console = io.StringIO()

    def broken(node):
        raise RuntimeError("store locked")

    progress = Progress(console, 1, broken, live=False)
    progress.handle(_record(RUNNING, "A"))
    progress.handle(_record(FINISHED, "A"))
    assert LINE.match(console.getvalue().strip()).group(4) == "done"


def test_the_first_error_line_is_the_innermost_cause():
    try:
        try:
            raise ValueError("\nColumns do not match\nmore detail")
        except ValueError as inner:
            raise RuntimeError("Traceback (most recent call last):\n  File \"x.py\"\nwrapped") from inner
    except RuntimeError as outer:
        assert first_error_line(outer) == "ValueError: Columns do not match"
    assert first_error_line(KeyError()) == "KeyError"
    # Beam's CSV errors quote the whole row: a line of megabytes is cut, saying how long it was.
    row = "ValueError: Columns do not match specified csv headers: [...] -> [" + "b'1', " * 100_000 + "]"
    line = first_error_line(ValueError(row.removeprefix("ValueError: ")))
    assert line == row[:500] + f"... ({len(row):,} characters; the log has all)"
