"""Key data statistics and anomalies, read from TFDV's outputs (StatisticsGen, ExampleValidator)."""

import dataclasses

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from upstream import formats


@dataclasses.dataclass
class FeatureSummary:
    """One feature of one split. TFDV counts a feature as present (num_non_missing) when the
    example holds it, values or not, and CsvExampleGen writes an empty CSV cell as a present
    feature with no values: `with_value` counts the rows that really hold a value."""

    name: str
    type: str
    examples: int  # rows in the split
    with_value: int | None  # rows with at least one value; None where TFDV's counts cannot tell
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    zeros: float | None = None
    unique: int | None = None
    top: str | None = None

    @property
    def no_value(self) -> int | None:
        """Rows without a value: the feature absent, or present with an empty value list."""
        return None if self.with_value is None else self.examples - self.with_value

    @property
    def no_value_share(self) -> float | None:
        if self.no_value is None:
            return None
        return self.no_value / self.examples if self.examples else 0.0


@dataclasses.dataclass
class SplitStatistics:
    split: str
    examples: int
    features: list[FeatureSummary]


@dataclasses.dataclass
class Anomaly:
    split: str
    feature: str
    severity: str
    short: str
    description: str


def _splits(uri: str, file_name: str) -> list[str]:
    """The splits of an artifact that hold `file_name`, train first, then eval, then the rest."""
    order = {"train": 0, "eval": 1}
    return sorted(formats.splits(uri, file_name), key=lambda split: (order.get(split, 2), split))


def _feature_name(feature: statistics_pb2.FeatureNameStatistics) -> str:
    return ".".join(feature.path.step) if feature.path.step else feature.name


def _rows_with_value(common: statistics_pb2.CommonStatistics) -> int | None:
    """How many examples hold at least one value, from TFDV's common statistics: exact when
    every present example has a value (min_num_values >= 1) or none has more than one
    (max_num_values <= 1: then it is tot_num_values); None for a list feature with empty lists."""
    if common.num_non_missing == 0:
        return 0
    if common.min_num_values >= 1:
        return int(common.num_non_missing)
    if common.max_num_values <= 1:
        return int(common.tot_num_values)
    return None


def _summary(feature: statistics_pb2.FeatureNameStatistics, examples: int) -> FeatureSummary:
    kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    stats = feature.WhichOneof("stats")
    name = _feature_name(feature)
    if stats not in ("num_stats", "string_stats"):
        return FeatureSummary(name, kind, examples, None)
    common = getattr(feature, stats).common_stats
    summary = FeatureSummary(name, kind, examples, _rows_with_value(common))
    if summary.with_value == 0 or common.tot_num_values == 0:
        return summary  # nothing was measured: TFDV's zeros are defaults, not statistics
    if stats == "num_stats":
        num = feature.num_stats
        summary.mean, summary.std, summary.min, summary.max, summary.zeros = (
            num.mean, num.std_dev, num.min, num.max, num.num_zeros)
    else:
        text = feature.string_stats
        summary.unique = int(text.unique)
        if text.top_values:
            first = text.top_values[0]
            summary.top = f"{first.value or '(empty)'} ({first.frequency:.0f})"
    return summary


def load_statistics(uri: str) -> list[SplitStatistics]:
    """Each split's dataset statistics from an ExampleStatistics artifact."""
    out = []
    for split in _splits(uri, formats.STATISTICS_FILE):
        for dataset in formats.statistics(uri, split).datasets:
            examples = int(dataset.num_examples)
            features = sorted((_summary(f, examples) for f in dataset.features), key=lambda f: f.name)
            out.append(SplitStatistics(split, examples, features))
    return out


def load_anomalies(uri: str) -> tuple[list[str], list[Anomaly]]:
    """(the splits checked, the anomalies found) from an ExampleAnomalies artifact."""
    splits, found = [], []
    for split in _splits(uri, formats.ANOMALIES_FILE):
        splits.append(split)
        for feature, info in formats.anomaly_infos(formats.anomalies(uri, split)):
            found.append(Anomaly(split, feature, anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                                 info.short_description, info.description))
    return splits, found
