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


def test_non_finite_values_are_imputed_like_missing_ones_in_analysis_and_serving(transformed, tmp_path):
    """What a feature allowed by --allow-non-finite gets: NaN and infinities never reach the mean."""
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata

    from models import preprocessing
    from pipeline.beam import DirectBeam
    from tests.conftest import raw_feature_spec, raw_instances, serialized_examples

    inf = float("inf")
    rows = RAW_ROWS + [dict(RAW_ROWS[0], trip_miles=float("nan")), dict(RAW_ROWS[1], trip_miles=inf),
                       dict(RAW_ROWS[2], trip_miles=-inf)]
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_feature_spec())
    with beam.Pipeline(argv=DirectBeam("in_memory").args()) as p:
        with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
            transform_fn = (p | beam.Create(raw_instances(rows)), metadata) | tft_beam.AnalyzeDataset(
                preprocessing.preprocessing_fn)
            _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "out"))
    out = tft.TFTransformOutput(str(tmp_path / "out")).transform_raw_features(
        tf.io.parse_example(serialized_examples(rows), raw_feature_spec()))
    # 1,2,3,missing,2,4 and NaN, inf, -inf: the last four take the mean of the finite values, 2.4.
    present = np.array([1.0, 2.0, 3.0, 2.4, 2.0, 4.0, 2.4, 2.4, 2.4])
    np.testing.assert_allclose(out[xf("trip_miles")].numpy(), (present - present.mean()) / present.std(), rtol=1e-5, atol=1e-6)

    # Serving, on the fixture's graph: a non-finite fare or tips is a missing one (label 0).
    _, tft_output, _ = transformed
    odd = [dict(RAW_ROWS[1], fare=inf), dict(RAW_ROWS[1], fare=float("nan")), dict(RAW_ROWS[1], tips=inf),
           dict(RAW_ROWS[1], trip_miles=-inf), dict(RAW_ROWS[1], trip_miles=None)]
    served = tft_output.transform_raw_features(tf.io.parse_example(serialized_examples(odd), raw_feature_spec()))
    assert served[features.LABEL_KEY].numpy().tolist()[:3] == [0, 0, 0]
    miles = served[xf("trip_miles")].numpy()
    assert np.isfinite(miles).all() and miles[3] == miles[4]  # -inf is imputed as a missing value is
