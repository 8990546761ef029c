"""Pusher's executor: TFX's blessing checks and artifact, with publish.py's all-or-nothing push."""

import os
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.components.util import model_utils
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.pusher import publish
from components.pusher.options import NOT_PUSHED_REASON, TFLITE_DESTINATION
from components.serving_check import options as serving_options


class Executor(tfx_pusher.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if reason := not_blessed_reason(input_dict):
            self._MarkNotPushed(pushed)
            pushed.set_string_custom_property(NOT_PUSHED_REASON, reason)
            logging.info("Pusher: nothing pushed: %s", reason)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("this Pusher publishes to a filesystem destination only")
        if destination.filesystem.versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP):
            raise NotImplementedError(f"versioning {destination.filesystem.versioning} is not supported")
        model_path = self.GetModelPath(input_dict)
        base = destination.filesystem.base_directory
        writers = []
        tflite_base = exec_properties.get("tflite_destination")
        if tflite_base:
            tflite = artifact_utils.get_single_instance(input_dict["tflite_model"])
            if tflite.get_int_custom_property("exported") != 1:
                raise RuntimeError(f"the TFLite twin was not exported ({tflite.get_string_custom_property('skip_reason')}); "
                                   "a blessed model is published with its twin or not at all")
            writers.append((tflite_base, publish.copy_tree(tflite.uri)))
        writers.append((base, publish.with_warmup(publish.copy_tree(model_path), warmup_file(input_dict))))  # last: what TF Serving watches
        for where in {base, tflite_base} - {None}:
            for name in publish.leftovers(where):
                logging.warning("Pusher: %s/%s is what an interrupted push left; ignored", where, name)
        io_utils.copy_dir(model_path, pushed.uri)  # TFX's archive of what is pushed: before, as it can fail
        version = publish.next_version([b for b, _ in writers])
        published = publish.publish(version, writers)  # the last step that can fail
        logging.info("Pusher: published version %s: %s", version, ", ".join(published))
        self._MarkPushed(pushed, pushed_destination=published[-1], pushed_version=version)
        if tflite_base:
            pushed.set_string_custom_property(TFLITE_DESTINATION, published[0])


def warmup_file(input_dict: dict[str, list[types.Artifact]]) -> str | None:
    """The warm-up requests ServingCheck wrote into its blessing, if any."""
    if not input_dict.get(standard_component_specs.INFRA_BLESSING_KEY):
        return None
    path = os.path.join(artifact_utils.get_single_uri(input_dict[standard_component_specs.INFRA_BLESSING_KEY]),
                        serving_options.WARMUP_FILE)
    return path if tf.io.gfile.exists(path) else None


def not_blessed_reason(input_dict: dict[str, list[types.Artifact]]) -> str | None:
    """Why the model must not be pushed (TFX's blessing rules), or None when it may be."""
    checks = ((standard_component_specs.MODEL_BLESSING_KEY, model_utils.is_model_blessed, "the Evaluator"),
              (standard_component_specs.INFRA_BLESSING_KEY, model_utils.is_infra_validated, "serving validation"))
    for key, blessed, who in checks:
        if input_dict.get(key) and not blessed(artifact_utils.get_single_instance(input_dict[key])):
            reason = artifact_utils.get_single_instance(input_dict[key]).get_string_custom_property("reason")
            return f"{who} did not bless the model" + (f": {reason}" if reason and key != standard_component_specs.MODEL_BLESSING_KEY else "")
    return None
