"""The Keras model on a few transformed rows: it builds, trains a step, and serves what it claims."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models import features, model
from tests.conftest import RAW_ROWS, serialized_examples

TINY = model.Hyperparameters(train_batch_size=4, eval_batch_size=4, hidden_units=(8,), embedding_dim=2)


def test_model_has_one_input_per_transformed_feature_and_a_probability_output(transformed):
    _, tft_output, _ = transformed
    keras_model = model.build_model(model.vocabulary_sizes(tft_output), TINY)
    assert sorted(keras_model.input_names) == sorted(features.model_input_keys())
    assert keras_model.output_shape == (None, 1)


@pytest.fixture(scope="module")
def exported(transformed, tmp_path_factory):
    _, tft_output, examples = transformed
    trained = model.train([examples], [examples], tft_output, TINY, train_steps=1, eval_steps=1)
    export_dir = str(tmp_path_factory.mktemp("export") / "serving_model")
    model.export_serving_model(trained, tft_output, export_dir)
    return trained, tf.saved_model.load(export_dir)


def test_one_training_step_changes_the_weights(transformed):
    _, tft_output, examples = transformed
    tf_keras.utils.set_random_seed(0)
    with model.make_strategy(TINY.distribution_strategy).scope():
        fresh = model.build_model(model.vocabulary_sizes(tft_output), TINY)
    before = [w.copy() for w in fresh.get_weights()]
    features_batch, labels = next(iter(model.make_dataset([examples], tft_output, 4, shuffle=False)))
    fresh.train_on_batch(features_batch, labels)
    assert any(not np.array_equal(a, b) for a, b in zip(before, fresh.get_weights()))


def test_serving_default_takes_serialized_raw_examples_without_the_label(exported):
    _, loaded = exported
    serve = loaded.signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    out = serve(examples=tf.constant(serialized_examples(drop={features.RAW_LABEL_KEY})))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(RAW_ROWS), 1)
    # The label is no input: the same rows with their tips get the same answers.
    with_label = serve(examples=tf.constant(serialized_examples()))["probabilities"].numpy()
    np.testing.assert_array_equal(probabilities, with_label)


def test_serving_matches_the_keras_model_on_transformed_features(exported, transformed):
    values, _, _ = transformed
    trained, loaded = exported
    direct = trained(model.to_model_inputs({k: tf.constant(v) for k, v in values.items()})).numpy()
    served = loaded.signatures["serving_default"](examples=tf.constant(serialized_examples()))
    np.testing.assert_allclose(served["probabilities"].numpy(), direct, rtol=1e-5)


def test_transform_features_signature_gives_the_label_for_evaluation(exported, transformed):
    values, _, _ = transformed
    _, loaded = exported
    out = loaded.signatures["transform_features"](examples=tf.constant(serialized_examples()))
    assert out[features.LABEL_KEY].numpy().tolist() == values[features.LABEL_KEY].tolist()
    assert set(features.model_input_keys()) <= set(out)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="distribution_strategy"):
        model.make_strategy("tpu_pod")


def test_mixed_precision_trains_and_keeps_a_float32_output(transformed):
    _, tft_output, examples = transformed
    hp = model.Hyperparameters(**{**TINY.to_dict(), "mixed_precision": True})
    trained = model.train([examples], [examples], tft_output, hp, train_steps=1, eval_steps=1)
    assert trained.output.dtype == tf.float32
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in trained.layers)
    assert tf_keras.mixed_precision.global_policy().name == "float32"  # restored afterwards


def test_the_same_seed_trains_the_same_model(transformed):
    _, tft_output, examples = transformed
    weights = [
        model.train([examples], [examples], tft_output, TINY, train_steps=3, eval_steps=1).get_weights()
        for _ in range(2)
    ]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
