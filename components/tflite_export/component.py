"""The TFLiteExport component: its artifact type, its spec, and the component class."""

from pathlib import Path

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_fingerprint
from components.tflite_export import executor
from components.tflite_export.options import DEFAULT_MIN_AGREEMENT, DEFAULT_QUANTIZATION


class TFLiteModel(types.Artifact):
    """A TFLite flatbuffer converted from a trained Model.

    Its directory holds what the Pusher publishes beside the SavedModel (export.write_twin).
    Custom properties: options.MEASURES, and exported (0 when skipped, with skip_reason).
    """

    # KFP v2 names a custom type <namespace>.<Type> (one dot) and its steps import the class by
    # that name: components.TFLiteModel resolves (components/__init__.py).
    TYPE_NAME = "components.TFLiteModel"


class TFLiteExportSpec(types.ComponentSpec):
    PARAMETERS = {
        "quantization": ExecutionParameter(type=str),  # one of export.QUANTIZATION_MODES
        "min_agreement": ExecutionParameter(type=float),  # the parity gate, 0..1
        "parity_examples": ExecutionParameter(type=int),  # eval examples compared
        "representative_examples": ExecutionParameter(type=int),  # train examples for int8 ranges
        # This component's own code (components.code_fingerprint): recorded in MLMD, and a change
        # in the code invalidates the cache.
        "code_fingerprint": ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {"tflite_model": ChannelParameter(type=TFLiteModel)}


class TFLiteExport(base_component.BaseComponent):
    """Converts the blessed model to TFLite and checks it against the SavedModel, before the push.

    An unblessed model is not converted (the artifact records why). A model whose TFLite form
    disagrees with the SavedModel on more than 1 - min_agreement of the eval split fails the
    component, so the Pusher after it never runs: neither form is published.
    """

    SPEC_CLASS = TFLiteExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        examples: types.BaseChannel,
        quantization: str = DEFAULT_QUANTIZATION,
        min_agreement: float = DEFAULT_MIN_AGREEMENT,
        parity_examples: int = 5000,
        representative_examples: int = 200,
    ):
        super().__init__(
            spec=TFLiteExportSpec(
                model=model,
                model_blessing=model_blessing,
                examples=examples,
                quantization=quantization,
                min_agreement=min_agreement,
                parity_examples=parity_examples,
                representative_examples=representative_examples,
                code_fingerprint=code_fingerprint(Path(__file__).parent),
                tflite_model=types.Channel(type=TFLiteModel),
            )
        )
