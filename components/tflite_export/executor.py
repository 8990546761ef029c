"""TFLiteExport's executor: adapts TFX artifacts to the plain functions in export.py."""

from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.tflite_export import export
from upstream import formats


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        out = artifact_utils.get_single_instance(output_dict["tflite_model"])
        mode = exec_properties["quantization"]
        out.set_string_custom_property("quantization", mode)

        # The Pusher's rule: an unblessed model goes nowhere, on a server or on a device.
        if not model_utils.is_model_blessed(blessing):
            out.set_int_custom_property("exported", 0)
            out.set_string_custom_property("skip_reason", "the Evaluator did not bless the model")
            logging.info("TFLiteExport: skipped, the model is not blessed")
            return

        examples = artifact_utils.get_single_uri(input_dict["examples"])
        saved_model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        tflite_model, report = export.export(
            saved_model_dir,
            mode,
            representative_examples=formats.read_examples(
                formats.examples_pattern(examples, "train"), exec_properties["representative_examples"]
            ),
            parity_examples=formats.read_examples(
                formats.examples_pattern(examples, "eval"), exec_properties["parity_examples"]
            ),
            min_agreement=exec_properties["min_agreement"],
        )
        # The twin as the Pusher publishes it; the Pusher runs only if this node succeeded.
        export.write_twin(tflite_model, report, saved_model_dir, out.uri)
        for key, value in report.as_dict().items():
            if isinstance(value, str):
                out.set_string_custom_property(key, value)
            elif isinstance(value, int):
                out.set_int_custom_property(key, value)
            else:
                out.set_float_custom_property(key, value)
        out.set_int_custom_property("exported", 1)
