"""Kubeflow Pipelines v2: compile the pipeline (runner.py), submit it to an endpoint (submit.py).

What both sides share lives here and imports nothing heavy, so `kfp submit` starts without
TensorFlow: the runtime parameters a run may set, and where a compiled spec is written.
"""

import json
from pathlib import Path

# Runtime parameters of the compiled pipeline (KFP run arguments). The Trainer takes its
# TrainArgs as one value, so the train steps travel as TrainArgs JSON; `kfp submit
# --train-steps N` writes it with train_args_value().
DATA_ROOT_PARAM = "data_root"
TRAIN_ARGS_PARAM = "train_args"
# Compiled with --spans (a data root of span-N/ folders): which span CsvExampleGen reads, as its
# RangeConfig JSON; empty: the newest. `kfp submit --span N` writes it with range_config_value().
RANGE_CONFIG_PARAM = "range_config"


def range_config_value(span: int) -> str:
    """The `range_config` runtime parameter's value for span N (0: the newest, TFX's default)."""
    if not span:
        return ""
    return json.dumps({"static_range": {"start_span_number": int(span), "end_span_number": int(span)}})


def train_args_value(train_steps: int) -> str:
    """The `train_args` runtime parameter's value for a number of training steps (TrainArgs JSON)."""
    return json.dumps({"num_steps": int(train_steps)})


def default_spec_path(output_dir: Path, pipeline_name: str) -> Path:
    """Where `kfp compile` writes the spec and `kfp submit` reads it by default."""
    return Path(output_dir) / "kubeflow" / f"{pipeline_name}.yaml"
