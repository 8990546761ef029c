"""Kubeflow Pipelines v2: the compiled spec, the image, a compiled step run as KFP runs it, submission.

No Kubernetes cluster can exist where these tests run. So the spec is read with KFP's own protos
and compared with the local pipeline, one compiled step is executed from its own command line
with the executor input KFP's launcher would pass, and submission talks to a stand-in HTTP server
that answers the KFP v2beta1 API calls kfp.Client makes.
"""

import email
import email.policy
import json
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import tensorflow as tf
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb
from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import KUBEFLOW_TFX_CMD

import cli
import models
from data import taxi
from kubeflow import DATA_ROOT_PARAM, TRAIN_ARGS_PARAM, default_spec_path, train_args_value
from kubeflow import runner
from models.hyperparameters import Hyperparameters
from pipeline.config import ConfigError, PipelineConfig
from pipeline.beam import DirectBeam
from pipeline.pipeline import create_pipeline
from tests.conftest import local_locations
from tests.conftest import REPO

IMAGE = "registry.example.org/tfx-taxi:test"
ROOT = "gs://tfx-taxi-test/root"
TRAIN_STEPS = 7


def parse_spec(path: Path) -> pb.PipelineSpec:
    return json_format.ParseDict(yaml.safe_load(path.read_text()), pb.PipelineSpec())


def executors(spec: pb.PipelineSpec) -> dict[str, pb.PipelineDeploymentConfig.ExecutorSpec]:
    """Each task's executor (the deployment spec is a Struct in PipelineSpec: parse it with its proto)."""
    deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec), pb.PipelineDeploymentConfig())
    return {
        name: deployment.executors[spec.components[task.component_ref.name].executor_label]
        for name, task in spec.root.dag.tasks.items()
    }


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The spec compiled once through the command line `make kfp` runs: (spec, its path, the output dir)."""
    out = tmp_path_factory.mktemp("kfp")
    argv = [sys.executable, "-m", "cli", "kfp", "compile", "--image", IMAGE, "--pipeline-root", ROOT,
            "--output-dir", str(out), "--train-steps", str(TRAIN_STEPS)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    path = default_spec_path(out, "chicago_taxi")
    assert str(path) in result.stdout
    return parse_spec(path), path, out


@pytest.fixture(scope="module")
def local_pipeline(tmp_path_factory):
    """The pipeline exactly as the local runner builds it."""
    root = tmp_path_factory.mktemp("local")
    return create_pipeline(PipelineConfig(), local_locations(root))


def local_graph(pipeline, drop_resolvers: bool) -> tuple[set[str], set[tuple[str, str]]]:
    """Node ids and (upstream, downstream) edges of a TFX pipeline."""
    dropped = {n.id for n in pipeline.components if drop_resolvers and isinstance(n, tfx.dsl.Resolver)}
    nodes = {n.id for n in pipeline.components} - dropped
    edges = {(up.id, n.id) for n in pipeline.components for up in n.upstream_nodes}
    return nodes, {e for e in edges if not set(e) & dropped}


def compiled_graph(spec: pb.PipelineSpec, pipeline) -> tuple[set[str], set[tuple[str, str]]]:
    """The spec's tasks and dependencies, each task named by the pipeline node it came from.

    A node is one task, named by its id, except that TFX compiles LatestBlessedModelStrategy's
    Resolver to several tasks named "<resolver id>-..." (LatestArtifactStrategy's: one, by id).
    """
    resolvers = [n.id for n in pipeline.components if isinstance(n, tfx.dsl.Resolver)]

    def node(task: str) -> str:
        owners = [r for r in resolvers if task.startswith(r + "-")]
        assert len(owners) <= 1, task
        return owners[0] if owners else task

    tasks = spec.root.dag.tasks
    nodes = {node(t) for t in tasks}
    edges = {(node(dep), node(t)) for t, task in tasks.items() for dep in task.dependent_tasks}
    return nodes, {(a, b) for a, b in edges if a != b}


def test_spec_is_read_by_kfp_protos_with_name_root_and_schema_version(compiled):
    spec, path, _ = compiled
    assert spec.pipeline_info.name == "chicago-taxi"  # KFP's alphabet for chicago_taxi
    assert spec.default_pipeline_root == ROOT
    assert spec.schema_version == "2.1.0"
    assert path.read_text().startswith("# KFP v2 pipeline spec of chicago-taxi")


def test_tasks_and_edges_equal_the_local_pipeline_but_the_baseline_resolver(compiled, local_pipeline):
    spec, _, _ = compiled
    expected_nodes, expected_edges = local_graph(local_pipeline, drop_resolvers=True)
    nodes, edges = compiled_graph(spec, local_pipeline)
    assert nodes == expected_nodes
    assert edges == expected_edges
    # Open-source KFP refuses resolver executors: none may be left for the kubeflow target.
    assert {name for name, e in executors(spec).items() if e.WhichOneof("spec") != "container"} == set()


def test_vertex_target_keeps_the_baseline_resolver_and_every_edge(tmp_path, local_pipeline):
    settings = runner.KubeflowSettings(IMAGE, ROOT, target="vertex")
    spec = json_format.ParseDict(runner.compile_spec(PipelineConfig(), settings, DirectBeam("multi_processing", 2)),
                                 pb.PipelineSpec())
    nodes, edges = local_graph(local_pipeline, drop_resolvers=False)
    # Locally the resolvers also read what they leave out: the Trainer's model (the candidate is
    # never its own baseline, pipeline/resolvers.py) and this run's statistics (the data gate never
    # compares data with itself). KFP compiles TFX's stock strategies, which read neither.
    local_only = {("Trainer", "latest_blessed_model_resolver"), ("StatisticsGen", "accepted_statistics_resolver")}
    assert local_only <= edges
    assert compiled_graph(spec, local_pipeline) == (nodes, edges - local_only)
    kinds = {name: e.WhichOneof("spec") for name, e in executors(spec).items()}
    resolvers = {n for n, k in kinds.items() if k == "resolver"}
    assert {n.split("-")[0] for n in resolvers} == {"latest_blessed_model_resolver", "accepted_statistics_resolver"}
    # Beam options come from the configuration: here the CLI's --beam-mode/--beam-workers.
    args = executors(spec)["CsvExampleGen"].container.args
    assert args[-3:] == ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def test_tflite_export_is_a_compiled_step_before_the_pusher(compiled):
    spec, _, _ = compiled
    task = spec.root.dag.tasks["TFLiteExport"]
    assert {"Trainer", "Evaluator"} <= set(task.dependent_tasks) and "Pusher" not in task.dependent_tasks
    assert "TFLiteExport" in spec.root.dag.tasks["Pusher"].dependent_tasks  # publish last
    assert executors(spec)["TFLiteExport"].container.image == IMAGE


def test_every_artifact_type_in_the_spec_resolves_to_a_class_in_the_image(compiled):
    """The step entrypoint rebuilds each artifact's class from its type title; one it cannot import fails the step."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entrypoint
    from tfx.types.artifact import Artifact
    from tfx.utils import import_utils

    spec, _, _ = compiled
    types = {
        yaml.safe_load(a.artifact_type.instance_schema)["title"]: a.artifact_type
        for c in spec.components.values()
        for a in [*c.input_definitions.artifacts.values(), *c.output_definitions.artifacts.values()]
    }
    assert "tfx.Examples" in types
    unresolved = {}
    for title, artifact_type in types.items():
        try:  # the entrypoint's own resolution (_retrieve_class_path, then an import by path)
            assert issubclass(import_utils.import_class_by_path(entrypoint._retrieve_class_path(artifact_type)), Artifact)
        except (ImportError, AssertionError) as error:
            unresolved[title] = str(error)
    assert unresolved == {}


def test_every_step_runs_the_image_with_the_tfx_entrypoint_and_the_configured_beam_args(compiled):
    spec, _, _ = compiled
    beam_args = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]  # the default
    for name, executor in executors(spec).items():
        container = executor.container
        assert container.image == IMAGE, name
        assert list(container.command) == list(KUBEFLOW_TFX_CMD), name
        assert "--executor_class_path" in container.args and "{{$}}" in container.args, name
        assert list(container.args[-len(beam_args):]) == beam_args, name


def test_runtime_parameters_have_defaults_and_feed_example_gen_and_trainer(compiled):
    spec, _, _ = compiled
    parameters = spec.root.input_definitions.parameters
    assert set(parameters) == {DATA_ROOT_PARAM, TRAIN_ARGS_PARAM}
    for p in parameters.values():
        assert p.parameter_type == pb.ParameterType.STRING and p.is_optional
    assert parameters[DATA_ROOT_PARAM].default_value.string_value == f"{ROOT}/data"
    assert json.loads(parameters[TRAIN_ARGS_PARAM].default_value.string_value) == {"num_steps": TRAIN_STEPS}
    tasks = spec.root.dag.tasks
    assert tasks["CsvExampleGen"].inputs.parameters["input_base"].component_input_parameter == DATA_ROOT_PARAM
    assert tasks["Trainer"].inputs.parameters["train_args"].component_input_parameter == TRAIN_ARGS_PARAM


def _strings(value: Any):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_no_path_of_this_machine_in_the_spec(compiled):
    spec, path, output_dir = compiled
    local = [s for s in _strings(yaml.safe_load(path.read_text()))
             if str(REPO) in s or str(output_dir) in s or "/tmp/" in s]
    assert local == []
    parameters = spec.root.dag.tasks
    schema_file = parameters["ImportSchemaGen"].inputs.parameters["schema_file"].runtime_value.constant.string_value
    assert schema_file == str(runner.IMAGE_SCHEMA_FILE) == "/opt/tfx-taxi/pipeline/schema/schema.pbtxt"
    push = json.loads(parameters["Pusher"].inputs.parameters["push_destination"].runtime_value.constant.string_value)
    assert push["filesystem"]["base_directory"] == f"{ROOT}/serving/taxi"
    tflite = parameters["Pusher"].inputs.parameters["tflite_destination"].runtime_value.constant.string_value
    assert tflite == f"{ROOT}/serving/taxi_tflite"


@pytest.mark.parametrize(
    "field, settings, message",
    [
        ("--pipeline-root", dict(pipeline_root="/data/pipeline_root"), "needs a URI"),
        ("--pipeline-root", dict(pipeline_root="s3://bucket/root"), "s3:// is not usable"),
        ("--pipeline-root", dict(pipeline_root="minio://mlpipeline/v2"), "minio:// is not usable"),
        ("--data-dir", dict(pipeline_root=ROOT, data="data/csv"), "needs a URI"),
        ("--image", dict(image="", pipeline_root=ROOT), "needs a container image"),
        ("--target", dict(pipeline_root=ROOT, target="argo"), "must be one of"),
    ],
)
def test_settings_refuse_what_the_cluster_could_not_use(field, settings, message):
    with pytest.raises(ConfigError) as error:
        runner.KubeflowSettings(**{"image": IMAGE, **settings})
    assert error.value.option == field and message in str(error.value)


def test_writable_schemes_are_those_of_the_locked_tensorflow():
    assert runner.writable_schemes() == ["gs"]
    assert "gs" in tf.io.gfile.get_registered_schemes()


def test_compile_command_refuses_a_local_data_dir(tmp_path):
    result = CliRunner().invoke(cli.main, ["kfp", "compile", "--image", IMAGE, "--pipeline-root", ROOT,
                                           "--output-dir", str(tmp_path), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--data-dir" in result.output and "needs a URI" in result.output
    assert not (tmp_path / "kubeflow").exists()


# --- the image ------------------------------------------------------------------------------------

DOCKERFILE = REPO / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def env_script_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", (REPO / "tools" / "env.sh").read_text(), re.M)
    assert match, name
    return match.group(1)


def test_dockerfile_installs_from_the_lock_file_the_local_environment_uses():
    # tools/env.sh: LOCK_FILE=${TFX_ENV_LOCK:-$REPO/requirements/lock.txt}
    local_lock = re.search(r"\$REPO/(\S+?)\}", env_script_value("LOCK_FILE")).group(1)
    assert (REPO / local_lock).is_file()
    instructions = dockerfile_instructions()
    copies = {args.split()[-1]: args.split()[0] for kind, args in instructions if kind == "COPY"}
    runs = " ".join(args for kind, args in instructions if kind == "RUN")
    installed = re.findall(r"pip install [^&]*?-r (\S+)", runs)
    assert installed, "the Dockerfile installs no requirements file"
    assert all(copies.get(path) == local_lock for path in installed), (installed, copies)


def test_dockerfile_matches_the_local_python_keras_and_project_path():
    instructions = dockerfile_instructions()
    base = next(args for kind, args in instructions if kind == "FROM")
    # Debian 13, the release tools/env.sh reads from this line for the local rootfs (test_env_script.py).
    assert base.split(":")[0] == "debian" and base.split(":")[1].split("-")[0] == "trixie"
    env = " ".join(args for kind, args in instructions if kind == "ENV")
    for key, value in models.KERAS_ENV.items():
        assert f"{key}={value}" in env
    # The compiled command is `python -m ...`: the virtualenv's bin comes first on PATH.
    assert re.search(r"PATH=(\S+)/bin:\$PATH", env).group(1) == re.search(r"-m venv (\S+)", " ".join(
        args for kind, args in instructions if kind == "RUN")).group(1)
    assert ("COPY", f". {runner.IMAGE_PROJECT_DIR}") in instructions
    assert ("WORKDIR", str(runner.IMAGE_PROJECT_DIR)) in instructions
    assert f"--no-deps {runner.IMAGE_PROJECT_DIR}" in " ".join(args for kind, args in instructions if kind == "RUN")


# --- one compiled step, run the way KFP's launcher runs it ---------------------------------------


def launcher_executor_input(spec: pb.PipelineSpec, task_name: str, arguments: dict[str, str], root: Path):
    """The ExecutorInput KFP's launcher hands a task: parameters resolved, output artifacts placed.

    Constants come from the task's runtimeValue, runtime parameters from the run's arguments.
    Output artifacts get their type from the component's output definitions and a URI under
    `root` (the launcher puts them under the pipeline root); outputFile is where the executor
    writes its ExecutorOutput.
    """
    task = spec.root.dag.tasks[task_name]
    component = spec.components[task.component_ref.name]
    executor_input = pb.ExecutorInput()
    for name, parameter in task.inputs.parameters.items():
        value = executor_input.inputs.parameter_values[name]
        if parameter.HasField("runtime_value"):
            value.CopyFrom(parameter.runtime_value.constant)
        else:
            value.string_value = arguments[parameter.component_input_parameter]
    assert not task.inputs.artifacts, "this helper feeds parameters only: pick a step without input artifacts"
    for key, output in component.output_definitions.artifacts.items():
        artifact = executor_input.outputs.artifacts[key].artifacts.add()
        artifact.type.CopyFrom(output.artifact_type)
        artifact.uri = str(root / task_name / key)
    executor_input.outputs.output_file = str(root / task_name / "executor_output.json")
    return executor_input


def count_records(pattern: str) -> int:
    files = tf.io.gfile.glob(pattern)
    assert files, pattern
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_compiled_csv_example_gen_step_runs_as_the_kfp_launcher_runs_it(compiled, tmp_path):
    spec, _, _ = compiled
    rows = 300
    data_root = taxi.write_sample(tmp_path / "data", rows=rows)
    executor_input = launcher_executor_input(
        spec, "CsvExampleGen", {DATA_ROOT_PARAM: str(data_root)}, tmp_path / "pipeline_root"
    )
    container = executors(spec)["CsvExampleGen"].container
    # The launcher's only substitution in a TFX container: {{$}} is the whole executor input.
    invocation = json_format.MessageToJson(executor_input)
    args = [arg.replace("{{$}}", invocation) for arg in container.args]
    assert invocation in args and not any("{{$" in arg for arg in args)
    # The spec's own command (`python -m tfx...kubeflow_v2_run_executor`), run in the project
    # environment as the image would run it, from an unrelated working directory.
    result = subprocess.run(list(container.command) + args, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]

    examples = executor_input.outputs.artifacts["examples"].artifacts[0].uri
    train = count_records(f"{examples}/Split-train/*.gz")
    evaluation = count_records(f"{examples}/Split-eval/*.gz")
    assert train + evaluation == rows and train > evaluation > 0  # 2:1 by hash
    output = pb.ExecutorOutput()
    json_format.Parse(Path(executor_input.outputs.output_file).read_text(), output)
    produced = output.artifacts["examples"].artifacts[0]
    assert produced.uri == examples
    assert json.loads(produced.metadata["split_names"]) == ["train", "eval"]
    assert produced.metadata["payload_format"] == "FORMAT_TF_EXAMPLE"


# --- submission, against a stand-in for the KFP API server ---------------------------------------


class StandInKfp(BaseHTTPRequestHandler):
    """Answers the KFP v2beta1 calls kfp.Client makes, like a KFP API server, and records them.

    A stand-in, because no cluster can exist here: it checks an uploaded package the way the
    server does first (it must parse as a PipelineSpec) and refuses it when `reject` is set.
    """

    calls: list[dict[str, Any]]
    pipelines: dict[str, str]
    reject: str | None

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _uploaded_package(self, body: bytes) -> bytes:
        message = email.message_from_bytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "uploadfile"]
        return parts[0].get_payload(decode=True)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        call = {"method": method, "path": url.path, "query": query, "authorization": self.headers["Authorization"]}
        self.calls.append(call)
        route = (method, url.path)
        if route == ("GET", "/apis/v2beta1/healthz"):
            return self._reply(200, {"multi_user": False})
        if route == ("GET", "/apis/v2beta1/experiments"):
            return self._reply(200, {})
        if route == ("POST", "/apis/v2beta1/experiments"):
            return self._reply(200, {"experiment_id": "e-1", **json.loads(body)})
        if route == ("GET", "/apis/v2beta1/pipelines"):
            name = json.loads(query["filter"])["predicates"][0]["stringValue"]
            found = [{"pipeline_id": self.pipelines[name], "display_name": name}] if name in self.pipelines else []
            return self._reply(200, {"pipelines": found} if found else {})
        if route in {("POST", "/apis/v2beta1/pipelines/upload"), ("POST", "/apis/v2beta1/pipelines/upload_version")}:
            package = call["package"] = self._uploaded_package(body)
            try:
                json_format.ParseDict(yaml.safe_load(package), pb.PipelineSpec())
            except Exception as error:  # what the server answers for a package it cannot read
                return self._reply(400, {"code": 3, "message": f"Failed to upload pipeline: {error}"})
            if self.reject:
                return self._reply(400, {"code": 3, "message": self.reject})
            if url.path.endswith("upload"):
                self.pipelines[query["name"]] = "p-1"
                return self._reply(200, {"pipeline_id": "p-1", "display_name": query["name"]})
            return self._reply(200, {"pipeline_id": query["pipelineid"], "pipeline_version_id": "v-2"})
        if route == ("GET", "/apis/v2beta1/pipelines/p-1/versions"):
            return self._reply(200, {"pipeline_versions": [{"pipeline_id": "p-1", "pipeline_version_id": "v-1"}]})
        if route == ("POST", "/apis/v2beta1/runs"):
            call["run"] = json.loads(body)
            return self._reply(200, {"run_id": f"r-{len(self.calls)}", **call["run"]})
        return self._reply(404, {"code": 5, "message": f"stand-in has no route {method} {url.path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


@pytest.fixture
def kfp_server():
    """A stand-in KFP API on a free local port: (its URL, its handler class with calls recorded)."""
    handler = type("Handler", (StandInKfp,), {"calls": [], "pipelines": {}, "reject": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


def submit_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.main, ["kfp", "submit", *args], env=env)


def test_submit_uploads_the_compiled_package_and_runs_it_with_runtime_parameters(compiled, kfp_server):
    _, path, _ = compiled
    url, server = kfp_server
    # Host and token from the environment, as in CI or a shell profile.
    result = submit_cli("--package", str(path), "--train-steps", "3", "--data-dir", "gs://other/data",
                        env={"KFP_HOST": url, "KFP_TOKEN": "secret-token"})
    assert result.exit_code == 0, result.output
    assert "run r-" in result.output
    routes = [(c["method"], c["path"]) for c in server.calls]
    assert ("POST", "/apis/v2beta1/pipelines/upload") in routes and ("POST", "/apis/v2beta1/runs") in routes
    assert {c["authorization"] for c in server.calls} == {"Bearer secret-token"}
    upload = next(c for c in server.calls if "package" in c)
    assert upload["package"] == path.read_bytes() and upload["query"]["name"] == "chicago-taxi"
    run = next(c["run"] for c in server.calls if "run" in c)
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-1", "pipeline_version_id": "v-1"}
    assert run["runtime_config"]["parameters"] == {
        DATA_ROOT_PARAM: "gs://other/data", TRAIN_ARGS_PARAM: train_args_value(3)
    }
    assert run["experiment_id"] == "e-1"

    # A second submission of the same name becomes a new version of the same pipeline.
    again = submit_cli("--package", str(path), "--host", url)
    assert again.exit_code == 0, again.output
    assert ("POST", "/apis/v2beta1/pipelines/upload_version") in [(c["method"], c["path"]) for c in server.calls]
    last_run = [c["run"] for c in server.calls if "run" in c][-1]
    assert last_run["pipeline_version_reference"]["pipeline_version_id"] == "v-2"
    assert not last_run["runtime_config"].get("parameters")  # none given: the compiled defaults apply


def test_submit_reports_a_rejected_package_with_the_server_message(compiled, kfp_server):
    _, path, _ = compiled
    url, server = kfp_server
    server.reject = "resolver executors not implemented"
    result = submit_cli("--package", str(path), "--host", url)
    assert result.exit_code == 1
    assert f"Kubeflow Pipelines at {url} refused the pipeline package {path} (upload): HTTP 400" in result.output
    assert "resolver executors not implemented" in result.output
    assert not any("run" in c for c in server.calls)


def test_submit_reports_an_unreachable_endpoint(compiled):
    _, path, _ = compiled
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = submit_cli("--package", str(path), "--host", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}" in result.output
    assert "KFP_HOST" in result.output


def test_submit_refuses_unknown_parameters_and_missing_packages_before_any_request(compiled, kfp_server, tmp_path):
    _, path, _ = compiled
    url, server = kfp_server
    unknown = submit_cli("--package", str(path), "--host", url, "--param", "epochs=3")
    assert unknown.exit_code == 1 and "no runtime parameter epochs" in unknown.output
    assert "data_root, train_args" in unknown.output
    missing = submit_cli("--package", str(tmp_path / "nope.yaml"), "--host", url)
    assert missing.exit_code == 1 and "cannot read the pipeline package" in missing.output
    assert server.calls == []


def test_vertex_trains_several_workers_as_a_custom_job_of_worker_pools():
    # Only compiled: a Vertex AI CustomJob cannot run here (no Google Cloud), so the spec is checked.
    config = PipelineConfig(hyperparameters=Hyperparameters(distribution_strategy="multi_worker", workers=3))
    with pytest.raises(ConfigError, match="--vertex-project"):
        runner.compile_spec(config, runner.KubeflowSettings(IMAGE, ROOT, target="vertex"))
    settings = runner.KubeflowSettings(IMAGE, ROOT, target="vertex", vertex_project="a-project", vertex_region="europe-west4")
    spec = json_format.ParseDict(runner.compile_spec(config, settings), pb.PipelineSpec())
    trainer = spec.root.dag.tasks["Trainer"]
    custom = json.loads(trainer.inputs.parameters["custom_config"].runtime_value.constant.string_value)
    job = custom["ai_platform_training_args"]
    assert custom["ai_platform_enable_vertex"] is True and custom["ai_platform_vertex_region"] == "europe-west4"
    assert job["project"] == "a-project"
    assert [p["replica_count"] for p in job["worker_pool_specs"]] == [1, 2]  # the chief, then 2 workers
    assert {p["container_spec"]["image_uri"] for p in job["worker_pool_specs"]} == {IMAGE}
    assert custom["hyperparameters"]["workers"] == 3
    assert "google_cloud_ai_platform" in json.dumps(json_format.MessageToDict(executors(spec)["Trainer"]))
    # Open-source KFP: the plain Trainer, whose pod runs the 3 workers as local processes.
    plain = json_format.ParseDict(runner.compile_spec(config, runner.KubeflowSettings(IMAGE, ROOT)), pb.PipelineSpec())
    assert "google_cloud_ai_platform" not in json.dumps(json_format.MessageToDict(executors(plain)["Trainer"]))
