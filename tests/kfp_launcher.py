"""A test-side stand-in for KFP's driver and launcher: runs every task of a compiled spec in the image.

No Kubernetes cluster can exist where the tests run, so this does, for each task of a compiled
PipelineSpec and in the order its dependencies give, what KFP's driver and launcher do for a
TFX container step: resolve its input parameters (constants from the spec, runtime parameters
from the run's arguments over the spec's defaults) and its input artifacts (the upstream task's
output artifacts, with the metadata its executor wrote), place its output artifacts under the
pipeline root, substitute `{{$}}` in the spec's own args with the ExecutorInput JSON, run the
spec's own command in a new container of the image (`tools/image.sh run`, buildah), and read the
ExecutorOutput the executor wrote back.

The pipeline root is a local directory bound into every container at /gcs/<bucket>/<path> (the
path KFP's launcher mounts GCS at): every `gs://<bucket>/<path>` in the spec's values and in the
URIs the driver places becomes that path before the step sees it, since no GCS can be reached.

What it does not emulate of KFP:
- no MLMD (KFP's own store records nothing here: artifacts pass from task to task in memory);
  no caching (every task runs, each time);
- no `lifecycle.preCacheCheck` (CsvExampleGen's driver: span, version, fingerprint), which the
  open-source backend does not run either;
- no triggers, conditions, loops or retries (a TFX spec compiles none; a failed step fails the run);
- no Kubernetes pod: no resource limits, no service account or credentials, the host's network,
  root user, the image's environment and WORKDIR as buildah applies them;
- no upload of local outputs: TFX executors write the artifact URIs themselves (tf.io.gfile),
  here through the bind mount instead of GCS;
- artifact `name`s are "artifacts/<task number>-<key>", not MLMD resource names.
"""

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from tests.conftest import REPO

IMAGE_SCRIPT = REPO / "tools" / "image.sh"
MOUNT = PurePosixPath("/gcs")  # where KFP's launcher mounts gs:// buckets in a pod


def executors(spec: pb.PipelineSpec) -> dict[str, pb.PipelineDeploymentConfig.ExecutorSpec]:
    """Each task's executor (the deployment spec is a Struct in PipelineSpec: parse it with its proto)."""
    deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec), pb.PipelineDeploymentConfig())
    return {
        name: deployment.executors[spec.components[task.component_ref.name].executor_label]
        for name, task in spec.root.dag.tasks.items()
    }


def task_order(spec: pb.PipelineSpec) -> list[str]:
    """The tasks in an order where each comes after every task it depends on (Kahn, names sorted)."""
    tasks = spec.root.dag.tasks
    needs = {}
    for name, task in tasks.items():
        producers = {a.task_output_artifact.producer_task for a in task.inputs.artifacts.values()
                     if a.HasField("task_output_artifact")}
        needs[name] = set(task.dependent_tasks) | producers
    order: list[str] = []
    while needs:
        ready = sorted(n for n, deps in needs.items() if deps <= set(order))
        assert ready, f"a dependency cycle among {sorted(needs)}"
        order.append(ready[0])
        del needs[ready[0]]
    return order


@dataclass
class Run:
    """One run of a compiled spec in an image: its tasks' executor inputs and outputs, in run order."""

    spec: pb.PipelineSpec
    image: str
    root_dir: Path  # the local directory standing in for the gs:// pipeline root
    arguments: dict[str, str]
    inputs: dict[str, pb.ExecutorInput] = field(default_factory=dict)
    outputs: dict[str, dict[str, list[pb.RuntimeArtifact]]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def gcs_root(self) -> str:
        return self.spec.default_pipeline_root.rstrip("/")

    @property
    def mounted_root(self) -> PurePosixPath:
        return MOUNT / self.gcs_root.removeprefix("gs://")

    def local(self, value: str) -> str:
        """`value` with the gs:// pipeline root replaced by its path in the containers."""
        return value.replace(self.gcs_root, str(self.mounted_root))

    def host_path(self, uri: str) -> Path:
        """Where a container path (or gs:// URI) under the pipeline root is on this machine."""
        rel = PurePosixPath(self.local(uri)).relative_to(self.mounted_root)
        return self.root_dir / rel

    def _parameters(self) -> dict[str, str]:
        values = {name: p.default_value.string_value for name, p in self.spec.root.input_definitions.parameters.items()}
        unknown = set(self.arguments) - set(values)
        assert not unknown, f"the spec has no runtime parameters {sorted(unknown)}"
        return {**values, **self.arguments}

    def executor_input(self, task_name: str, run_id: str) -> pb.ExecutorInput:
        task = self.spec.root.dag.tasks[task_name]
        component = self.spec.components[task.component_ref.name]
        parameters = self._parameters()
        executor_input = pb.ExecutorInput()
        for name, parameter in task.inputs.parameters.items():
            value = executor_input.inputs.parameter_values[name]
            if parameter.HasField("runtime_value"):
                value.CopyFrom(parameter.runtime_value.constant)
            else:
                assert parameter.component_input_parameter, f"{task_name}.{name}: only constants and runtime parameters"
                value.string_value = parameters[parameter.component_input_parameter]
            if value.HasField("string_value"):
                value.string_value = self.local(value.string_value)
        for name, spec_input in task.inputs.artifacts.items():
            source = spec_input.task_output_artifact
            produced = self.outputs[source.producer_task][source.output_artifact_key]
            executor_input.inputs.artifacts[name].artifacts.extend(produced)
        for key, output in component.output_definitions.artifacts.items():
            artifact = executor_input.outputs.artifacts[key].artifacts.add()
            artifact.type.CopyFrom(output.artifact_type)
            # KFP's layout: <pipeline root>/<pipeline>/<run id>/<task>/<output key>
            artifact.uri = f"{self.mounted_root}/{self.spec.pipeline_info.name}/{run_id}/{task_name}/{key}"
            artifact.name = f"artifacts/{len(self.inputs)}-{key}"
        executor_input.outputs.output_file = f"{self.mounted_root}/{self.spec.pipeline_info.name}/{run_id}/{task_name}/executor_output.json"
        return executor_input

    def run_task(self, task_name: str, run_id: str, timeout: int) -> None:
        executor_input = self.executor_input(task_name, run_id)
        self.inputs[task_name] = executor_input
        container = executors(self.spec)[task_name].container
        invocation = json_format.MessageToJson(executor_input)
        # The launcher's only substitution in a TFX container: {{$}} is the whole executor input.
        args = [self.local(arg.replace("{{$}}", invocation)) for arg in container.args]
        assert not any("{{$" in arg for arg in args), f"{task_name}: a placeholder this driver does not fill"
        self.host_path(executor_input.outputs.output_file).parent.mkdir(parents=True, exist_ok=True)
        argv = ["bash", str(IMAGE_SCRIPT), "run", self.image,
                "--volume", f"{self.root_dir}:{self.mounted_root}", "--", *container.command, *args]
        start = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        self.seconds[task_name] = time.monotonic() - start
        self.logs[task_name] = result.stdout + result.stderr
        (self.root_dir / "logs").mkdir(exist_ok=True)  # beside the outputs, for a failed run's reader
        (self.root_dir / "logs" / f"{task_name}.log").write_text(self.logs[task_name])
        if result.returncode != 0:
            raise AssertionError(f"{task_name} failed in the image (exit {result.returncode}):\n{self.logs[task_name][-6000:]}")
        # The launcher publishes the output artifacts it placed, updated by what the executor wrote.
        outputs = {key: list(a.artifacts) for key, a in executor_input.outputs.artifacts.items()}
        output_file = self.host_path(executor_input.outputs.output_file)
        if output_file.exists():
            written = json_format.Parse(output_file.read_text(), pb.ExecutorOutput(), ignore_unknown_fields=True)
            for key, artifacts in written.artifacts.items():
                for placed, produced in zip(outputs[key], artifacts.artifacts):
                    placed.metadata.update(json_format.MessageToDict(produced.metadata))
        self.outputs[task_name] = outputs

    def run_all(self, run_id: str = "run-1", timeout: int = 900) -> list[str]:
        order = task_order(self.spec)
        for task_name in order:
            self.run_task(task_name, run_id, timeout)
        return order


def image_command(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """tools/image.sh with `args`, its output captured."""
    return subprocess.run(["bash", str(IMAGE_SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
