"""Key data statistics and anomalies, read from TFDV's outputs (StatisticsGen, ExampleValidator)."""

import dataclasses

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from upstream import formats


@dataclasses.dataclass
class FeatureSummary:
    name: str
    type: str
    present: int
    missing: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    zeros: float | None = None
    unique: int | None = None
    top: str | None = None

    @property
    def missing_share(self) -> float:
        total = self.present + self.missing
        return self.missing / total if total else 0.0


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


def _summary(feature: statistics_pb2.FeatureNameStatistics) -> FeatureSummary:
    kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    stats = feature.WhichOneof("stats")
    if stats == "num_stats":
        num = feature.num_stats
        common = num.common_stats
        return FeatureSummary(_feature_name(feature), kind, common.num_non_missing, common.num_missing,
                              mean=num.mean, std=num.std_dev, min=num.min, max=num.max, zeros=num.num_zeros)
    if stats == "string_stats":
        text = feature.string_stats
        common = text.common_stats
        top = None
        if text.top_values:
            first = text.top_values[0]
            top = f"{first.value or '(empty)'} ({first.frequency:.0f})"
        return FeatureSummary(_feature_name(feature), kind, common.num_non_missing, common.num_missing,
                              unique=text.unique, top=top)
    return FeatureSummary(_feature_name(feature), kind, 0, 0)


def load_statistics(uri: str) -> list[SplitStatistics]:
    """Each split's dataset statistics from an ExampleStatistics artifact."""
    out = []
    for split in _splits(uri, formats.STATISTICS_FILE):
        for dataset in formats.statistics(uri, split).datasets:
            features = sorted((_summary(f) for f in dataset.features), key=lambda f: f.name)
            out.append(SplitStatistics(split, int(dataset.num_examples), features))
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
