"""DataGate's executor: adapts TFX artifacts to gate.py and raises when the data must not pass."""

import os
from typing import Any

import tensorflow_data_validation as tfdv
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.data_gate import gate
from upstream import formats


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        warn_only = formats.list_property(exec_properties["warn_only"])
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        schema_uri = artifact_utils.get_single_uri(input_dict["schema"])
        accepted = artifact_utils.get_single_instance(output_dict["accepted_statistics"])

        # .get: an execution recorded before the parameter existed has none.
        allow_non_finite = formats.list_property(exec_properties.get("allow_non_finite", []))
        found = gate.schema_findings(anomalies.uri, warn_only, allow_non_finite)
        baseline = input_dict.get("baseline_statistics") or []
        if baseline and baseline[0].uri != statistics.uri:
            schema = tfdv.load_schema_text(os.path.join(schema_uri, "schema.pbtxt"))
            found += gate.drift_findings(
                formats.statistics(statistics.uri, gate.DRIFT_SPLIT),
                formats.statistics(baseline[0].uri, gate.DRIFT_SPLIT),
                schema,
                exec_properties["max_drift"],
                warn_only,
                features=formats.list_property(exec_properties["drift_features"]) or None,
                min_examples=exec_properties.get("min_drift_examples", 0),
            )

        # Named after the output it describes, beside it rather than in it: a failed execution's
        # outputs are deleted, and the output's URI is this execution's own on every orchestrator.
        report = accepted.uri.rstrip("/") + ".txt"
        text = gate.summary(found, f"{report} (TFDV anomalies: {anomalies.uri})")
        io_utils.write_string_file(report, text + "\n")
        accepted.set_int_custom_property("blocking_anomalies", sum(f.blocking for f in found))
        accepted.set_int_custom_property("warnings", sum(not f.blocking for f in found))
        if any(f.blocking for f in found):
            raise gate.DataGateError(text)
        for finding in found:
            logging.warning("data gate: %s %s %s: %s", finding.split, finding.feature, finding.kind, finding.description)
        io_utils.copy_dir(statistics.uri, accepted.uri)
        accepted.split_names = statistics.split_names
