"""A model server's view of a SavedModel, run by ServingCheck in a fresh `python -I` process.

Standalone on purpose: it imports TensorFlow and tensorflow_serving's protos only, and refuses to
import the project's own packages, so a model that needs the training code (a py_function, a
custom op loaded by project code) fails here as it would in TF Serving. It replays a warm-up
file (a TFRecord of PredictionLogs, TF Serving's format) against the signature each request
names, converting TensorProtos to tensors as TF Serving does, and writes a TFRecord of
PredictResponses plus a JSON line of figures.

usage: python -I server.py MODEL_DIR WARMUP_FILE RESPONSES_FILE FIGURES_FILE BLOCKED,NAMES
"""

import importlib.abc
import json
import resource
import sys
import time


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{name} is the training project's code, which a model server does not have")
        return None


def main(model_dir, warmup_file, responses_file, figures_file, blocked):
    sys.meta_path.insert(0, _Refuse(n for n in blocked.split(",") if n))
    started = time.perf_counter()
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    imported = time.perf_counter()
    model = tf.saved_model.load(model_dir)
    loaded = time.perf_counter()
    latencies = []
    with tf.io.TFRecordWriter(responses_file) as out:
        for record in tf.data.TFRecordDataset(warmup_file).as_numpy_iterator():
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            signature = model.signatures[request.model_spec.signature_name or "serving_default"]
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            begin = time.perf_counter()
            outputs = signature(**inputs)
            latencies.append(time.perf_counter() - begin)
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            out.write(response.SerializeToString())
    figures = {
        "import_seconds": imported - started,  # TensorFlow's own start-up: a model server has none
        "load_seconds": loaded - imported,
        "latencies_s": latencies,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(figures_file, "w") as f:
        json.dump(figures, f)


if __name__ == "__main__":
    main(*sys.argv[1:6])
