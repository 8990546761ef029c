"""Warm start: initialise a new model from an earlier one's weights, only when they mean the same.

A weight belongs to a feature value through its vocabulary id: the same embedding row read with
another vocabulary is a different term's weight, and a different feature set or layer shape
is a different model. Every export therefore writes a warm-start contract (assets.extra/, so
pushes carry it): the transformed feature spec, each vocabulary's size and digest, and the
hyperparameters that shape the weights. A base model is used only when its contract equals this
training's; otherwise, or without a contract (exported by older code), training starts cold and
the one-line reason is logged and recorded (`decide`, `write_decision`).

Vocabularies may differ: Transform orders terms by frequency, so new data reorders them and adds
or drops terms, and the same id is then another term. The contract lists each vocabulary's terms,
so an embedding row is carried over by its term (the row the base model learned for "Cash" becomes
this model's row for "Cash"); terms new to this vocabulary start from a fresh row, and the
out-of-vocabulary row carries over as such. The feature set and the layer sizes must match exactly.
"""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
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
                             "sha256": hashlib.sha256(content).hexdigest(),
                             "values": content.decode("utf-8", "backslashreplace").splitlines()}
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
        if other is None:
            return f"vocabulary of {key} differs (absent in the base model)"
        if other["sha256"] != vocab["sha256"] and "values" not in other:  # an early contract: no terms listed
            return (f"vocabulary of {key} differs ({vocab['terms']} terms here, {other['terms']} in the base "
                    "model) and the base model's contract does not list its terms")
    if base.get("architecture") != current["architecture"]:
        return f"architecture differs (base {base.get('architecture')}, here {current['architecture']})"
    return None


def row_map(base: dict[str, Any], current: dict[str, Any]) -> dict[str, list[int]]:
    """Per vocabulary that changed: for each of this training's ids, the base model's id of the
    same term (-1: a term the base model did not have); the out-of-vocabulary ids follow the terms."""
    rows = {}
    for key, vocab in current["vocabularies"].items():
        other = base["vocabularies"][key]
        if other["sha256"] == vocab["sha256"]:
            continue
        where = {term: i for i, term in enumerate(other["values"])}
        rows[key] = ([where.get(term, -1) for term in vocab["values"]]
                     + [len(other["values"]) + i for i in range(features.OOV_BUCKETS)])
    return rows


def _carried(rows: dict[str, list[int]]) -> str:
    """How the rows were carried over, for the decision's line: `company 28/31 terms, payment_type reordered`."""
    said = []
    for key, ids in sorted(rows.items()):
        terms = ids[:len(ids) - features.OOV_BUCKETS]
        kept = sum(i >= 0 for i in terms)
        said.append(f"{key} reordered" if kept == len(terms) else f"{key} {kept}/{len(terms)} terms")
    return ", ".join(said)


def _read_contract(base_model_dir: str) -> dict[str, Any]:
    with tf.io.gfile.GFile(os.path.join(base_model_dir, "assets.extra", CONTRACT_FILE)) as f:
        return json.loads(f.read())


def decide(base_model_dir: str | None, tft_output: tft.TFTransformOutput, hp: Hyperparameters) -> tuple[str | None, str]:
    """(the base model's SavedModel to start from, or None for a cold start; the one-line reason)."""
    if not base_model_dir:
        return None, f"{COLD} no blessed model yet"
    if not tf.io.gfile.exists(os.path.join(base_model_dir, "assets.extra", CONTRACT_FILE)):
        return None, f"{COLD} base model {base_model_dir} has no warm-start contract (exported before warm start existed)"
    base, current = _read_contract(base_model_dir), contract(tft_output, hp)
    reason = mismatch(base, current)
    if reason:
        return None, f"{COLD} {reason}; base model {base_model_dir}"
    rows = row_map(base, current)
    return base_model_dir, f"{WARM} {base_model_dir}" + (f" (rows carried over by term: {_carried(rows)})" if rows else "")


def load_weights(keras_model: Any, base_model_dir: str, tft_output: tft.TFTransformOutput, hp: Hyperparameters,
                 build: Callable[[dict[str, int], Hyperparameters], Any]) -> None:
    """Sets the model's weights from the base SavedModel, which `decide` found compatible.

    The SavedModel's variables are a checkpoint of the exported Keras model (its root object): they
    restore by object path into a model built alike (`build`, models.model.build_model) with the
    base model's vocabulary sizes; the transform layers and signatures it also holds are not part
    of that model (expect_partial), and every layer weight must be restored. Its weights then become
    this model's layer by layer, embedding rows by term where a vocabulary changed. The optimizer
    starts afresh.
    """
    base, current = _read_contract(base_model_dir), contract(tft_output, hp)
    rows = {features.transformed_name(key): ids for key, ids in row_map(base, current).items()}
    # In build_model's order (models.model.vocabulary_sizes'), so that layers pair up by position.
    sizes = {features.transformed_name(key): base["vocabularies"][key]["terms"] + features.OOV_BUCKETS
             for key in features.CATEGORICAL_FEATURE_KEYS}
    sizes.update({features.transformed_name(k): features.BUCKET_COUNT for k in features.BUCKET_FEATURE_KEYS})
    restored = build(sizes, hp)
    status = restored.load_weights(os.path.join(base_model_dir, "variables", "variables"))
    status.expect_partial()
    status.assert_existing_objects_matched()
    for into, source in zip(keras_model.layers, restored.layers, strict=True):
        weights = source.get_weights()
        feature = _embedded_feature(into)
        if feature in rows:
            (table,), (fresh,) = weights, into.get_weights()
            ids = np.asarray(rows[feature])
            weights = [np.where((ids >= 0)[:, None], table[np.maximum(ids, 0)], fresh)]
        into.set_weights(weights)


def _embedded_feature(layer: Any) -> str | None:
    """The input feature an Embedding layer looks up (build_model embeds the inputs themselves)."""
    if layer.__class__.__name__ != "Embedding":
        return None
    return layer.input.name.split(":")[0]


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
