"""preprocessing_fn through TFT's real Beam implementation, checked value by value."""

import numpy as np
import pytest

from models import features
from tests.conftest import RAW_ROWS

xf = features.transformed_name


def test_numeric_features_are_mean_imputed_then_z_scored(transformed):
    values, _, _ = transformed
    # trip_miles: 1,2,3,missing,2,4 -> missing becomes the mean of the present values (2.4).
    present = np.array([1.0, 2.0, 3.0, 2.4, 2.0, 4.0])
    expected = (present - present.mean()) / present.std()
    np.testing.assert_allclose(values[xf("trip_miles")], expected, rtol=1e-5)
    # An imputed value sits exactly at the mean of the imputed column: z-score 0 (trip_seconds row 3).
    seconds = np.array([100, 200, 300, 300, 400, 500], dtype=float)
    np.testing.assert_allclose(values[xf("trip_seconds")], (seconds - seconds.mean()) / seconds.std(), rtol=1e-5)
    assert values[xf("trip_seconds")][2] == pytest.approx(0.0, abs=1e-6)


def test_categorical_features_get_vocabulary_ids_by_frequency(transformed):
    values, tft_output, _ = transformed
    # Cash x3 -> 0, Credit Card x2 -> 1, missing x1 -> its own term, 2.
    assert values[xf("payment_type")].tolist() == [0, 1, 0, 1, 0, 2]
    assert tft_output.vocabulary_by_name("payment_type")[:3] == [
        b"Cash", b"Credit Card", features.MISSING_STRING.encode()
    ]
    # Integers too: hour 1 x3 -> 0, hour 2 x2 -> 1, hour 3 x1 -> 2.
    assert values[xf("trip_start_hour")].tolist() == [0, 0, 1, 0, 2, 1]
    # A feature absent from every row maps to the missing term, id 0.
    assert values[xf("pickup_community_area")].tolist() == [0] * len(RAW_ROWS)


def test_terms_outside_the_vocabulary_share_the_oov_id(transformed):
    _, tft_output, _ = transformed
    import tensorflow as tf
    from tests.conftest import raw_feature_spec, serialized_examples

    unseen = dict(RAW_ROWS[0], payment_type="Bitcoin")
    batch = tf.io.parse_example(serialized_examples([unseen]), raw_feature_spec())
    out = tft_output.transform_raw_features(batch)
    assert out[xf("payment_type")].numpy().tolist() == [tft_output.vocabulary_size_by_name("payment_type")]


def test_coordinates_are_bucketized_in_order_with_missing_at_the_mean(transformed):
    values, _, _ = transformed
    buckets = values[xf("pickup_latitude")]
    assert buckets.dtype.kind == "i"
    assert ((0 <= buckets) & (buckets < features.BUCKET_COUNT)).all()
    lat_order = [0, 1, 2, 4, 5]  # rows with a latitude, by increasing latitude
    assert list(buckets[lat_order]) == sorted(buckets[lat_order])
    assert buckets[0] < buckets[5]
    # Missing latitude (row 3) is imputed with the mean, 41.9: between rows 1 (41.85) and 4 (41.95).
    assert buckets[1] <= buckets[3] <= buckets[4]
    assert buckets[3] not in (buckets[0], buckets[5])


def test_label_is_tip_above_twenty_percent_of_fare(transformed):
    values, _, _ = transformed
    expected = [int(r["tips"] > 0.2 * r["fare"]) for r in RAW_ROWS]
    assert expected == [0, 1, 0, 1, 0, 1]
    assert values[features.LABEL_KEY].tolist() == expected


def test_missing_fare_or_tips_give_label_zero_and_missing_ints_their_own_term(transformed):
    import tensorflow as tf
    from tests.conftest import raw_feature_spec, serialized_examples

    _, tft_output, _ = transformed
    rows = [dict(RAW_ROWS[1], fare=None), dict(RAW_ROWS[1], tips=None), dict(RAW_ROWS[1], trip_start_hour=None)]
    out = tft_output.transform_raw_features(tf.io.parse_example(serialized_examples(rows), raw_feature_spec()))
    assert out[features.LABEL_KEY].numpy().tolist()[:2] == [0, 0]
    # The vocabulary never saw a missing hour: the missing term is out of vocabulary, the OOV id.
    assert out[xf("trip_start_hour")].numpy().tolist()[2] == tft_output.vocabulary_size_by_name("trip_start_hour")
