"""Uploads a compiled pipeline spec to a Kubeflow Pipelines endpoint and starts a run (kfp.Client).

The pipeline is uploaded under its name (a new version when the name exists), then run in an
experiment. Every failure is a SubmitError that names the endpoint, the step and the cause.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import warnings
from pathlib import Path
from typing import Any, Iterator

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2


class SubmitError(RuntimeError):
    """The package could not be submitted; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A KFP API endpoint and how to authenticate to it (flags or KFP_* environment variables)."""

    host: str
    token: str | None = None  # sent as "Authorization: Bearer <token>"
    cookies: str | None = None  # e.g. a Dex/oauth2-proxy session cookie of a multi-user Kubeflow
    namespace: str | None = None  # the profile namespace of a multi-user Kubeflow


@dataclasses.dataclass(frozen=True)
class Submitted:
    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str
    run_url: str


def load_spec(package: Path) -> pipeline_spec_pb2.PipelineSpec:
    """The package parsed with KFP's protos, as the KFP client and server read it."""
    try:
        text = Path(package).read_text()
    except OSError as error:
        raise SubmitError(f"cannot read the pipeline package {package}: {error.strerror} (run `make kfp` first)")
    try:
        return json_format.ParseDict(yaml.safe_load(text), pipeline_spec_pb2.PipelineSpec())
    except (yaml.YAMLError, json_format.ParseError, TypeError, AttributeError) as error:
        raise SubmitError(f"{package} is not a KFP pipeline spec: {error}")


def check_arguments(spec: pipeline_spec_pb2.PipelineSpec, arguments: dict[str, Any], package: Path) -> None:
    known = spec.root.input_definitions.parameters
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        raise SubmitError(
            f"{package} has no runtime parameter {', '.join(unknown)}; it has: {', '.join(sorted(known)) or 'none'}"
        )


@contextlib.contextmanager
def _step(endpoint: Endpoint, what: str) -> Iterator[None]:
    """Turns the KFP client's errors into one SubmitError naming the endpoint and the step."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as error:
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else str(error.body or "")
        raise SubmitError(
            f"Kubeflow Pipelines at {endpoint.host} refused {what}: HTTP {error.status} {error.reason}"
            + (f": {body.strip()[:2000]}" if body.strip() else "")
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise SubmitError(
            f"cannot reach Kubeflow Pipelines at {endpoint.host} ({what}): {reason}. Check --host / KFP_HOST: "
            "the KFP API address, e.g. http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"
        ) from None


def submit(
    package: Path,
    endpoint: Endpoint,
    *,
    arguments: dict[str, Any] | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    enable_caching: bool | None = None,
) -> Submitted:
    """Uploads `package` (a new version if its pipeline exists) and starts a run of it."""
    import kfp

    arguments = arguments or {}
    spec = load_spec(package)
    check_arguments(spec, arguments, package)
    name = spec.pipeline_info.name
    now = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP >= 2.0.0-beta.2": known
        with _step(endpoint, "the connection check (healthz)"):
            client = kfp.Client(
                host=endpoint.host,
                existing_token=endpoint.token,
                cookies=endpoint.cookies,
                namespace=endpoint.namespace or "kubeflow",
            )
    with _step(endpoint, f"the experiment {experiment or name!r}"):
        experiment_id = client.create_experiment(experiment or name, namespace=endpoint.namespace).experiment_id
    with _step(endpoint, f"the pipeline package {package} (upload)"):
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(str(package), pipeline_name=name, namespace=endpoint.namespace).pipeline_id
            versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc").pipeline_versions or []
            if not versions:
                raise SubmitError(f"Kubeflow Pipelines at {endpoint.host} created pipeline {pipeline_id} without a version")
            version_id = versions[0].pipeline_version_id
        else:
            version = client.upload_pipeline_version(str(package), f"{name}-{now}-{digest}", pipeline_id=pipeline_id)
            version_id = version.pipeline_version_id
    with _step(endpoint, f"the run of pipeline {name} (version {version_id})"):
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name or f"{name}-{now}",
            pipeline_id=pipeline_id,
            version_id=version_id,
            params=arguments,
            enable_caching=enable_caching,
        )
    return Submitted(pipeline_id, version_id, experiment_id, run.run_id, f"{endpoint.host}/#/runs/details/{run.run_id}")
