"""DataGate's executor: adapts TFX artifacts to gate.py and raises when the data must not pass."""

from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.data_gate import gate


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        schema_uri = artifact_utils.get_single_uri(input_dict["schema"])
        accepted = artifact_utils.get_single_instance(output_dict["accepted_statistics"])
        baseline = input_dict.get("baseline_statistics") or []
        # The same check runs.metrics repeats from MLMD's records, for the drift scores.
        found = gate.check(statistics.uri, anomalies.uri, schema_uri, baseline[0].uri if baseline else None,
                           exec_properties).findings

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
