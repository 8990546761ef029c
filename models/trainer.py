"""The TFX Trainer's entry point: a thin adapter from FnArgs to models.model."""

import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from models import model

HYPERPARAMETERS_KEY = "hyperparameters"


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer calls this function: train, then export the serving model."""
    hp = model.Hyperparameters.from_dict(fn_args.custom_config[HYPERPARAMETERS_KEY])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    trained = model.train(
        train_files=fn_args.train_files,
        eval_files=fn_args.eval_files,
        tf_transform_output=tf_transform_output,
        hp=hp,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
        log_dir=fn_args.model_run_dir,
    )
    model.export_serving_model(trained, tf_transform_output, fn_args.serving_model_dir)
