"""The taxi features: the one place that names them.

Preprocessing, the model, the schema checks and the evaluation import these names instead of
repeating strings.
"""

# Numeric features: missing values imputed with the mean, then scaled to a z-score.
NUMERIC_FEATURE_KEYS: tuple[str, ...] = ("trip_miles", "fare", "trip_seconds")

# Coordinates: missing values imputed with the mean, then bucketized into quantiles.
BUCKET_FEATURE_KEYS: tuple[str, ...] = (
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
BUCKET_COUNT = 10

# Categorical features (strings or integer codes): vocabulary ids; missing values get their own term.
CATEGORICAL_FEATURE_KEYS: tuple[str, ...] = (
    "payment_type",
    "company",
    "trip_start_hour",
    "trip_start_day",
    "trip_start_month",
    "pickup_community_area",
    "dropoff_community_area",
    "dropoff_census_tract",
)
VOCAB_SIZE = 1000  # most frequent terms kept per feature
OOV_BUCKETS = 1  # terms outside the vocabulary share one id, vocab_size

MISSING_STRING = "__missing__"
MISSING_INT = -1

# The label: did the passenger tip more than 20% of the fare ("big tipper")?
RAW_LABEL_KEY = "tips"
FARE_KEY = "fare"
BIG_TIP_FRACTION = 0.2
LABEL_KEY = "big_tipper"

# Raw columns the model does not use (the Evaluator also slices on raw features).
UNUSED_RAW_KEYS: tuple[str, ...] = ("trip_start_timestamp", "pickup_census_tract")
SLICE_FEATURE_KEYS: tuple[str, ...] = ("trip_start_hour",)

# Left out of the data gate's drift check: TFDV's histogram comparison is unstable on their
# heavy tails: two halves of the same data score near or above the drift threshold, which would
# block good data (the scores: benchmarks/README.md, "Data gate thresholds").
DRIFT_UNSTABLE_KEYS: tuple[str, ...] = ("trip_miles", "trip_seconds")


def model_raw_keys() -> tuple[str, ...]:
    """Raw features the model reads, in a stable order."""
    return NUMERIC_FEATURE_KEYS + BUCKET_FEATURE_KEYS + CATEGORICAL_FEATURE_KEYS


def float_keys() -> tuple[str, ...]:
    """The raw float features (FLOAT in the schema): the ones that can hold NaN or infinities."""
    return ("trip_miles", FARE_KEY, RAW_LABEL_KEY) + BUCKET_FEATURE_KEYS


def drift_keys() -> list[str]:
    """Raw features the data gate compares with the last accepted data: the model's, and the label."""
    return [k for k in model_raw_keys() + (RAW_LABEL_KEY,) if k not in DRIFT_UNSTABLE_KEYS]


def transformed_name(key: str) -> str:
    """Name of a feature after Transform."""
    return f"{key}_xf"


def model_input_keys() -> list[str]:
    """Transformed feature names the model reads, in a stable order."""
    return [transformed_name(k) for k in model_raw_keys()]
