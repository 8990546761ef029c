"""The Keras model: input pipeline, architecture, training and export, as plain functions.

Nothing here knows about TFX; `models.trainer.run_fn` adapts the Trainer's arguments to these,
so the model is tested on a few rows without running a pipeline.
"""

from collections.abc import Mapping, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models import device, features, warm_start
from models.hyperparameters import STRATEGIES, Hyperparameters

def make_strategy(name: str, replicas: int = 1) -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name` (one of STRATEGIES).

    mirrored with replicas > 1 mirrors over that many logical CPU devices, which must have been
    configured (split_cpu) before TensorFlow initialised its devices. multi_worker reads the
    cluster from TF_CONFIG and trains one replica per worker process.
    """
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU") and replicas == 1:
            return tf.distribute.MirroredStrategy()  # all local GPUs
        # Without GPUs MirroredStrategy() mirrors over every logical CPU device: name them.
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(cpus) < replicas:
            raise RuntimeError(f"{replicas} replicas need {replicas} logical CPU devices, this process has "
                               f"{len(cpus)}: split_cpu({replicas}) must run before TensorFlow initialises")
        # On CPU devices MirroredStrategy all-reduces by reduction to one device (NCCL is GPU-only).
        return tf.distribute.MirroredStrategy(devices=cpus[:replicas])
    if name == "multi_worker":
        # Ring all-reduce over gRPC: the collective implementation that works between CPU workers.
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING))
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"distribution_strategy must be one of {STRATEGIES}, not {name!r}")


def split_cpu(replicas: int) -> None:
    """Splits this process's CPU into `replicas` logical devices; only before TF initialises them."""
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def to_model_inputs(transformed: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The model's inputs, shaped [batch, 1], from Transform's rank-1 outputs."""
    return {key: tf.reshape(transformed[key], [-1, 1]) for key in features.model_input_keys()}


def make_dataset(
    file_patterns: Sequence[str],
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Endless (features, label) batches from Transform's gzipped TFRecords of tf.Examples.

    `batch_size` is the global batch: tf.distribute splits each batch among the replicas in sync.
    shard=(count, index): this worker's records, every count-th from the index-th. By record, not
    by file: Transform writes as many files as Beam chose (one on the bundled data, from a single
    bundle), often fewer than the workers, and file sharding would then leave workers without
    data (tf.data's AUTO policy would silently fall back to reading everything, on every worker).
    """
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {list(file_patterns)}")
    feature_spec = tf_transform_output.transformed_feature_spec()

    def parse(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parsed = tf.io.parse_example(serialized, feature_spec)
        return to_model_inputs(parsed), parsed[features.LABEL_KEY]

    # The taxi splits are small: cache the serialized records once, then shuffle in memory.
    # Interleaved deterministically (tf.data's default), so every worker numbers the records alike.
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    if shard is not None:
        dataset = dataset.shard(*shard)
    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
    dataset = (
        dataset.repeat()
        .batch(batch_size)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    if shard is not None:  # sharded above: tf.distribute must not shard again
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        dataset = dataset.with_options(options)
    return dataset


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Number of ids each categorical or bucketized input can take."""
    sizes = {
        features.transformed_name(key): tf_transform_output.vocabulary_size_by_name(key)
        + features.OOV_BUCKETS
        for key in features.CATEGORICAL_FEATURE_KEYS
    }
    sizes.update(
        {features.transformed_name(k): features.BUCKET_COUNT for k in features.BUCKET_FEATURE_KEYS}
    )
    return sizes


def build_model(id_sizes: Mapping[str, int], hp: Hyperparameters) -> keras.Model:
    """Wide & deep binary classifier over the transformed features; outputs P(big tipper)."""
    numeric_keys = [features.transformed_name(k) for k in features.NUMERIC_FEATURE_KEYS]
    inputs = {
        key: keras.Input(shape=(1,), name=key, dtype="float32" if key in numeric_keys else "int64")
        for key in features.model_input_keys()
    }
    embeddings, wide_terms = [], []
    for key, size in id_sizes.items():
        embeddings.append(keras.layers.Flatten()(keras.layers.Embedding(size, hp.embedding_dim)(inputs[key])))
        # A one-wide embedding is a linear term on the one-hot id: the "wide" half.
        wide_terms.append(keras.layers.Flatten()(keras.layers.Embedding(size, 1)(inputs[key])))

    deep = keras.layers.concatenate([inputs[k] for k in numeric_keys] + embeddings)
    for units in hp.hidden_units:
        deep = keras.layers.Dense(units, activation="relu")(deep)
    logit = keras.layers.add([keras.layers.Dense(1)(deep)] + wide_terms)
    # float32 output even under mixed precision, for a numerically sound loss.
    probability = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)

    model = keras.Model(inputs=inputs, outputs=probability)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hp.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="binary_accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model


def train(
    train_files: Sequence[str],
    eval_files: Sequence[str],
    tf_transform_output: tft.TFTransformOutput,
    hp: Hyperparameters,
    train_steps: int,
    eval_steps: int,
    log_dir: str | None = None,
    backup_dir: str | None = None,
    shard: tuple[int, int] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    base_model_dir: str | None = None,
) -> keras.Model:
    """Builds the model under the configured tf.distribute strategy and fits it.

    backup_dir: a BackupAndRestore directory, so a rerun after a crash resumes at the last epoch
    completed; shard: this worker's share of the input (see make_dataset); base_model_dir: a
    SavedModel whose weights the model starts from (models.warm_start.decide found it compatible).
    """
    keras.utils.set_random_seed(hp.seed)
    previous_policy = keras.mixed_precision.global_policy()
    if hp.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with make_strategy(hp.distribution_strategy, hp.replicas).scope():
            model = build_model(vocabulary_sizes(tf_transform_output), hp)
            if base_model_dir:
                warm_start.load_weights(model, base_model_dir, tf_transform_output, hp, build_model)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    # Up to ten epochs give TensorBoard a curve, exactly train_steps steps in all; validation
    # runs once, after the last.
    epochs = max(d for d in range(1, 11) if train_steps % d == 0)
    callbacks = list(callbacks)
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    if backup_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(backup_dir))
    model.fit(
        make_dataset(train_files, tf_transform_output, hp.train_batch_size, shuffle=True, seed=hp.seed, shard=shard),
        epochs=epochs,
        steps_per_epoch=train_steps // epochs,
        validation_data=make_dataset(eval_files, tf_transform_output, hp.eval_batch_size, shuffle=False, shard=shard),
        validation_steps=eval_steps,
        validation_freq=epochs,
        callbacks=callbacks,
        verbose=2,
    )
    return model


def export_serving_model(
    model: keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str,
    hp: Hyperparameters | None = None,
) -> None:
    """Saves a SavedModel whose signatures all take raw features.

    serving_default: serialized tf.Examples (no label) in, {"probabilities": [batch, 1]} out.
    transform_features: serialized tf.Examples (with the label) in, Transform's outputs out; TFMA
      calls it to get the label and the sliced features for evaluation.
    device / device_inputs: the same model on raw values with builtin TFLite ops only, and the
      tf.Example adapter to its inputs (see models/device.py; the TFLite export converts it).
    With `hp` (what shaped the model), the warm-start contract is written too (models/warm_start.py).
    """
    # Attached to the model so their assets (vocabularies) are saved with it.
    model.tft_layer_serving = tf_transform_output.transform_features_layer()
    model.tft_layer_eval = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k != features.RAW_LABEL_KEY}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = model.tft_layer_serving(tf.io.parse_example(examples, serving_spec))
        return {"probabilities": model(to_model_inputs(transformed))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return model.tft_layer_eval(tf.io.parse_example(examples, raw_spec))

    signatures = {"serving_default": serve, "transform_features": transform_features}
    signatures.update(device.make_signatures(lambda transformed: model(to_model_inputs(transformed)), tf_transform_output))
    tf.saved_model.save(model, export_dir, signatures=signatures)
    device.write_contract(export_dir, tf_transform_output)
    if hp is not None:
        warm_start.write_contract(export_dir, tf_transform_output, hp)
