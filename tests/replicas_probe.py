"""Run as a fresh process by tests/test_distribute.py: logical CPU devices need a TF runtime not yet
initialised. Prints one JSON line: per-replica batch sizes, and the weights trained on 1 and N replicas."""

import json
import sys

import models  # noqa: F401  (tf_keras, before TensorFlow)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import model

transform_output, examples, replicas, batch, steps = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
model.split_cpu(replicas)
tft_output = tft.TFTransformOutput(transform_output)
hp = model.Hyperparameters(train_batch_size=batch, eval_batch_size=batch, hidden_units=(8,), embedding_dim=2)

strategy = model.make_strategy("mirrored", replicas)
dataset = strategy.experimental_distribute_dataset(model.make_dataset([examples], tft_output, batch, shuffle=False))
features, labels = next(iter(dataset))
per_replica = [int(t.shape[0]) for t in strategy.experimental_local_results(labels)]
devices = [t.device for t in strategy.experimental_local_results(labels)]

weights = {}
for n in (1, replicas):
    trained = model.train([examples], [examples], tft_output, model.Hyperparameters(**{**hp.to_dict(), "replicas": n}),
                          train_steps=steps, eval_steps=1)
    assert trained.distribute_strategy.num_replicas_in_sync == n, (n, trained.distribute_strategy.extended.worker_devices)
    weights[n] = [w.tolist() for w in trained.get_weights()]
print(json.dumps({"replicas_in_sync": strategy.num_replicas_in_sync, "per_replica": per_replica, "devices": devices,
                  "weights_1": weights[1], "weights_n": weights[replicas]}))
