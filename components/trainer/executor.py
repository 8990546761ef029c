"""TFX's generic Trainer executor, plus the warm-start decision as the Model's `warm_start` property.

run_fn (models.trainer) decides whether the base model fits and leaves its one line in the
Model's directory; the executor owns the output artifact, so it is the one that can record it.
"""

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils

from models import warm_start

PROPERTY = "warm_start"


class Executor(trainer_executor.GenericExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(output_dict["model"])
        line = warm_start.read_decision(model.uri)
        if line:
            model.set_string_custom_property(PROPERTY, line)
