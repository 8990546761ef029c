"""The on-device graph: raw values in, builtin ops only, and the same answers as the transform graph."""

import json
import os

import numpy as np
import tensorflow as tf

from models import device, features
from tests.conftest import RAW_ROWS, serialized_examples


def _device_inputs(tft_output, serialized):
    dtypes = device.input_dtypes(tft_output)
    return device.parse_device_inputs(tf.constant(serialized), tft_output.raw_feature_spec(), dtypes)


def test_device_preprocessing_equals_the_transform_graph_on_hand_made_rows(transformed):
    values, tft_output, _ = transformed
    pre = device.extract(tft_output)
    out = device.apply(pre, _device_inputs(tft_output, serialized_examples()))
    for key in features.model_input_keys():
        if values[key].dtype.kind == "f":
            np.testing.assert_allclose(out[key].numpy(), values[key], rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            assert out[key].numpy().tolist() == values[key].tolist(), key


def test_device_preprocessing_equals_the_transform_graph_on_real_rows(taxi_model):
    _, tft_output, _, eval_examples = taxi_model
    batch = tf.io.parse_example(tf.constant(eval_examples), tft_output.raw_feature_spec())
    expected = tft_output.transform_raw_features(batch)
    out = device.apply(device.extract(tft_output), _device_inputs(tft_output, eval_examples))
    for key in features.model_input_keys():
        if expected[key].dtype.is_floating:
            np.testing.assert_allclose(out[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-5, err_msg=key)
        else:
            assert out[key].numpy().tolist() == expected[key].numpy().tolist(), key


def test_bucket_thresholds_are_the_exact_steps_of_the_transform(taxi_model):
    _, tft_output, _, _ = taxi_model
    pre = device.extract(tft_output)
    for key, (thresholds, _) in pre.thresholds.items():
        assert list(thresholds) == sorted(thresholds) and len(thresholds) == features.BUCKET_COUNT - 1, key
        # Just below each threshold is the lower bucket, at it the next one: probe both sides.
        below = [float(np.nextafter(np.float32(t), np.float32(-np.inf))) for t in thresholds]
        out = device._transform(tft_output, {key: below + list(thresholds)})[features.transformed_name(key)]
        n = len(thresholds)
        assert out[:n].tolist() == list(range(n)) and out[n:].tolist() == list(range(1, n + 1)), key


def test_device_signature_answers_like_serving_default(taxi_model):
    export_dir, _, _, eval_examples = taxi_model
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](examples=tf.constant(eval_examples))["probabilities"]
    inputs = loaded.signatures[device.DEVICE_INPUTS_SIGNATURE](examples=tf.constant(eval_examples))
    on_device = loaded.signatures[device.DEVICE_SIGNATURE](**inputs)["probabilities"]
    np.testing.assert_allclose(on_device.numpy(), served.numpy(), atol=1e-5)


def test_missing_values_follow_the_contract(transformed):
    _, tft_output, _ = transformed
    inputs = _device_inputs(tft_output, serialized_examples(drop=set(features.CATEGORICAL_FEATURE_KEYS) | set(device.FLOAT_KEYS)))
    for key, dtype in device.input_dtypes(tft_output).items():
        column = inputs[key].numpy()
        assert inputs[key].dtype == dtype and column.shape == (len(RAW_ROWS),), key
        missing = device.missing_value(dtype)
        if dtype == tf.float32:
            assert np.isnan(column).all(), key
        else:
            assert [v.decode() if isinstance(v, bytes) else v for v in column] == [missing] * len(RAW_ROWS), key


def test_contract_ships_with_the_saved_model(taxi_model):
    export_dir, tft_output, _, _ = taxi_model
    with open(os.path.join(export_dir, "assets.extra", device.DEVICE_CONTRACT_FILE)) as f:
        contract = json.load(f)
    names = [i["name"] for i in contract["inputs"]]
    assert names == list(device.input_dtypes(tft_output))
    assert {i["name"]: i["missing"] for i in contract["inputs"]}["fare"] == "NaN"
    assert contract["outputs"][0]["name"] == "probabilities"
    signature = tf.saved_model.load(export_dir).signatures[device.DEVICE_SIGNATURE]
    assert sorted(signature.structured_input_signature[1]) == sorted(names)
