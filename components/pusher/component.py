"""The Pusher component: TFX's Pusher spec, plus the TFLite twin it publishes beside the model."""

from pathlib import Path

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_fingerprint
from components.pusher import executor
from components.tflite_export.component import TFLiteModel


class PusherSpec(types.ComponentSpec):
    PARAMETERS = {
        standard_component_specs.PUSH_DESTINATION_KEY: ExecutionParameter(type=pusher_pb2.PushDestination),
        # <dir>/<version>/model.tflite, the same version as the SavedModel's.
        "tflite_destination": ExecutionParameter(type=str, optional=True),
        "code_fingerprint": ExecutionParameter(type=str),  # components.code_fingerprint
    }
    INPUTS = {
        standard_component_specs.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        standard_component_specs.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        standard_component_specs.INFRA_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.InfraBlessing, optional=True),
        # Made and checked before this node runs: if its parity gate fails, nothing is pushed.
        "tflite_model": ChannelParameter(type=TFLiteModel, optional=True),
    }
    OUTPUTS = {standard_component_specs.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel)}


class Pusher(base_component.BaseComponent):
    """Publishes a blessed model and its TFLite twin as one version, last in the run.

    The PushedModel artifact is TFX's (pushed, pushed_destination, pushed_version), plus
    tflite_destination, and not_pushed_reason when nothing was pushed.
    """

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        push_destination: pusher_pb2.PushDestination,
        tflite_model: types.BaseChannel | None = None,
        tflite_destination: str | None = None,
        infra_blessing: types.BaseChannel | None = None,
    ):
        if (tflite_model is None) != (tflite_destination is None):
            raise ValueError("tflite_model and tflite_destination go together")
        super().__init__(
            spec=PusherSpec(
                model=model,
                model_blessing=model_blessing,
                infra_blessing=infra_blessing,
                tflite_model=tflite_model,
                push_destination=push_destination,
                tflite_destination=tflite_destination,
                code_fingerprint=code_fingerprint(Path(__file__).parent),
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
