"""The Makefile's targets, driven through `make` itself, as the README tells a user to call them.

The tests run inside the project environment, so each `make` here calls `bash tools/env.sh exec`
from inside it: env.sh's "already inside" path, which runs the command where it is.
"""

import csv
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv
import yaml

from data import taxi
from pipeline.schemas import SCHEMA_DIR
from tests.conftest import REPO, SMALL_RUN, latest_summary

# What an outer make (`make test ARGS=...`) passes down: its command-line variables would become
# this make's too (an ARGS meant for pytest reaching `make tensorboard`, say).
# What an outer make (`make test ARGS=...`) puts in the tests' environment: its own flags, and the
# variables given on its command line, which make exports to its recipes' environment.
OUTER_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR", "ARGS", "CMD")


def make_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OUTER_MAKE and not k.startswith("KFP_")}
    env.update(extra)
    return env


def make(*args: str, cwd: Path = REPO, timeout: int = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    assert shutil.which("make"), "no make in the environment: tools/debian.env's ROOTFS_EXTRA_PACKAGES installs it"
    return subprocess.run(["make", *args], cwd=cwd, env=env or make_env(), capture_output=True, text=True,
                          timeout=timeout)


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}"


# --- make run, make report, make tensorboard: one run through make ------------------------------

@pytest.fixture(scope="module")
def made_run(tmp_path_factory):
    """`make run` on a 600-row sample, options in ARGS (no report: `make report` writes it)."""
    root = tmp_path_factory.mktemp("make_run")
    data_dir = taxi.write_sample(root / "data", rows=600)
    output_dir = root / "out"
    args = " ".join([*SMALL_RUN, "--train-steps", "37", "--no-report"])
    result = make("run", f"OUTPUT_DIR={output_dir}", f"DATA_DIR={data_dir}", f"ARGS={args}")
    assert result.returncode == 0, output_of(result)
    return output_dir, data_dir, result


@pytest.mark.e2e
def test_make_run_runs_the_pipeline_on_data_dir_into_output_dir_with_args(made_run):
    output_dir, data_dir, result = made_run
    run = latest_summary(output_dir)
    assert run.state == "COMPLETE", run.states()
    assert run.states()["Pusher"] == "COMPLETE"
    # DATA_DIR reached CsvExampleGen; ARGS reached the Trainer (37 steps: no default) and the run
    # (--no-report: no report written).
    assert run.execution("CsvExampleGen").properties["input_base"] == str(data_dir)
    assert run.execution("Trainer").properties["train_args"]["num_steps"] == 37
    assert not (output_dir / "reports").exists()
    assert (output_dir / "metadata.sqlite").is_file()
    assert f"MLMD store:    {output_dir}/metadata.sqlite" in result.stdout, result.stdout[-3000:]


@pytest.mark.e2e
def test_make_report_writes_the_latest_runs_report(made_run):
    output_dir, _, _ = made_run
    result = make("report", "RUN=latest", f"OUTPUT_DIR={output_dir}", timeout=600)
    assert result.returncode == 0, output_of(result)
    run_id = latest_summary(output_dir).run_id
    [html] = list((output_dir / "reports").glob("run-*/report.html"))
    assert f"Report of run {run_id}: {html}" in result.stdout, result.stdout
    assert (html.parent / "report.md").is_file()
    page = html.read_text()
    assert f"Run {run_id} of chicago_taxi" in page and "Model blessed: yes" in page


@pytest.mark.e2e
def test_make_report_passes_run_on(made_run):
    output_dir, _, _ = made_run
    result = make("report", "RUN=latest~1", f"OUTPUT_DIR={output_dir}", timeout=600)
    assert result.returncode != 0, output_of(result)  # the store holds one run: there is no latest~1
    assert "latest~1" in result.stderr, output_of(result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


@pytest.mark.e2e
def test_make_tensorboard_serves_the_runs_training_logs_on_localhost_until_stopped(made_run):
    output_dir, _, _ = made_run
    port = free_port()
    server = subprocess.Popen(["make", "tensorboard", f"OUTPUT_DIR={output_dir}", f"ARGS=--port {port}"], cwd=REPO,
                              env=make_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 180, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = get(f"http://localhost:{port}/data/runs")
                break
            except OSError:
                time.sleep(1)
        assert answer is not None, f"no answer on port {port}; make exited {server.poll()}"
        status, body = answer
        assert status == 200
        # The Trainer's logs of this run: TensorBoard lists their runs (train, validation, ...).
        assert body.strip() not in (b"", b"[]"), body
        status, page = get(f"http://localhost:{port}/")
        assert status == 200 and b"TensorBoard" in page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    with pytest.raises(OSError):
        get(f"http://localhost:{port}/")


# --- make exec ----------------------------------------------------------------------------------

def test_make_exec_keeps_quotes_and_dollar_variables_intact():
    # $v, ${v} and $((...)) are the shell's, not make's; every kind of quote reaches bash as typed.
    command = """v='a  b'; printf '<%s>' "$v" "${v}x" 'it'"'"'s' "say \\"hi\\"" $((40+2)) '$v'"""
    result = make("exec", f"CMD={command}", timeout=300)
    assert result.returncode == 0, output_of(result)
    assert result.stdout.splitlines()[-1] == """<a  b><a  bx><it's><say "hi"><42><$v>""", result.stdout


def test_make_exec_runs_inside_the_environment():
    result = make("exec", "CMD=echo $TFX_ENV_ACTIVE $VIRTUAL_ENV; command -v make", timeout=300)
    assert result.returncode == 0, output_of(result)
    active, venv = result.stdout.splitlines()[-2].split()
    assert active == "1" and venv.startswith("/") and Path(venv, "bin", "python").exists()
    assert result.stdout.splitlines()[-1].endswith("/make")


def test_make_exec_without_cmd_is_a_usage_error():
    result = make("exec", "CMD=", timeout=300)
    assert result.returncode == 2, output_of(result)
    assert 'usage: make exec CMD="command ..."' in result.stderr


# --- make schema --------------------------------------------------------------------------------

@pytest.mark.e2e
def test_make_schema_drafts_a_schema_with_every_curated_feature(tmp_path):
    data_dir = taxi.write_sample(tmp_path / "data", rows=600)
    draft = tmp_path / "drafts" / "draft.pbtxt"
    result = make("schema", f"SCHEMA_OUT={draft}", f"DATA_DIR={data_dir}", f"OUTPUT_DIR={tmp_path / 'out'}")
    assert result.returncode == 0, output_of(result)
    assert str(draft) in result.stdout
    drafted = {f.name for f in tfdv.load_schema_text(str(draft)).feature}
    curated = {f.name for f in tfdv.load_schema_text(str(SCHEMA_DIR / "schema.pbtxt")).feature}
    assert len(curated) == 18
    assert curated <= drafted, f"missing from the draft: {sorted(curated - drafted)}"
    with (data_dir / "data.csv").open(newline="") as f:
        header = next(csv.reader(f))
    assert drafted == set(header)  # drafted from the data: one feature per CSV column


# --- make kfp -----------------------------------------------------------------------------------

def test_make_kfp_writes_the_spec_with_the_kfp_variables(tmp_path):
    image, root, data = "registry.example.org/tfx-taxi:make-test", "gs://make-test-bucket/root", "gs://make-test-bucket/csv"
    output_dir = tmp_path / "out"
    result = make("kfp", f"OUTPUT_DIR={output_dir}", f"KFP_IMAGE={image}", f"KFP_PIPELINE_ROOT={root}",
                  f"KFP_DATA_DIR={data}", timeout=600)
    assert result.returncode == 0, output_of(result)
    path = output_dir / "kubeflow" / "chicago_taxi.yaml"
    assert path.is_file(), output_of(result)
    spec = yaml.safe_load(path.read_text())
    assert spec["defaultPipelineRoot"] == root
    assert spec["root"]["inputDefinitions"]["parameters"]["data_root"]["defaultValue"] == data
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e}
    assert images == {image}


def test_make_kfp_without_an_image_is_refused_naming_it(tmp_path):
    result = make("kfp", f"OUTPUT_DIR={tmp_path / 'out'}", "KFP_PIPELINE_ROOT=gs://b/root", timeout=600)
    assert result.returncode != 0, output_of(result)
    assert "Missing option '--image'" in result.stderr, output_of(result)
    assert not (tmp_path / "out" / "kubeflow").exists()


# --- make clean ---------------------------------------------------------------------------------

def test_make_clean_removes_output_dir_and_nothing_else(tmp_path):
    output_dir = tmp_path / "out"
    (output_dir / "logs").mkdir(parents=True)
    (output_dir / "logs" / "run.log").write_text("x")
    (tmp_path / "beside.txt").write_text("kept")
    result = make("clean", f"OUTPUT_DIR={output_dir}", timeout=120)
    assert result.returncode == 0, output_of(result)
    assert not output_dir.exists()
    assert (tmp_path / "beside.txt").read_text() == "kept"


@pytest.mark.parametrize("value", ["", "/", ".", ".."])
def test_make_clean_refuses_root_dot_dotdot_and_empty(tmp_path, value):
    # Run from a scratch directory two levels down (make -f): were the guard gone, '.' and '..'
    # would remove only these scratch files, and GNU rm refuses '/' itself.
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    (here / "here.txt").write_text("kept")
    (tmp_path / "a" / "up.txt").write_text("kept")
    result = make("-f", str(REPO / "Makefile"), "clean", f"OUTPUT_DIR={value}", cwd=here, timeout=120)
    assert result.returncode == 2, output_of(result)
    assert f"refusing to remove OUTPUT_DIR='{value}'" in result.stderr, output_of(result)
    assert (here / "here.txt").read_text() == "kept" and (tmp_path / "a" / "up.txt").read_text() == "kept"
