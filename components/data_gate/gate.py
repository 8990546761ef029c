"""The data gate's checks, as plain functions on TFDV's own protos (tested without TFX).

Two sources of anomalies, both found by TFDV: ExampleValidator's comparison of the statistics
with the curated schema, and TFDV's drift comparators between this run's training statistics
and those of the last data the gate let through.
"""

import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import Any

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import ReadableError
from upstream import formats

DRIFT_SPLIT = "train"
# What TFDV reports for NaN and infinities in a float feature whose float_domain disallows them
# (disallow_nan / disallow_inf; the curated schema sets both on every float feature).
NON_FINITE_KINDS = {"FLOAT_TYPE_HAS_NAN": "NaN", "FLOAT_TYPE_HAS_INF": "infinite values"}


@dataclasses.dataclass(frozen=True)
class Finding:
    split: str
    feature: str
    kind: str  # TFDV's AnomalyInfo.Type name, e.g. SCHEMA_NEW_COLUMN
    description: str
    blocking: bool


class DataGateError(ReadableError, RuntimeError):
    """The data failed the gate; the message is the readable summary."""


def findings(
    anomalies: anomalies_pb2.Anomalies, split: str, warn_only: Iterable[str], allow_non_finite: Iterable[str] = ()
) -> list[Finding]:
    """One Finding per (feature, kind) in a TFDV Anomalies proto.

    Kinds in `warn_only` only warn; so do NaN and infinities in the features of `allow_non_finite`.
    """
    warn_only, allowed = set(warn_only), set(allow_non_finite)
    return [
        Finding(split, feature, kind, description,
                kind not in warn_only and not (kind in NON_FINITE_KINDS and feature in allowed))
        for feature, info in formats.anomaly_infos(anomalies)
        for kind, description in formats.anomaly_reasons(info)
    ]


def schema_findings(anomalies_uri: str, warn_only: Iterable[str], allow_non_finite: Iterable[str] = ()) -> list[Finding]:
    """ExampleValidator's anomalies, for every split it checked (a split without its file fails)."""
    out = []
    for split in formats.splits(anomalies_uri):
        out += findings(formats.anomalies(anomalies_uri, split), split, warn_only, allow_non_finite)
    return out


def with_drift_comparators(
    schema: schema_pb2.Schema, max_drift: float, features: Iterable[str] | None = None
) -> schema_pb2.Schema:
    """A copy of the schema with TFDV's drift comparator on `features` (default: all)."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    wanted = None if features is None else set(features)
    for feature in schema.feature:
        if wanted is not None and feature.name not in wanted:
            continue
        if feature.type == schema_pb2.BYTES:
            feature.drift_comparator.infinity_norm.threshold = max_drift
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = max_drift
    return schema


def drift_anomalies(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    baseline: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    max_drift: float,
    features: Iterable[str] | None = None,
    min_examples: int = 0,
) -> anomalies_pb2.Anomalies | None:
    """TFDV's comparison of this run's training statistics with the baseline's (its drift_skew_info
    holds every compared feature's score); None when either side has fewer than `min_examples`."""
    if min(_examples(statistics), _examples(baseline)) < min_examples:
        return None
    return tfdv.validate_statistics(
        statistics, with_drift_comparators(schema, max_drift, features), previous_statistics=baseline
    )


def drift_findings(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    baseline: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    max_drift: float,
    warn_only: Iterable[str],
    features: Iterable[str] | None = None,
    min_examples: int = 0,
) -> list[Finding]:
    """Drift of this run's training statistics from the baseline's, by TFDV's comparators.

    Nothing is compared when either side has fewer than `min_examples` examples.
    """
    anomalies = drift_anomalies(statistics, baseline, schema, max_drift, features, min_examples)
    return [] if anomalies is None else _drift_kinds(findings(anomalies, DRIFT_SPLIT, warn_only))


def _drift_kinds(found: list[Finding]) -> list[Finding]:
    drift_kinds = {"COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"}
    return [f for f in found if f.kind in drift_kinds]


@dataclasses.dataclass(frozen=True)
class DriftScore:
    feature: str
    comparator: str  # TFDV's DriftSkewInfo.Measurement.Type name, lower case: jensen_shannon_divergence, l_infty
    score: float
    threshold: float


def drift_scores(anomalies: anomalies_pb2.Anomalies) -> list[DriftScore]:
    """Every compared feature's drift score and threshold, as TFDV measured them."""
    kind = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    return [
        DriftScore(".".join(info.path.step), kind(m.type).lower(), m.value, m.threshold)
        for info in anomalies.drift_skew_info
        for m in info.drift_measurements
    ]


@dataclasses.dataclass(frozen=True)
class Verdict:
    findings: list[Finding]
    drift: list[DriftScore]  # empty: drift was not compared (no baseline, or too few examples)

    @property
    def passed(self) -> bool:
        return not any(f.blocking for f in self.findings)


def check(statistics_uri: str, anomalies_uri: str, schema_uri: str, baseline_uri: str | None,
          properties: dict[str, Any]) -> Verdict:
    """The gate's whole check on its artifacts' URIs and its exec properties (as the executor got
    them, or as MLMD recorded them: lists may be JSON text)."""
    warn_only = formats.list_property(properties["warn_only"])
    # .get: an execution recorded before the parameter existed has none.
    allow_non_finite = formats.list_property(properties.get("allow_non_finite", []))
    found = schema_findings(anomalies_uri, warn_only, allow_non_finite)
    drift: list[DriftScore] = []
    if baseline_uri and baseline_uri != statistics_uri:
        schema = tfdv.load_schema_text(os.path.join(schema_uri, "schema.pbtxt"))
        anomalies = drift_anomalies(
            formats.statistics(statistics_uri, DRIFT_SPLIT),
            formats.statistics(baseline_uri, DRIFT_SPLIT),
            schema,
            float(properties["max_drift"]),
            features=formats.list_property(properties["drift_features"]) or None,
            min_examples=int(properties.get("min_drift_examples") or 0),
        )
        if anomalies is not None:
            found += _drift_kinds(findings(anomalies, DRIFT_SPLIT, warn_only))
            drift = drift_scores(anomalies)
    return Verdict(found, drift)


def _examples(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    return sum(d.num_examples for d in statistics.datasets)


def summary(found: Sequence[Finding], report_dir: str) -> str:
    """The readable summary a person acts on: what, where, and where the full report is."""
    blocking = [f for f in found if f.blocking]
    lines = [
        f"the data gate stopped the run before Transform: {len(blocking)} blocking anomal"
        f"{'y' if len(blocking) == 1 else 'ies'}"
        + (f" ({len(found) - len(blocking)} more only warn)" if len(found) > len(blocking) else "")
    ]
    width = max((len(f.feature) for f in found), default=7)
    for f in found:
        mark = "BLOCK" if f.blocking else "warn "
        lines.append(f"  {mark} {f.split:<5} {f.feature:<{width}}  {f.kind}: {f.description}")
    non_finite = sorted({f.feature for f in blocking if f.kind in NON_FINITE_KINDS})
    if non_finite:
        kinds = sorted({NON_FINITE_KINDS[f.kind] for f in blocking if f.kind in NON_FINITE_KINDS})
        lines.append(
            f"{' and '.join(kinds)} in {', '.join(non_finite)} (text such as inf, NaN or 1e400 in the CSV): "
            "fix the export, or let them through for a feature with --allow-non-finite "
            "(Transform then imputes them like missing values)")
    lines.append(f"full report: {report_dir}")
    return "\n".join(lines)
