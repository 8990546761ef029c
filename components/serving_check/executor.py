"""ServingCheck's executor: adapts TFX artifacts to the plain functions in check.py."""

import os
import tempfile
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.serving_check import check
from components.serving_check.options import NOT_CHECKED, REASON, WARMUP_FILE
from upstream import formats

# TFX InfraValidator's marker files, so TFX's own readers of an InfraBlessing understand this one.
BLESSED_FILE, NOT_BLESSED_FILE = "INFRA_BLESSED", "INFRA_NOT_BLESSED"


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        evaluator = input_dict.get("model_blessing")
        if evaluator and not model_utils.is_model_blessed(artifact_utils.get_single_instance(evaluator)):
            return _verdict(blessing, False, f"{NOT_CHECKED}: the Evaluator did not bless the model")
        model = artifact_utils.get_single_instance(input_dict["model"])
        model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        examples = formats.read_examples(
            formats.examples_pattern(artifact_utils.get_single_uri(input_dict["examples"]), "eval"),
            exec_properties["requests"])
        requests = check.predict_requests(examples, exec_properties["model_name"])
        tf.io.gfile.makedirs(blessing.uri)
        warmup = os.path.join(blessing.uri, WARMUP_FILE)
        check.write_warmup(requests, warmup)
        try:
            with tempfile.TemporaryDirectory() as workdir:
                local_warmup = os.path.join(workdir, WARMUP_FILE)  # the fresh process reads local files
                tf.io.gfile.copy(warmup, local_warmup)
                server = check.Server(model_dir, local_warmup, workdir, exec_properties["load_timeout"])
                try:
                    expected = check.in_process_answers(model_dir, examples)  # while the server starts
                    responses, measured = server.result()
                finally:
                    server.stop()
            check.judge(requests, responses, expected)
        except check.ServingFailure as failure:
            tf.io.gfile.remove(warmup)  # a model that cannot be served gets no warm-up file
            return _verdict(blessing, False, str(failure))
        for key, value in check.figures(measured, len(requests)).items():
            if isinstance(value, int):
                blessing.set_int_custom_property(key, value)
            else:
                blessing.set_float_custom_property(key, value)
        _verdict(blessing, True, f"{len(requests)} TF Serving requests answered as the model does in process")


def _verdict(blessing: types.Artifact, blessed: bool, reason: str) -> None:
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "w") as f:
        f.write(reason + "\n")
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property(REASON, reason)
    logging.info("ServingCheck: %s: %s", "blessed" if blessed else "not blessed", reason)
