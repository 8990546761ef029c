"""The ServingCheck component: a model server's gate between the Evaluator and the Pusher."""

from pathlib import Path

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_fingerprint
from components.serving_check import executor
from components.serving_check.options import DEFAULT_LOAD_TIMEOUT, DEFAULT_REQUESTS


class ServingCheckSpec(types.ComponentSpec):
    PARAMETERS = {
        "model_name": ExecutionParameter(type=str),  # PredictRequest.model_spec.name
        "load_timeout": ExecutionParameter(type=float),  # seconds for the fresh process, all included
        "requests": ExecutionParameter(type=int),  # one eval example each
        "code_fingerprint": ExecutionParameter(type=str),  # components.code_fingerprint
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
    }
    # TFX's InfraValidator output type, which the Pusher reads as `infra_blessing`.
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.InfraBlessing)}


class ServingCheck(base_component.BaseComponent):
    """Serves the candidate from a fresh process without this project's code, with TF Serving's
    request protos, and blesses it only if every answer is well-formed and equals the model's
    in-process answer. Its blessing holds the warm-up file the Pusher puts in the pushed model.
    A model the Evaluator did not bless is not checked (blessed=0, with the reason)."""

    SPEC_CLASS = ServingCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        model_name: str,
        model_blessing: types.BaseChannel | None = None,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT,
        requests: int = DEFAULT_REQUESTS,
    ):
        super().__init__(
            spec=ServingCheckSpec(
                model=model,
                examples=examples,
                model_blessing=model_blessing,
                model_name=model_name,
                load_timeout=load_timeout,
                requests=requests,
                code_fingerprint=code_fingerprint(Path(__file__).parent),
                blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            )
        )
