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


# The device contract, as the README states it: one input per raw feature the model reads, named
# as the CSV column; numbers float32 with NaN for missing, payment_type/company strings with ""
# for missing, integer codes int64 with -1 for missing.
NUMBERS = ("trip_miles", "fare", "trip_seconds", "pickup_latitude", "pickup_longitude", "dropoff_latitude",
           "dropoff_longitude")
STRINGS = ("payment_type", "company")
INTEGER_CODES = ("trip_start_hour", "trip_start_day", "trip_start_month", "pickup_community_area",
                 "dropoff_community_area", "dropoff_census_tract")
CONTRACT = {**{k: tf.float32 for k in NUMBERS}, **{k: tf.string for k in STRINGS}, **{k: tf.int64 for k in INTEGER_CODES}}


def test_missing_values_follow_the_contract(transformed):
    _, tft_output, _ = transformed
    inputs = _device_inputs(tft_output, serialized_examples(drop=set(CONTRACT)))
    assert {key: value.dtype for key, value in inputs.items()} == CONTRACT
    assert {value.shape for value in inputs.values()} == {(len(RAW_ROWS),)}  # rank 1, one value per row
    for key in NUMBERS:
        assert np.isnan(inputs[key].numpy()).all(), key
    for key in STRINGS:
        assert inputs[key].numpy().tolist() == [b""] * len(RAW_ROWS), key
    for key in INTEGER_CODES:
        assert inputs[key].numpy().tolist() == [-1] * len(RAW_ROWS), key


def test_contract_ships_with_the_saved_model(taxi_model):
    export_dir, _, _, _ = taxi_model
    with open(os.path.join(export_dir, "assets.extra", device.DEVICE_CONTRACT_FILE)) as f:
        contract = json.load(f)
    names = [i["name"] for i in contract["inputs"]]
    assert sorted(names) == sorted(CONTRACT)
    written = {i["name"]: (i["dtype"], i["missing"]) for i in contract["inputs"]}
    assert written == {k: {tf.float32: ("float32", "NaN"), tf.string: ("string", ""), tf.int64: ("int64", -1)}[d]
                       for k, d in CONTRACT.items()}
    assert contract["outputs"][0]["name"] == "probabilities"
    signature = tf.saved_model.load(export_dir).signatures[device.DEVICE_SIGNATURE]
    assert sorted(signature.structured_input_signature[1]) == sorted(names)


def test_infinities_are_missing_values_on_the_device_as_in_the_transform_graph(transformed):
    """A feature allowed to hold infinities (--allow-non-finite): both graphs impute them alike."""
    values, tft_output, _ = transformed
    inf = float("inf")
    rows = [dict(RAW_ROWS[1], trip_miles=inf, pickup_latitude=-inf), dict(RAW_ROWS[2], fare=-inf, pickup_latitude=inf),
            dict(RAW_ROWS[3], trip_miles=float("nan"))]
    serialized = serialized_examples(rows)
    expected = tft_output.transform_raw_features(tf.io.parse_example(serialized, tft_output.raw_feature_spec()))
    out = device.apply(device.extract(tft_output), _device_inputs(tft_output, serialized))
    for key in [features.transformed_name(k) for k in ("trip_miles", "fare", "pickup_latitude")]:
        np.testing.assert_allclose(out[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    missing = values[features.transformed_name("pickup_latitude")][3]  # row 3 has no latitude
    assert out[features.transformed_name("pickup_latitude")].numpy().tolist()[:2] == [missing, missing]
