"""The Kubeflow image, built with buildah (tools/image.sh) and run: what a cluster would pull.

Slow tier: the first build on a machine installs the whole locked stack (minutes; cached by lock
afterwards, see benchmarks/README.md). The image is checked against the local environment
(Keras setting, installed versions, project code), for paths of this machine, and then every
step of the compiled pipeline runs inside it (tests/kfp_launcher.py stands in for KFP's driver
and launcher; no cluster can exist here), on 600 rows (the e2e sample, with SMALL_RUN's lowered gates),
down to a pushed model that answers.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

import models
from data import taxi
from kubeflow import DATA_ROOT_PARAM, TRAIN_ARGS_PARAM, default_spec_path, train_args_value
from kubeflow import runner
from tests.conftest import REPO, SMALL_RUN
from tests.kfp_launcher import Run, image_command
from tests.test_make import make, make_env

slow = pytest.mark.slow  # every test that needs the built image

BUCKET_ROOT = "gs://tfx-taxi-image/root"  # compiled in; the driver binds a local directory there
COMPILED_STEPS = 7  # the spec's default train_args; the run sets TRAIN_STEPS, as a KFP run would
TRAIN_STEPS = 60


@pytest.fixture(scope="module")
def image() -> str:
    """The image for this checkout, built (or found in the layer cache) by `make image`'s script."""
    if not shutil.which("buildah") and os.geteuid() != 0:
        pytest.skip("no buildah and not root: tools/image.sh cannot install it")  # a failure under CI=true
    built = image_command("build", timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    reference = built.stdout.strip().splitlines()[-1]
    assert reference == image_command("name").stdout.strip()
    return reference


def in_image(image: str, *argv: str, timeout: int = 600) -> str:
    result = image_command("run", image, "--", *argv, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


PROBE = r"""
import json, os, sys
import models, tensorflow as tf
print(json.dumps({"keras_env": {k: os.environ.get(k) for k in models.KERAS_ENV},
                  "keras": tf.keras.__name__ + " " + tf.keras.__version__ if hasattr(tf.keras, "__version__") else tf.keras.__name__,
                  "python": sys.version.split()[0], "models": models.__file__}))
"""


@slow
def test_the_image_has_the_local_python_keras_setting_and_keras(image):
    inside = json.loads(in_image(image, "python", "-c", PROBE).strip().splitlines()[-1])
    local = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                                      timeout=300).stdout.strip().splitlines()[-1])
    assert inside["keras_env"] == models.KERAS_ENV
    assert (inside["keras"], inside["python"]) == (local["keras"], local["python"])
    # Steps import the project from /opt/tfx-taxi (the WORKDIR), where the compiled spec expects it.
    assert inside["models"] == f"{runner.IMAGE_PROJECT_DIR}/models/__init__.py"


def _freeze(lines: str) -> dict[str, str]:
    pins = {}
    for line in lines.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def _lock_pins() -> dict[str, str]:
    from packaging.requirements import Requirement

    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if not line or line[0] in "# ":
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():  # this Python, as the image's
            pins[re.sub(r"[-_.]+", "-", requirement.name).lower()] = str(requirement.specifier).removeprefix("==")
    return pins


@slow
def test_the_image_installs_exactly_the_lock_and_the_local_environment_has_the_same(image):
    inside = _freeze(in_image(image, "pip", "freeze", "--exclude", "tfx-taxi-pipeline"))
    local = _freeze(subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True,
                                   check=True, timeout=300).stdout)
    lock = _lock_pins()
    assert inside == lock, {"not in the image": sorted(set(lock) - set(inside)), "not locked": sorted(set(inside) - set(lock)),
                            "other version": sorted(n for n in set(lock) & set(inside) if lock[n] != inside[n])}
    assert local == inside


HASHES = r"""
import hashlib, json, os, sys
root = sys.argv[1]
print(json.dumps({os.path.relpath(os.path.join(d, f), root): hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                  for d, _, files in os.walk(root) for f in files}))
"""


@slow
def test_the_project_code_in_the_image_is_this_checkout(image):
    inside = json.loads(in_image(image, "python", "-c", HASHES, str(runner.IMAGE_PROJECT_DIR)).strip().splitlines()[-1])
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    local = {path: hashlib.sha256((REPO / path).read_bytes()).hexdigest() for path in tracked if (REPO / path).is_file()}
    assert {p: inside.get(p) for p in local} == local
    # What the build context leaves out (.dockerignore) is not there either: run state, data copies.
    assert not [p for p in inside if p.startswith(("outputs/", "data/chicago_taxi/", ".git/")) or p == ".git"]


@slow
def test_nothing_of_this_machine_is_in_the_image_and_no_compiler_stayed(image):
    config = image_command("buildah", "inspect", "--type", "image", image).stdout
    assert config, "buildah inspect printed nothing"
    for path in {str(REPO), str(Path.home() / ".cache"), str(Path(__file__).parent)}:
        assert path not in config, path
    # The build's CA bundle was bound at /mnt for the build only; the compiler was removed.
    probe = "import os, shutil; print(os.listdir('/mnt'), shutil.which('gcc'), os.environ.get('PIP_CERT'))"
    assert in_image(image, "python", "-c", probe).strip().splitlines()[-1] == "[] None None"
    in_image(image, "python", "-c", "import farmhash")  # built from source with the removed compiler


# --- every compiled step, run inside the image ----------------------------------------------------


@pytest.fixture(scope="module")
def compiled(image, tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp-image")
    argv = [sys.executable, "-m", "cli", "kfp", "compile", "--image", image, "--pipeline-root", BUCKET_ROOT,
            "--output-dir", str(out), "--train-steps", str(COMPILED_STEPS), *SMALL_RUN[2:]]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    path = default_spec_path(out, "chicago_taxi")
    return json_format.ParseDict(yaml.safe_load(path.read_text()), pb.PipelineSpec()), path


@pytest.fixture(scope="module")
def in_image_run(image, compiled, tmp_path_factory):
    spec, _ = compiled
    root = tmp_path_factory.mktemp("bucket")
    # The run's data_root: not the compiled default (<root>/data), so the steps must take the run's value.
    taxi.write_sample(root / "runs-data", rows=600)
    arguments = {DATA_ROOT_PARAM: f"{BUCKET_ROOT}/runs-data", TRAIN_ARGS_PARAM: train_args_value(TRAIN_STEPS)}
    run = Run(spec, image, root, arguments)
    order = run.run_all(timeout=1200)
    return run, order


@slow
def test_every_compiled_step_ran_in_the_image_in_dependency_order(compiled, in_image_run):
    spec, _ = compiled
    run, order = in_image_run
    assert set(order) == set(spec.root.dag.tasks) and len(order) == 11
    for task in order:
        before = set(order[: order.index(task)])
        assert set(spec.root.dag.tasks[task].dependent_tasks) <= before, task
    assert order[-1] == "Pusher"
    print("in-image step seconds:", {t: round(s) for t, s in run.seconds.items()})


@slow
def test_runtime_parameters_reached_the_steps_as_a_run_set_them(in_image_run):
    run, _ = in_image_run
    examples = run.outputs["CsvExampleGen"]["examples"][0]
    assert json.loads(examples.metadata["split_names"]) == ["train", "eval"]
    assert not (run.root_dir / "data").exists()  # the compiled default was never there to read
    # The Trainer's own log of what it parsed from its executor input, inside the image.
    parsed = re.search(r"'train_args': '(\{[^']*\})'", run.logs["Trainer"])
    assert parsed, run.logs["Trainer"][-3000:]
    assert json.loads(parsed.group(1).replace("\\n", "")) == {"num_steps": TRAIN_STEPS}


@slow
def test_the_pushed_model_answers_serving_default_and_the_tflite_model_is_beside_it(in_image_run):
    run, _ = in_image_run
    assert (run.host_path(run.outputs["Evaluator"]["blessing"][0].uri) / "BLESSED").exists()
    pushed = run.outputs["Pusher"]["pushed_model"][0]
    assert pushed.metadata["pushed"] == 1, dict(pushed.metadata)
    versions = sorted((run.root_dir / "serving" / "taxi").iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").exists()
    assert list((run.root_dir / "serving" / "taxi_tflite").rglob("*.tflite"))
    examples = run.host_path(run.outputs["CsvExampleGen"]["examples"][0].uri)
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(map(str, examples.glob("Split-eval/*.gz"))),
                                                          compression_type="GZIP").take(32)]
    serve = tf.saved_model.load(str(versions[0])).signatures["serving_default"]
    probabilities = serve(examples=tf.constant(records))["probabilities"].numpy()
    assert probabilities.shape == (len(records), 1) and probabilities.std() > 0


# --- the push, which no registry here can receive -------------------------------------------------


def test_image_push_names_the_registry_tag_of_this_commit(tmp_path):
    tag = image_command("name").stdout.strip().rsplit(":", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", tag), tag
    dry = make("-s", "image-push", "REGISTRY=registry.example.org/team/", env=make_env(DRY_RUN="1"), timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    command = dry.stdout.strip().splitlines()[-1].split()
    assert command[0] == "buildah" and command[-3:] == [
        "push", f"localhost/tfx-taxi:{tag}", f"docker://registry.example.org/team/tfx-taxi:{tag}"]


@pytest.mark.parametrize("registry, message", [
    ("", "usage: make image-push REGISTRY="),
    ("https://registry.example.org", "without a scheme"),
])
def test_image_push_refuses_a_missing_or_malformed_registry_in_one_line(registry, message):
    result = image_command("push", registry)
    assert result.returncode == 1 and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
