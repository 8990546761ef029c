"""Options that change what a run does, each seen in a real run through the command line:
`--verbose`, `--no-report`, `--tflite-quantization float16`, `--no-enable-cache`,
`--tflite-min-agreement`, and the cache's invalidation when a Python file under models/ changes.

Pipeline runs cost minutes, so these share one store (module fixtures): a first run with
`--verbose --no-report --tflite-quantization float16`; a re-run without the cache that also sets
a parity gate the int8 export cannot meet; and two runs from a copy of the repository (one with
the code unchanged, one after editing a file under models/). Each test reads one option's effect.
"""

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from data import taxi
from ml_metadata.metadata_store import metadata_store as mlmd

from tests.conftest import REPO, SMALL_RUN, latest_summary, local_locations, run_cli, tree_hashes

pytestmark = pytest.mark.e2e

FIRST = ["--tflite-quantization", "float16"]  # the pipeline's settings of the first run (SMALL_RUN besides)
ALL_NODES = {
    "CsvExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator", "accepted_statistics_resolver",
    "DataGate", "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "ServingCheck", "Pusher",
    "TFLiteExport",
}


def summary_lines(stdout: str) -> list[str]:
    """The end-of-run summary: from the 'Run <id>: complete in ...' line on."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"Run \S+: complete in ", line)]
    assert starts, stdout[-3000:]
    return lines[starts[-1]:]


def listing(directory: Path) -> list[str]:
    """Every path under directory (hidden ones too: a half-written TFLite version is one)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A first run on a fresh store, verbose, without a report, exporting float16.

    Returns (output_dir, data_dir, the CompletedProcess, the run read back from MLMD).
    """
    root = tmp_path_factory.mktemp("run_options")
    data_dir = taxi.write_sample(root / "data", rows=600)
    output_dir = root / "out"
    result = run_cli(output_dir, data_dir, *FIRST, "--verbose", "--no-report")
    return output_dir, data_dir, result, latest_summary(output_dir)


@pytest.fixture(scope="module")
def uncached(first):
    """The same data and model settings again with --no-enable-cache, and a TFLite parity gate of
    100% in int8 (on this model int8 takes the SavedModel's decision on about 98% of the eval
    examples; the lossless modes on all of them).

    Returns (the CompletedProcess, the run read back from MLMD, the serving directory's files and
    their hashes before the run).
    """
    output_dir, data_dir, _, _ = first
    serving_before = tree_hashes(output_dir / "serving")
    assert any(name.startswith("taxi/") for name in serving_before), serving_before  # the first run pushed
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), "--data-dir", str(data_dir),
            "--no-report", *SMALL_RUN, "--no-enable-cache", "--tflite-quantization", "int8",
            "--tflite-min-agreement", "1.0"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    return result, latest_summary(output_dir), serving_before


# --- --verbose, --no-report, --tflite-quantization: the first run ---------------------------------

def test_verbose_puts_the_log_lines_on_the_console_too(first):
    output_dir, _, result, _ = first
    console = result.stdout + result.stderr
    # Lines a quiet run sends only to its log file: Python logging, and Keras's fit() printing.
    assert "Component Trainer is finished" in console, console[-3000:]
    assert "Epoch 1/" in console
    assert re.search(r"^\[\s*\d+/13\] Trainer +done ", result.stdout, re.M)  # the progress lines as well
    [log_file] = [line.split(None, 1)[1] for line in summary_lines(result.stdout) if line.startswith("Logs:")]
    assert Path(log_file).parent == output_dir / "logs"
    assert "Component Trainer is finished" in Path(log_file).read_text()  # and the log file still gets them


def test_no_report_writes_no_report_and_the_summary_names_none(first):
    output_dir, _, result, _ = first
    reports = output_dir / "reports"
    assert listing(reports) == [], listing(reports)
    summary = summary_lines(result.stdout)
    assert any(line.startswith("Pushed model:  ") for line in summary), summary  # the summary is all there
    assert [line for line in summary if "report" in line.lower()] == [], summary


def test_float16_quantization_is_what_the_run_exports_and_records(first):
    _, _, result, run = first
    tflite = run.output("TFLiteExport", "tflite_model")
    props = tflite.properties
    assert props["exported"] == 1 and props["quantization"] == "float16", props
    model_file = Path(run.output("Pusher", "pushed_model").properties["tflite_destination"]) / "model.tflite"
    assert model_file.is_file() and model_file.stat().st_size == props["tflite_bytes"]
    # The file itself is float16: its weights are float16 constants (dynamic stores int8, none float32).
    dtypes = {np.dtype(t["dtype"]).name for t in Interpreter(model_path=str(model_file)).get_tensor_details()}
    assert "float16" in dtypes, dtypes
    assert f"TFLite model:  {model_file.parent} (float16, " in result.stdout


# --- --no-enable-cache and --tflite-min-agreement: the re-run -------------------------------------

def test_no_enable_cache_runs_every_component_again(first, uncached):
    _, _, _, first_run = first
    _, run, _ = uncached
    states = run.states()
    # Run again, not reused: no CACHED state (TFLiteExport ran and failed, so the Pusher after it
    # never ran: see the next test), and new artifacts where a cached run would have re-recorded
    # the first run's.
    assert "CACHED" not in states.values(), states
    assert set(states) == ALL_NODES - {"Pusher"}, states
    assert {n for n, s in states.items() if s != "COMPLETE"} == {"TFLiteExport"}, states
    for node, key in [("CsvExampleGen", "examples"), ("StatisticsGen", "statistics"), ("ImportSchemaGen", "schema"),
                      ("Transform", "transform_graph"), ("Trainer", "model"), ("Evaluator", "evaluation")]:
        assert run.output(node, key).id != first_run.output(node, key).id, node


def test_a_tflite_model_below_the_parity_gate_fails_the_run_and_ships_nothing(first, uncached):
    output_dir, _, _, _ = first
    result, run, serving_before = uncached
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    first_line = result.stderr.strip().splitlines()[0]
    assert first_line.startswith("Run failed in TFLiteExport: "), result.stderr[-3000:]
    agreement = re.search(r"agrees with the SavedModel on (\d+\.\d+)% of (\d+) eval examples, "
                          r"below the required 100\.00%", first_line)
    assert agreement and float(agreement[1]) < 100, first_line
    assert re.search(r"^\[\s*\d+/13\] TFLiteExport +failed ", result.stdout, re.M), result.stdout[-2000:]
    assert run.states()["TFLiteExport"] == "FAILED"
    # The model was blessed, but the Pusher comes after every gate: it never ran, and the serving
    # directory (both forms) is exactly as the first run left it.
    assert run.output("Evaluator", "blessing").properties["blessed"] == 1
    assert "Pusher" not in run.states()
    assert tree_hashes(output_dir / "serving") == serving_before
    # MLMD says why nothing was published: on the failed execution and on the run.
    store = mlmd.MetadataStore(local_locations(output_dir).metadata.connection_config())
    [failed] = [e for e in store.get_executions_by_context(run.context_id) if e.last_known_state == e.FAILED]
    assert failed.custom_properties["failure"].string_value.startswith("failed in TFLiteExport: ParityError: TFLite (int8) agrees")
    [context] = store.get_contexts_by_id([run.context_id])
    assert context.custom_properties["failure"].string_value.endswith("; nothing was published")


# --- a change to the model code: on a copy of the repository --------------------------------------

def _ignored(relative: Path, patterns: list[str], is_dir: bool) -> bool:
    for pattern in patterns:
        directory_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if directory_only and not is_dir:
            continue
        if "/" in pattern:
            if fnmatch.fnmatch(relative.as_posix(), pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatch(relative.name, pattern):
            return True
    return False


def repository_copy(target: Path) -> Path:
    """The files `git ls-files --cached --others --exclude-standard` lists, copied under target.

    Git is not inside the project environment, so the .gitignore's patterns (directory names,
    `*.ext`, `dir/sub/`) are applied here.
    """
    patterns = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for directory, dirs, files in os.walk(REPO):
        here = Path(directory)
        dirs[:] = [d for d in dirs if d != ".git" and not _ignored((here / d).relative_to(REPO), patterns, True)]
        for name in files:
            relative = (here / name).relative_to(REPO)
            if not _ignored(relative, patterns, False):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(here / name, target / relative)
    return target


def run_from(repository: Path, output_dir: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """`python -m cli run` with the code of `repository` (its working directory and import path)."""
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), "--data-dir", str(data_dir),
            "--no-report", *SMALL_RUN, *extra]
    env = {**os.environ, "PYTHONPATH": str(repository)}
    result = subprocess.run(argv, cwd=repository, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_editing_a_python_file_under_models_reruns_transform_and_trainer(first, tmp_path):
    output_dir, data_dir, _, _ = first
    copy = repository_copy(tmp_path / "repo")
    assert (copy / "models" / "preprocessing.py").read_bytes() == (REPO / "models" / "preprocessing.py").read_bytes()

    # The copy as it is: the same code, so the same cache (the copy's place is not what counts).
    run_from(copy, output_dir, data_dir, *FIRST)
    unchanged = latest_summary(output_dir).states()
    assert unchanged["Transform"] == unchanged["Trainer"] == "CACHED", unchanged

    with (copy / "models" / "preprocessing.py").open("a") as f:
        f.write("\n# An edit: a comment is enough to change the model code's fingerprint.\n")
    run_from(copy, output_dir, data_dir, *FIRST)
    states = latest_summary(output_dir).states()
    assert states["Transform"] == states["Trainer"] == "COMPLETE", states
    # Only from the first component that uses the model code on.
    assert all(states[n] == "CACHED" for n in ("CsvExampleGen", "StatisticsGen", "ExampleValidator")), states
