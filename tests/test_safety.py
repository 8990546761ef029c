"""Nothing bad ships and nothing is lost: bad input, the data gate, the model gate, a killed run,
two runs at once, validation at the boundary, and file permissions.

Every case that needs a pipeline runs the real command line against one store that already holds
a good, pushed run (those are marked e2e), and checks the exit status, the message, that nothing
was pushed, and that the store still opens and lists the earlier runs. Bad options and the secret
scan need no pipeline: they run in a `-m 'not e2e'` run too.
"""

import contextlib
import csv
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from data import taxi
from lineage.query import Lineage
from lineage.store import StoreAddress, open_store
from tests.conftest import REPO, SMALL_RUN, latest_summary

ROWS = 1800  # 1,200 training rows: enough for the data gate's drift check (1,000 on each side)


def cli(output_dir: Path, data_dir: Path | None, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), "--no-report"]
    argv += ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run(argv + SMALL_RUN + list(extra), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def serving_state(output_dir: Path) -> dict[str, str]:
    """Every file under serving/, with a hash of its bytes."""
    root = output_dir / "serving"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def runs(output_dir: Path) -> list:
    return Lineage(open_store(StoreAddress(sqlite=output_dir / "metadata.sqlite"))).runs()


def rewrite(source: Path, target_dir: Path, change) -> Path:
    """A copy of source's CSV with change(header, row) applied to every row."""
    with (source / "data.csv").open(newline="") as f:
        header, *rows = list(csv.reader(f))
    target_dir.mkdir(parents=True)
    with (target_dir / "data.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(change(header, list(row)) for row in rows)
    return target_dir


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A store with one good run whose model was pushed: what every case must leave intact."""
    root = tmp_path_factory.mktemp("safety")
    data_dir = taxi.write_sample(root / "good", rows=ROWS)
    output_dir = root / "out"
    result = cli(output_dir, data_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, data_dir, output_dir


@pytest.fixture
def intact(baseline):
    """Asserts, after the test, that the pushed models are untouched and the store still lists its runs."""
    _, _, output_dir = baseline
    before_serving, before_runs = serving_state(output_dir), [r.run_id for r in runs(output_dir)]
    assert before_serving
    yield
    assert serving_state(output_dir) == before_serving
    assert [r.run_id for r in runs(output_dir)][: len(before_runs)] == before_runs


def _set(column: str, value):
    def change(header, row):
        row[header.index(column)] = value(row[header.index(column)]) if callable(value) else value
        return row
    return change


# --- input files: refused before any component starts, naming the file --------------------------

BAD_FILES = {
    "missing data directory": (lambda root: root / "nowhere", "is not a directory"),
    "empty directory": (lambda root: (root / "empty").mkdir() or root / "empty", "holds no *.csv file"),
    "empty CSV": (lambda root: _write(root / "empty_csv", ""), "data.csv: the file is empty"),
    "CSV with a header and no rows": (lambda root: _write(root / "header_only", _bundled_lines(1)[0] + "\n"), "a header but no rows"),
    "CSV missing a column": (lambda root: _without_column(root, "fare"), "missing column(s) fare"),
    "header that does not match": (lambda root: _renamed_column(root, "tips", "tip_amount"),
                                   "missing column(s) tips; unexpected column(s) tip_amount"),
    "unparseable rows": (lambda root: _truncated_row(root), "line 5: 3 fields where the header has 18"),
    # More shapes, each with its exact line, are in tests/test_data.py (no pipeline needed there).
    "UTF-8 byte-order mark": (lambda root: _write_bytes(root / "bom", b"\xef\xbb\xbf" + _bundled_text(50)),
                              "data.csv: starts with a UTF-8 byte-order mark"),
    "ragged row at line 50,000 of a large file": (lambda root: _ragged_far(root), "line 50000: 3 fields where the header has 18"),
    "a second file with the columns in another order": (
        lambda root: _second_file_reordered(root), "b.csv: its columns are in another order than in a.csv"),
    "a dangling symbolic link": (  # once a traceback: the Beam mode measured the input's size first
        lambda root: _dangling(root), "data.csv: a symbolic link to "),
    "a directory among the files": (
        lambda root: (_write(root / "subdir", _bundled_text(50).decode()) / "old").mkdir() or root / "subdir",
        "old: a directory; CsvExampleGen reads every entry of the data directory as a CSV file"),
}


def _dangling(root: Path) -> Path:
    (root / "dangling").mkdir()
    os.symlink(root / "gone.csv", root / "dangling" / "data.csv")
    return root / "dangling"


def _bundled_text(count: int) -> bytes:
    return ("\n".join(_bundled_lines(count)) + "\n").encode()


def _write_bytes(directory: Path, data: bytes, name: str = "data.csv") -> Path:
    directory.mkdir(exist_ok=True)
    (directory / name).write_bytes(data)
    return directory


def _ragged_far(root: Path) -> Path:
    header, *body = _bundled_lines(1001)
    lines = [header] + body * 60
    lines[49_999] = "1,2,3"
    return _write_bytes(root / "ragged_far", ("\n".join(lines) + "\n").encode())


def _second_file_reordered(root: Path) -> Path:
    with taxi.bundled_csv().open(newline="") as f:
        header, *rows = [next(csv.reader(f)) for _ in range(100)]
    _write_bytes(root / "two", _bundled_text(50), "a.csv")
    order = header[::-1]
    lines = [",".join(order)] + [",".join(r[header.index(c)] for c in order) for r in rows[50:]]
    return _write_bytes(root / "two", ("\n".join(lines) + "\n").encode(), "b.csv")


def _write(directory: Path, text: str) -> Path:
    directory.mkdir()
    (directory / "data.csv").write_text(text)
    return directory


def _bundled_lines(count: int) -> list[str]:
    with taxi.bundled_csv().open() as f:
        return [next(f).rstrip("\n") for _ in range(count)]


def _without_column(root: Path, column: str) -> Path:
    with (taxi.bundled_csv()).open(newline="") as f:
        header, *rows = list(csv.reader(f))
    i = header.index(column)
    lines = [",".join(header[:i] + header[i + 1:])] + [",".join(r[:i] + r[i + 1:]) for r in rows[:50]]
    return _write(root / f"no_{column}", "\n".join(lines) + "\n")


def _renamed_column(root: Path, old: str, new: str) -> Path:
    text = _bundled_lines(50)
    text[0] = text[0].replace(old, new)
    return _write(root / "renamed", "\n".join(text) + "\n")


def _truncated_row(root: Path) -> Path:
    text = _bundled_lines(50)
    text[4] = "1,2,3"
    return _write(root / "truncated", "\n".join(text) + "\n")


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_input_files_are_refused_before_any_component_runs(baseline, intact, tmp_path, case):
    _, _, output_dir = baseline
    make, message = BAD_FILES[case]
    data_dir = make(tmp_path)
    runs_before = len(runs(output_dir))
    result = cli(output_dir, data_dir)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert str(data_dir) in result.stderr  # names the place
    assert "Traceback" not in result.stderr
    assert len(runs(output_dir)) == runs_before  # refused before any component ran


# --- the data gate: TFDV finds it, the run stops before Transform --------------------------------

def _every(n: int, column: str, values: list[str]):
    """change(): `column` set to values[0], values[1], ... in every n-th row (a few percent of rows)."""
    seen = [0]

    def change(header, row):
        seen[0] += 1
        if seen[0] % n == 0:
            row[header.index(column)] = values[(seen[0] // n) % len(values)]
        return row
    return change


DATA_GATE_CASES = {
    "fares inf, -inf, NaN, nan, 1e400 in a few percent of rows": (
        _every(25, "fare", ["inf", "-inf", "NaN", "nan", "1e400"]), "fare", "FLOAT_TYPE_HAS_NAN|FLOAT_TYPE_HAS_INF"),
    "a column with values of the wrong type": (_set("fare", "twelve dollars"), "fare", "SCHEMA_NEW_COLUMN|FLOAT_TYPE|UNEXPECTED|TYPE"),
    "labels missing for all rows": (_set("tips", ""), "tips", "FEATURE_TYPE_NOT_PRESENT|SCHEMA_MISSING_COLUMN"),
    "a drifted distribution (fares x100)": (
        _set("fare", lambda v: f"{float(v) * 100:.2f}" if v else v), "fare", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(DATA_GATE_CASES))
def test_the_data_gate_stops_bad_data_before_transform(baseline, intact, tmp_path, case):
    root, good, output_dir = baseline
    change, feature, kinds = DATA_GATE_CASES[case]
    result = cli(output_dir, rewrite(good, tmp_path / "data", change))
    assert result.returncode == 1
    assert "Run failed in DataGate: the data gate stopped the run before Transform" in result.stderr, result.stderr[-3000:]
    blocking = [line for line in result.stderr.splitlines() if line.strip().startswith("BLOCK")]
    assert any(f" {feature} " in line and any(k in line for k in kinds.split("|")) for line in blocking), blocking
    assert "full report: " in result.stderr
    report = Path(result.stderr.split("full report: ")[1].split(" ")[0])
    assert report.is_file() and feature in report.read_text()
    states = latest_summary(output_dir).states()
    assert states["DataGate"] == "FAILED" and "Transform" not in states and "Trainer" not in states


# --- the model gate ------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_worse_model_is_not_blessed_pushed_or_exported(baseline, intact):
    _, good, output_dir = baseline
    result = cli(output_dir, good, "--train-steps", "1", "--learning-rate", "0.0001")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Model blessed: no" in result.stdout, result.stdout[-3000:]
    assert "Pushed model:  none this run (the Evaluator did not bless the model; " in result.stdout
    assert "TFLite model:  not exported (the Evaluator did not bless the model)" in result.stdout
    assert latest_summary(output_dir).output("Evaluator", "blessing").properties["blessed"] == 0


# --- observing a run from outside: its lock file and its MLMD records, never a fixed sleep ----------

POLL = 0.05  # seconds between two looks; every wait has an overall deadline


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 600):
    """Polls condition() until it returns something truthy (returned); fails naming `what` when the
    deadline passes or when `process` ends first (it can no longer happen)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(POLL)


def lock_holder(output_dir: Path) -> int | None:
    """The pid the output dir's run lock names (runs/state.py writes 'pid N on host, since ...')."""
    try:
        found = re.match(r"pid (\d+) on ", (output_dir / ".run.lock").read_text())
    except FileNotFoundError:
        return None
    return int(found[1]) if found else None


def read_only_store(output_dir: Path) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(output_dir / "metadata.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def running_trainer(output_dir: Path):
    """The Trainer execution RUNNING in the store, if there is one (read-only; a busy store is 'not yet')."""
    try:
        store = read_only_store(output_dir)
        context = store.get_context_by_type_and_name("node", "chicago_taxi.Trainer")
        executions = store.get_executions_by_context(context.id) if context else []
    except Exception:  # the run is writing: look again
        return None
    running = [e for e in executions if e.last_known_state == metadata_store_pb2.Execution.RUNNING]
    return max(running, key=lambda e: e.id) if running else None


def training_events(output_dir: Path, execution_id: int) -> list[Path]:
    """TensorBoard event files the Keras fit() of this Trainer execution opened (at its first step)."""
    return list((output_dir / "pipeline_root" / "Trainer" / "model_run" / str(execution_id)).rglob("events.out.tfevents.*"))


def start_run(output_dir: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    """A run in its own process group, so that signals reach every process it started."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), "--data-dir", str(data_dir), "--no-report",
         *SMALL_RUN, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


# --- two runs at once -----------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_second_run_on_the_same_output_dir_refuses_at_once(baseline):
    _, good, output_dir = baseline
    runs_before = len(runs(output_dir))
    first = start_run(output_dir, good, "--train-steps", "200")
    try:
        # The lock file names the first run once it holds the lock (the baseline run's name is there before).
        wait_for(lambda: lock_holder(output_dir) == first.pid, "the first run took the lock", first, timeout=300)
        # Stopped, the first run keeps the lock for as long as the second one needs to start up.
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            assert first.poll() is None and lock_holder(output_dir) == first.pid
            started = time.monotonic()
            second = cli(output_dir, good)
            seconds = time.monotonic() - started
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"another run is using {output_dir} (pid {first.pid} on " in second.stderr, second.stderr[-2000:]
        assert "Running chicago_taxi" not in second.stdout  # it started nothing
        assert seconds < 60, seconds  # refused at once (the seconds are the CLI's start-up)
    finally:
        _, err = first.communicate(timeout=600)  # (empty where wait_for already read it)
    assert first.returncode == 0, err[-3000:]  # the refused run did not disturb the holder
    assert len(runs(output_dir)) == runs_before + 1  # the first run, and only it, was recorded


# --- kill and resume -----------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_run_killed_during_training_resumes_from_cache(baseline, tmp_path):
    root, good, output_dir = baseline
    longer = ["--train-steps", "3000"]  # a new Trainer configuration: the Trainer runs, for a while
    killed = start_run(output_dir, good, *longer)
    try:
        trainer = wait_for(lambda: running_trainer(output_dir), "the Trainer's execution was RUNNING in MLMD", killed)
        wait_for(lambda: training_events(output_dir, trainer.id), "the Trainer started training", killed)
        # Stopped first, so that what is checked below is still so when the kill lands.
        os.killpg(killed.pid, signal.SIGSTOP)
        still = read_only_store(output_dir).get_executions_by_id([trainer.id])[0]
        assert still.last_known_state == still.RUNNING, "the Trainer finished before the kill"
        model_dir = output_dir / "pipeline_root" / "Trainer" / "model" / str(trainer.id)
        assert not list(model_dir.rglob("saved_model.pb")), "the Trainer already exported its model"
    finally:
        with contextlib.suppress(ProcessLookupError):  # (already gone where wait_for failed)
            os.killpg(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    serving = serving_state(output_dir)

    resumed = cli(output_dir, good, *longer)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Note: execution {trainer.id} (Trainer) of an interrupted run: marked CANCELED" in resumed.stdout
    run = latest_summary(output_dir)
    states = run.states()
    assert all(states[n] == "CACHED" for n in ("CsvExampleGen", "StatisticsGen", "Transform")), states
    assert states["Trainer"] == "COMPLETE"
    store = read_only_store(output_dir)
    [cancelled] = store.get_executions_by_id([trainer.id])
    assert cancelled.last_known_state == cancelled.CANCELED
    # What the killed Trainer wrote (pipeline_root/Trainer/<output>/<its id>/) is never used: any
    # artifact MLMD holds there is ABANDONED and no execution read it, and the Evaluator judged the
    # model the resumed run's Trainer trained.
    killed_dirs = [d for d in (output_dir / "pipeline_root" / "Trainer").glob(f"*/{trainer.id}")]
    assert killed_dirs, "the killed Trainer left no output directory"
    left = [a for a in store.get_artifacts() if any(Path(a.uri).is_relative_to(d) for d in killed_dirs)]
    assert {a.state for a in left} <= {metadata_store_pb2.Artifact.ABANDONED}, left
    assert [e for e in store.get_events_by_artifact_ids([a.id for a in left]) if e.type == e.INPUT] == []
    model = run.execution("Evaluator").inputs["model"][0]
    assert Path(model.uri) == output_dir / "pipeline_root" / "Trainer" / "model" / str(run.execution("Trainer").id)
    # Only complete versions in the serving directory; earlier ones untouched.
    for version in (output_dir / "serving" / "taxi").iterdir():
        assert (version / "saved_model.pb").is_file(), version
    after = serving_state(output_dir)
    assert {k: v for k, v in after.items() if k in serving} == serving

# --- validation at the boundary, permissions, secrets ---------------------------------------------

@pytest.mark.parametrize(
    "args, message",
    [
        (["--min-auc", "1.5"], "--min-auc: must be between 0 and 1"),
        (["--train-steps", "0"], "--train-steps: must be at least 1"),
        (["--tflite-quantization", "int4"], "'int4' is not one of"),
        (["--warn-only-anomalies", "NOT_A_KIND"], "unknown TFDV anomaly kinds: NOT_A_KIND"),
        (["--no-such-option"], "No such option '--no-such-option'"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--output-dir", str(tmp_path / "out"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_the_store_and_outputs_are_the_users_only(baseline):
    _, _, output_dir = baseline
    assert stat.S_IMODE((output_dir / "metadata.sqlite").stat().st_mode) == 0o600
    for path in [output_dir, output_dir / "pipeline_root", output_dir / "serving", output_dir / "logs"]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_no_secret_in_configuration_files_or_the_image():
    # A literal value given to a secret-like name, a cloud access key id, or a private key.
    secret = re.compile(
        r"""(password|passwd|secret|token|api_key|access_key)\w*\s*[:=]\s*["'][^"'$]{6,}["']|AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY""",
        re.IGNORECASE,
    )
    files = [REPO / "Dockerfile", REPO / ".dockerignore", REPO / "pyproject.toml", REPO / "Makefile",
             *REPO.glob("pipeline/*.py"), *REPO.glob("kubeflow/*.py"), *REPO.glob("pipeline/schema/*")]
    found = {str(p): m.group(0) for p in files for m in [secret.search(p.read_text())] if m}
    assert found == {}
    assert secret.search('token = "hunter2-secret"')  # the pattern does catch one
