"""The TFX Trainer's entry point: a thin adapter from FnArgs to models.model."""

import os
import shutil
import tempfile

import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from models import distributed, model, warm_start

HYPERPARAMETERS_KEY = "hyperparameters"
# custom_config: true when the pipeline feeds the Trainer's base_model for a warm start.
WARM_START_KEY = "warm_start"


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer calls this function: train, then export the serving model.

    Several replicas or local workers train in worker processes (models/distributed.py); on a
    cluster that sets TF_CONFIG itself (Vertex AI worker pools) each replica's Trainer trains here.
    """
    hp = model.Hyperparameters.from_dict(fn_args.custom_config[HYPERPARAMETERS_KEY])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    base_model_dir = None
    if fn_args.custom_config.get(WARM_START_KEY):
        # Decided here, once, before any worker starts: every replica starts from the same weights.
        base_model_dir, line = warm_start.decide(fn_args.base_model, tf_transform_output, hp)
        warm_start.write_decision(os.path.dirname(fn_args.serving_model_dir.rstrip("/")), line)
    if hp.in_subprocess and "TF_CONFIG" not in os.environ:
        # model_run_dir is <Trainer's dir>/model_run/<execution>: the backup outlives the execution.
        trainer_dir = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
        distributed.train(
            train_files=fn_args.train_files,
            eval_files=fn_args.eval_files,
            transform_output=fn_args.transform_output,
            hp=hp,
            train_steps=fn_args.train_steps,
            eval_steps=fn_args.eval_steps,
            serving_model_dir=fn_args.serving_model_dir,
            log_dir=fn_args.model_run_dir,
            backup_dir=distributed.backup_dir_for(trainer_dir, fn_args.train_files, fn_args.transform_output,
                                                  hp, fn_args.train_steps, base_model_dir),
            base_model_dir=base_model_dir,
        )
        return
    shard, export_dir = None, fn_args.serving_model_dir
    if "TF_CONFIG" in os.environ and hp.distribution_strategy == "multi_worker":
        workers, index = distributed.cluster_position(os.environ["TF_CONFIG"])
        shard = (workers, index)
        if index != 0:  # every worker saves (collectives); only the chief's export is the Model
            export_dir = os.path.join(tempfile.mkdtemp(prefix="taxi-export-"), "model")
    trained = model.train(
        train_files=fn_args.train_files,
        eval_files=fn_args.eval_files,
        tf_transform_output=tf_transform_output,
        hp=hp,
        train_steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
        log_dir=fn_args.model_run_dir if export_dir == fn_args.serving_model_dir else None,
        shard=shard,
        base_model_dir=base_model_dir,
    )
    model.export_serving_model(trained, tf_transform_output, export_dir, hp)
    if export_dir != fn_args.serving_model_dir:
        shutil.rmtree(os.path.dirname(export_dir), ignore_errors=True)
