"""Warm start: initialise a new model from an earlier one's weights, only when they mean the same.

A weight belongs to a feature value through its vocabulary id: the same embedding row read with
another vocabulary is a different term's weight, and a different feature set or layer shape
is a different model. Every export therefore writes a warm-start contract (assets.extra/, so
pushes carry it): the transformed feature spec, each vocabulary's size and digest, and the
hyperparameters that shape the weights. A base model is used only when its contract equals this
training's; otherwise, or without a contract (exported by older code), training starts cold and
the one-line reason is logged and recorded (`decide`, `write_decision`).

Vocabularies are compared exactly, order included: Transform orders terms by frequency, so data
whose counts reorder two terms gives other ids, and reusing rows would silently swap them.
"""

import hashlib
import json
import logging
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models.hyperparameters import Hyperparameters

CONTRACT_FILE = "warm_start.json"
# Beside Format-Serving in the Model artifact: the Trainer's executor records it in MLMD.
DECISION_FILE = "warm_start.txt"
# The decision's line starts with one of these (recorded as the Model's `warm_start` property).
WARM, COLD = "warm_start: from", "cold:"


def contract(tft_output: tft.TFTransformOutput, hp: Hyperparameters) -> dict[str, Any]:
    """What must match between a base model and a new one for weights to carry over."""
    vocabularies = {}
    for key in features.CATEGORICAL_FEATURE_KEYS:
        with tf.io.gfile.GFile(tft_output.vocabulary_file_by_name(key), "rb") as f:
            content = f.read()
        vocabularies[key] = {"terms": tft_output.vocabulary_size_by_name(key),
                             "sha256": hashlib.sha256(content).hexdigest()}
    return {
        "features": {k: repr(v) for k, v in sorted(tft_output.transformed_feature_spec().items())},
        "vocabularies": vocabularies,
        "architecture": {"hidden_units": list(hp.hidden_units), "embedding_dim": hp.embedding_dim},
    }


def write_contract(export_dir: str, tft_output: tft.TFTransformOutput, hp: Hyperparameters) -> str:
    path = os.path.join(export_dir, "assets.extra", CONTRACT_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(contract(tft_output, hp), indent=1, sort_keys=True) + "\n")
    return path


def mismatch(base: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why the base model's contract does not fit this training's, or None when it does."""
    if base.get("features") != current["features"]:
        ours, theirs = set(current["features"]), set(base.get("features", {}))
        differ = sorted(ours ^ theirs) or sorted(k for k in ours if base["features"][k] != current["features"][k])
        return f"feature set differs from the base model's ({', '.join(differ)})"
    for key, vocab in current["vocabularies"].items():
        other = base.get("vocabularies", {}).get(key)
        if other != vocab:
            size = f"{vocab['terms']} terms here, {other['terms']} in the base model" if other else "absent in the base model"
            if other and other["terms"] == vocab["terms"]:
                size += ", other terms or order"
            return f"vocabulary of {key} differs ({size})"
    if base.get("architecture") != current["architecture"]:
        return f"architecture differs (base {base.get('architecture')}, here {current['architecture']})"
    return None


def decide(base_model_dir: str | None, tft_output: tft.TFTransformOutput, hp: Hyperparameters) -> tuple[str | None, str]:
    """(the base model's SavedModel to start from, or None for a cold start; the one-line reason)."""
    if not base_model_dir:
        return None, f"{COLD} no blessed model yet"
    path = os.path.join(base_model_dir, "assets.extra", CONTRACT_FILE)
    if not tf.io.gfile.exists(path):
        return None, f"{COLD} base model {base_model_dir} has no warm-start contract (exported before warm start existed)"
    with tf.io.gfile.GFile(path) as f:
        base = json.loads(f.read())
    reason = mismatch(base, contract(tft_output, hp))
    if reason:
        return None, f"{COLD} {reason}; base model {base_model_dir}"
    return base_model_dir, f"{WARM} {base_model_dir}"


def load_weights(keras_model: Any, base_model_dir: str) -> None:
    """Sets the model's weights (and optimizer state, once it is created) from the base SavedModel.

    The SavedModel's variables are a checkpoint of the exported Keras model (its root object), so
    they restore by object path into a model built alike; the transform layers and signatures it
    also holds are not part of the new model (expect_partial). Every layer weight must be restored.
    """
    status = keras_model.load_weights(os.path.join(base_model_dir, "variables", "variables"))
    status.expect_partial()
    status.assert_existing_objects_matched()


def write_decision(model_dir: str, line: str) -> None:
    """Logs the decision and leaves it in the Model artifact's directory for the Trainer's executor."""
    log = logging.warning if line.startswith(COLD) else logging.info
    log("Warm start: %s", line)
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, DECISION_FILE), "w") as f:
        f.write(line + "\n")


def read_decision(model_dir: str) -> str | None:
    path = os.path.join(model_dir, DECISION_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return f.read().strip() or None
