"""The on-device form of the model: raw feature values in, builtin TFLite ops only.

`preprocessing_fn` stays the one definition of the preprocessing. What its analyzers computed
(means, standard deviations, quantile boundaries, vocabularies) is read back from the transform
graph that Transform wrote, by evaluating that graph on probe values, and applied here with ops
every LiteRT build has. The transform graph itself cannot go on a device: parsing tf.Examples,
hash tables initialized from asset files and BoostedTreesBucketize all need Select TF ops, which
current LiteRT cannot run. `check_against_transform` proves the two agree, and the TFLite export
component checks the converted model against the SavedModel on the eval split.

The device contract (written as DEVICE_CONTRACT_FILE into the SavedModel's assets.extra/):
  - one rank-1 input per raw feature the model reads, named as the CSV column;
  - numeric and coordinate features: float32, NaN when missing (infinities are taken as missing);
  - string categoricals: string, "" when missing; integer categoricals: int64, -1 when missing;
  - one output, "probabilities": float32 [batch, 1], P(tip > 20% of the fare).
"""

import dataclasses
import json
import math
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models.preprocessing import as_float, densify

DEVICE_SIGNATURE = "device"  # the signature the TFLite converter reads
DEVICE_INPUTS_SIGNATURE = "device_inputs"  # serialized tf.Examples -> the device signature's inputs
DEVICE_CONTRACT_FILE = "device_contract.json"

FLOAT_KEYS = features.NUMERIC_FEATURE_KEYS + features.BUCKET_FEATURE_KEYS
MISSING_FLOAT = float("nan")
MISSING_DEVICE_STRING = ""

# Terms outside a vocabulary share one id only when there is one OOV bucket; with more, TFT
# hashes them, which the device graph does not reproduce.
assert features.OOV_BUCKETS == 1, "models.device supports exactly one OOV bucket"


@dataclasses.dataclass(frozen=True)
class DevicePreprocessing:
    """Transform's analyzer results, as constants for the device graph."""

    # key -> (mean, standard deviation, value when missing): z = (x - mean) / std
    z_scores: Mapping[str, tuple[float, float, float]]
    # key -> (thresholds, id when missing): bucket = number of thresholds <= x
    thresholds: Mapping[str, tuple[tuple[float, ...], int]]
    # key -> (terms in id order, id when missing); an unknown term gets len(terms)
    vocabularies: Mapping[str, tuple[tuple[Any, ...], int]]


def input_dtypes(tf_transform_output: tft.TFTransformOutput) -> dict[str, tf.DType]:
    """The device signature's inputs, in a stable order: raw key -> dtype."""
    raw_spec = tf_transform_output.raw_feature_spec()
    dtypes = {key: tf.float32 for key in FLOAT_KEYS}
    dtypes.update({key: raw_spec[key].dtype for key in features.CATEGORICAL_FEATURE_KEYS})
    return dtypes


def missing_value(dtype: tf.DType) -> Any:
    """What the device sends for a missing value of this dtype."""
    if dtype == tf.string:
        return MISSING_DEVICE_STRING
    return features.MISSING_INT if dtype.is_integer else MISSING_FLOAT


# --- reading the analyzer results back from the transform graph --------------------------------


def _transform(tft_output: tft.TFTransformOutput, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """Runs the transform graph on probe rows; None in a column is a missing value."""
    raw_spec = tft_output.raw_feature_spec()
    rows = len(next(iter(columns.values())))
    serialized = []
    for i in range(rows):
        example = tf.train.Example()
        for key, values in columns.items():
            value = values[i]
            if value is None:
                continue
            feature = example.features.feature[key]
            if raw_spec[key].dtype == tf.string:
                feature.bytes_list.value.append(value if isinstance(value, bytes) else str(value).encode())
            elif raw_spec[key].dtype.is_integer:
                feature.int64_list.value.append(int(value))
            else:
                feature.float_list.value.append(float(value))
        serialized.append(example.SerializeToString())
    parsed = tf.io.parse_example(tf.constant(serialized), raw_spec)
    return {k: v.numpy() for k, v in tft_output.transform_raw_features(parsed).items()}


def _float_key(x: float) -> int:
    """An integer that orders like the float32 x (for bisection over every float32)."""
    bits = struct.unpack("<i", struct.pack("<f", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def _key_float(k: int) -> float:
    bits = k if k >= 0 else (-k) | -0x80000000
    return struct.unpack("<f", struct.pack("<i", bits))[0]


def _bucket_thresholds(tft_output: tft.TFTransformOutput) -> dict[str, tuple[tuple[float, ...], int]]:
    """For each bucketized feature, the smallest float32 of each bucket (exact, by bisection).

    A bucket id is a non-decreasing step function of the value, so 32 rounds of bisection over
    the float32 line find each step exactly, for all features and steps at once.
    """
    keys = features.BUCKET_FEATURE_KEYS
    big = float(np.finfo(np.float32).max)
    edges = _transform(tft_output, {k: [-big, big, None] for k in keys})
    lowest = {k: int(edges[features.transformed_name(k)][0]) for k in keys}
    steps = {k: int(edges[features.transformed_name(k)][1]) - lowest[k] for k in keys}
    width = max(steps.values(), default=0)
    # lo[k][j] < the (j+1)-th step <= hi[k][j], as float keys
    lo = {k: [_float_key(-big)] * steps[k] for k in keys}
    hi = {k: [_float_key(big)] * steps[k] for k in keys}
    while width and any(h - l > 1 for k in keys for l, h in zip(lo[k], hi[k])):
        mid = {k: [(l + h) // 2 for l, h in zip(lo[k], hi[k])] for k in keys}
        probe = {k: [_key_float(m) for m in mid[k]] + [None] * (width - steps[k]) for k in keys}
        out = _transform(tft_output, probe)
        for k in keys:
            ids = out[features.transformed_name(k)]
            for j, m in enumerate(mid[k]):
                if ids[j] - lowest[k] >= j + 1:
                    hi[k][j] = m
                else:
                    lo[k][j] = m
    if lowest and any(lowest.values()):
        raise ValueError(f"bucket ids do not start at 0: {lowest}")
    return {
        k: (tuple(_key_float(h) for h in hi[k]), int(edges[features.transformed_name(k)][2]))
        for k in keys
    }


def extract(tft_output: tft.TFTransformOutput) -> DevicePreprocessing:
    """Reads what Transform's analyzers computed out of its transform graph."""
    numeric = features.NUMERIC_FEATURE_KEYS
    # z(0) = -mean/std and z(far) = (far - mean)/std; a far probe keeps float32 rounding out of std.
    far = 2.0**20
    out = _transform(tft_output, {k: [0, far, None] for k in numeric})
    z_scores = {}
    for key in numeric:
        z0, z_far, z_missing = (float(v) for v in out[features.transformed_name(key)])
        std = far / (z_far - z0)
        z_scores[key] = (-z0 * std, std, z_missing)

    dtypes = input_dtypes(tft_output)
    vocabularies = {}
    for key in features.CATEGORICAL_FEATURE_KEYS:
        terms = tuple(tft_output.vocabulary_by_name(key))
        if dtypes[key].is_integer:
            terms = tuple(int(t) for t in terms)
        missing_term = features.MISSING_STRING.encode() if dtypes[key] == tf.string else features.MISSING_INT
        vocabularies[key] = (terms, terms.index(missing_term) if missing_term in terms else len(terms))
    return DevicePreprocessing(z_scores, _bucket_thresholds(tft_output), vocabularies)


# --- the device graph ------------------------------------------------------------------------


def _lookup(x: tf.Tensor, terms: Sequence[Any]) -> tf.Tensor:
    """Vocabulary ids by comparing with every term: builtin ops, no hash table.

    A 0.5 column after the hits makes ARG_MAX return the first hit, or len(terms) (the OOV id).
    """
    vocabulary = tf.constant(list(terms), dtype=x.dtype, shape=[1, len(terms)])
    hits = tf.cast(tf.equal(tf.expand_dims(x, 1), vocabulary), tf.float32)
    return tf.argmax(tf.pad(hits, [[0, 0], [0, 1]], constant_values=0.5), axis=1, output_type=tf.int64)


_NAN_BELOW, _NAN_ABOVE = _float_key(float("-inf")), _float_key(float("inf"))


def _keys(columns: Sequence[tf.Tensor]) -> tf.Tensor:
    """float32 columns -> [batch, columns] int64 keys ordered like the floats (see _float_key).

    Comparing keys instead of floats keeps bucket boundaries and the NaN test exact in every
    quantization mode: float16 and int8 conversion round float constants and activations, never
    integer ones. Each input is bitcast before anything else touches it, so no quantization step
    can come between the device's value and its key.
    """
    bits = tf.cast(tf.stack([tf.bitcast(c, tf.int32) for c in columns], axis=1), tf.int64)
    return tf.where(bits < 0, -(bits + 2**31), bits)


def apply(pre: DevicePreprocessing, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Raw device inputs (rank 1, see the module doc) to the model's transformed features.

    Features of one kind go through the graph together ([batch, features] tensors): fewer ops
    make a smaller, faster TFLite file.
    """
    out = {}
    numeric, buckets = list(pre.z_scores), list(pre.thresholds)
    floats = [tf.cast(inputs[k], tf.float32) for k in numeric + buckets]
    keys = _keys(floats)
    # NaN (keys beyond those of +-inf) and the infinities: missing, as preprocessing.finite_only makes them.
    missing = tf.logical_or(keys <= _NAN_BELOW, keys >= _NAN_ABOVE)

    # One z-score per feature: int8 conversion then gives each its own quantization range.
    for i, key in enumerate(numeric):
        mean, std, when_missing = pre.z_scores[key]
        z = (floats[i] - mean) / std
        out[features.transformed_name(key)] = tf.where(missing[:, i], tf.constant(when_missing, tf.float32), z)
    if buckets:
        n = len(numeric)
        width = max(1, max(len(pre.thresholds[k][0]) for k in buckets))
        # Missing steps (fewer distinct quantiles) are padded with a key no value reaches.
        steps = [[_float_key(t) for t in pre.thresholds[k][0]] + [2**62] * (width - len(pre.thresholds[k][0])) for k in buckets]
        above = tf.cast(tf.expand_dims(keys[:, n:], 2) >= tf.constant([steps], tf.int64), tf.int64)
        when_missing = tf.constant([[pre.thresholds[k][1] for k in buckets]], tf.int64)
        ids = tf.where(missing[:, n:], when_missing, tf.reduce_sum(above, axis=2))
        # Column slices, not UNPACK: LiteRT's UNPACK has no int64 kernel.
        out.update({features.transformed_name(k): ids[:, i] for i, k in enumerate(buckets)})

    for key, (terms, when_missing) in pre.vocabularies.items():
        x = inputs[key]
        ids = _lookup(x, terms) if terms else tf.zeros_like(x, dtype=tf.int64)
        if x.dtype == tf.string:
            ids = tf.where(tf.equal(x, MISSING_DEVICE_STRING), tf.constant(when_missing, tf.int64), ids)
        out[features.transformed_name(key)] = ids
    return out


def parse_device_inputs(
    serialized: tf.Tensor, raw_spec: Mapping[str, Any], dtypes: Mapping[str, tf.DType]
) -> dict[str, tf.Tensor]:
    """Serialized tf.Examples of raw features to the device signature's inputs."""
    parsed = tf.io.parse_example(serialized, {key: raw_spec[key] for key in dtypes})
    out = {}
    for key, dtype in dtypes.items():
        x = parsed[key]
        if dtype == tf.float32:
            x = as_float(x)
        out[key] = densify(x, missing_value(dtype))
    return out


def make_signatures(
    predict: Callable[[dict[str, tf.Tensor]], tf.Tensor], tft_output: tft.TFTransformOutput
) -> dict[str, Any]:
    """The device signature (raw values -> probabilities) and its tf.Example adapter.

    `predict` maps transformed features (rank 1, by transformed name) to probabilities [batch, 1].
    """
    pre = extract(tft_output)
    dtypes = input_dtypes(tft_output)
    raw_spec = tft_output.raw_feature_spec()
    keys = list(dtypes)

    @tf.function(input_signature=[tf.TensorSpec([None], dtypes[k], name=k) for k in keys])
    def device(*values: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": predict(apply(pre, dict(zip(keys, values))))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def device_inputs(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return parse_device_inputs(examples, raw_spec, dtypes)

    return {DEVICE_SIGNATURE: device, DEVICE_INPUTS_SIGNATURE: device_inputs}


def contract(tft_output: tft.TFTransformOutput) -> dict[str, Any]:
    """The device contract as data (shipped next to every TFLite file)."""
    inputs = []
    for key, dtype in input_dtypes(tft_output).items():
        missing = missing_value(dtype)
        inputs.append({
            "name": key,
            "dtype": dtype.name,
            "shape": [-1],
            "missing": "NaN" if isinstance(missing, float) and math.isnan(missing) else missing,
        })
    return {
        "signature": DEVICE_SIGNATURE,
        "inputs": inputs,
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [-1, 1],
                     "meaning": f"P({features.RAW_LABEL_KEY} > {features.BIG_TIP_FRACTION} * {features.FARE_KEY})"}],
        "preprocessing": "included in the graph (constants read from the transform graph)",
    }


def write_contract(export_dir: str, tft_output: tft.TFTransformOutput) -> str:
    """Writes the device contract into the SavedModel's assets.extra/ (copied by every push)."""
    path = os.path.join(export_dir, "assets.extra", DEVICE_CONTRACT_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(contract(tft_output), indent=2) + "\n")
    return path
