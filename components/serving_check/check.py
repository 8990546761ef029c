"""ServingCheck's logic: real eval examples as TF Serving requests, served by a fresh process,
answers checked against the model's in-process answers (what TFMA evaluates)."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

SIGNATURE = "serving_default"
INPUT_KEY = "examples"  # serving_default takes serialized tf.Examples (models/model.py)
OUTPUT_KEY = "probabilities"
TOLERANCE = 1e-5  # float32 answers of the same graph in two processes
SERVER = Path(__file__).with_name("server.py")
HANG_GUARD_SECONDS = 600.0


class ServingFailure(Exception):
    """The model cannot be served as it is: the message says why, for people."""


def project_packages() -> list[str]:
    """The training project's top-level modules and packages: what the fresh process refuses."""
    root = Path(__file__).resolve().parents[2]
    names = {p.parent.name for p in root.glob("*/__init__.py")} | {p.stem for p in root.glob("*.py")}
    return sorted(names - {"tests"})


def predict_requests(examples: Sequence[bytes], model_name: str) -> list[predict_pb2.PredictRequest]:
    """One PredictRequest per serialized example, as a client of TF Serving's REST/gRPC API sends."""
    requests = []
    for example in examples:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = SIGNATURE
        request.inputs[INPUT_KEY].CopyFrom(tf.make_tensor_proto([example], dtype=tf.string))
        requests.append(request)
    return requests


def write_warmup(requests: Sequence[predict_pb2.PredictRequest], path: str) -> None:
    """TF Serving's warm-up file: a TFRecord of PredictionLogs, replayed when a version loads."""
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_warmup(path: str) -> list[predict_pb2.PredictRequest]:
    return [prediction_log_pb2.PredictionLog.FromString(r).predict_log.request
            for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


class Server:
    """The fresh process replaying a warm-up file: started at once, its answers read by result(),
    so the caller can compute its own answers while the server starts."""

    def __init__(self, model_dir: str, warmup_file: str, workdir: str, load_timeout: float):
        self.responses_file = os.path.join(workdir, "responses.tfrecord")
        self.figures_file = os.path.join(workdir, "figures.json")
        self.load_timeout = load_timeout
        # The limit is on the model's load, as the server measures it; the process as a whole
        # (TensorFlow's import, the requests) only has a guard against a hang, since a busy machine
        # can take far longer to start Python and TensorFlow than the load itself.
        self.process_timeout = max(HANG_GUARD_SECONDS, 5 * load_timeout)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        argv = [sys.executable, "-I", str(SERVER), model_dir, warmup_file, self.responses_file, self.figures_file,
                ",".join(project_packages())]
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()

    def result(self) -> tuple[list, dict]:
        """Its PredictResponses and figures; raises ServingFailure when it failed or ran too long."""
        try:
            _, stderr = self.process.communicate(timeout=max(0.0, self.started + self.process_timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            raise ServingFailure(f"the serving process did not finish within {self.process_timeout:g} s") from None
        if self.process.returncode != 0:
            lines = [line for line in stderr.splitlines() if line.strip()]
            raise ServingFailure(f"a model server could not serve it (exit {self.process.returncode}): "
                                 f"{lines[-1] if lines else 'no message'}")
        responses = [predict_pb2.PredictResponse.FromString(r)
                     for r in tf.data.TFRecordDataset(self.responses_file).as_numpy_iterator()]
        with open(self.figures_file) as f:
            measured = json.load(f)
        if measured["load_seconds"] > self.load_timeout:
            raise ServingFailure(f"the model took {measured['load_seconds']:.1f} s to load, more than the "
                                 f"{self.load_timeout:g} s allowed (--serving-load-timeout)")
        return responses, measured


def serve(model_dir: str, warmup_file: str, workdir: str, load_timeout: float) -> tuple[list, dict]:
    """Replays the warm-up file in a fresh `python -I` process (no PYTHONPATH, no project code);
    returns its PredictResponses and figures, or raises ServingFailure."""
    return Server(model_dir, warmup_file, workdir, load_timeout).result()


def judge(requests: Sequence[predict_pb2.PredictRequest], responses: Sequence[predict_pb2.PredictResponse],
          expected: np.ndarray) -> None:
    """Raises ServingFailure unless every request got `probabilities` float32 [1, 1] in [0, 1] equal
    to the in-process answer for its example."""
    if len(responses) != len(requests):
        raise ServingFailure(f"{len(responses)} answers to {len(requests)} requests")
    for i, response in enumerate(responses):
        if OUTPUT_KEY not in response.outputs:
            raise ServingFailure(f"request {i}: no {OUTPUT_KEY!r} output (got {sorted(response.outputs)})")
        answer = tf.make_ndarray(response.outputs[OUTPUT_KEY])
        if answer.dtype != np.float32 or answer.shape != (1, 1):
            raise ServingFailure(f"request {i}: {OUTPUT_KEY} is {answer.dtype} {list(answer.shape)}, not float32 [1, 1]")
        value = float(answer[0, 0])
        if not 0.0 <= value <= 1.0:  # NaN fails this too
            raise ServingFailure(f"request {i}: probability {value} outside [0, 1]")
        if abs(value - float(expected[i])) > TOLERANCE:
            raise ServingFailure(f"request {i}: served {value:.6f}, the model in process answers {float(expected[i]):.6f}")


def figures(measured: dict, requests: int) -> dict:
    latencies_ms = np.array(measured["latencies_s"]) * 1000
    return {
        "load_seconds": float(measured["load_seconds"]),
        "latency_p50_ms": float(np.percentile(latencies_ms, 50)),
        "latency_p99_ms": float(np.percentile(latencies_ms, 99)),
        "peak_rss_mb": float(measured["peak_rss_mb"]),
        "requests": requests,
    }


def in_process_answers(model_dir: str, examples: Sequence[bytes]) -> np.ndarray:
    serve_fn = tf.saved_model.load(model_dir).signatures[SIGNATURE]
    return serve_fn(**{INPUT_KEY: tf.constant(list(examples))})[OUTPUT_KEY].numpy().reshape(-1)
