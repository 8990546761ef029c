"""TensorFlow Transform preprocessing.

The Transform component runs `preprocessing_fn` over the whole training split with Apache Beam
(computing means, quantiles and vocabularies), and the exported transform graph replays it inside
the serving signature, so training and serving share one implementation.
"""

from typing import Union

import tensorflow as tf
import tensorflow_transform as tft

from models import features

Feature = Union[tf.Tensor, tf.sparse.SparseTensor]


def as_float(x: Feature) -> Feature:
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return tf.cast(x, tf.float32)


def densify(x: Feature, default) -> tf.Tensor:
    """A rank-1 tensor from a one-value-per-example feature, with `default` where it is missing.

    Features that can be missing arrive as SparseTensors of shape [batch, 1].
    """
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
            default_value=tf.cast(default, x.dtype),
        )
    return tf.reshape(x, [-1])


def finite_only(x: Feature) -> tf.sparse.SparseTensor:
    """A float feature with NaN and infinities left out: missing, to be imputed like a missing value.

    The data gate stops them unless a feature allows them (--allow-non-finite); then one NaN
    would make the mean, and every imputed and z-scored value, NaN.
    """
    x = as_float(x)
    if not isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.from_dense(tf.reshape(x, [-1, 1]))
        x = tf.SparseTensor(x.indices, x.values, x.dense_shape)
    return tf.sparse.retain(x, tf.math.is_finite(x.values))


def _impute_mean(x: Feature) -> tf.Tensor:
    x = finite_only(x)
    return densify(x, tft.mean(x))


def preprocessing_fn(inputs: dict[str, Feature]) -> dict[str, tf.Tensor]:
    """Raw taxi features to model inputs and the label. Called by TFX Transform."""
    outputs = {}
    for key in features.NUMERIC_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(_impute_mean(inputs[key]))

    for key in features.BUCKET_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = tft.bucketize(
            _impute_mean(inputs[key]), features.BUCKET_COUNT
        )

    for key in features.CATEGORICAL_FEATURE_KEYS:
        x = inputs[key]
        missing = features.MISSING_STRING if x.dtype == tf.string else features.MISSING_INT
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            densify(x, missing),
            top_k=features.VOCAB_SIZE,
            num_oov_buckets=features.OOV_BUCKETS,
            vocab_filename=key,
        )

    # A missing (or non-finite) fare makes the label 0, as in TFX's own taxi example (results stay comparable).
    fare = densify(finite_only(inputs[features.FARE_KEY]), float("nan"))
    tips = densify(finite_only(inputs[features.RAW_LABEL_KEY]), 0.0)
    outputs[features.LABEL_KEY] = tf.where(
        tf.math.is_nan(fare),
        tf.zeros_like(fare, dtype=tf.int64),
        tf.cast(tips > fare * features.BIG_TIP_FRACTION, tf.int64),
    )
    return outputs
