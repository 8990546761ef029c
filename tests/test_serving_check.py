"""ServingCheck: the candidate served by a fresh process that has TensorFlow and not this
project's code, with TF Serving's own request protos (tensorflow-serving-api), on real models:
the taxi model passes; models a model server cannot serve, or that answer wrongly, are refused."""

import os
import time

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.serving_check import check, executor as serving_executor
from components.serving_check.options import WARMUP_FILE
from tests.conftest import REPO


@pytest.fixture(scope="module")
def served(taxi_model, tmp_path_factory):
    export_dir, _, _, eval_examples = taxi_model
    workdir = tmp_path_factory.mktemp("served")
    requests = check.predict_requests(eval_examples[:40], "taxi")
    warmup = str(workdir / WARMUP_FILE)
    check.write_warmup(requests, warmup)
    responses, measured = check.serve(export_dir, warmup, str(workdir), load_timeout=120)
    return export_dir, eval_examples[:40], requests, warmup, responses, measured


def test_the_taxi_model_answers_tf_serving_requests_as_it_does_in_process(served):
    export_dir, examples, requests, _, responses, measured = served
    check.judge(requests, responses, check.in_process_answers(export_dir, examples))
    answers = np.array([tf.make_ndarray(r.outputs["probabilities"])[0, 0] for r in responses])
    assert answers.shape == (40,) and 0 < answers.min() < answers.max() < 1  # real, varied answers
    figures = check.figures(measured, len(requests))
    assert figures["requests"] == 40 and figures["load_seconds"] > 0 and figures["peak_rss_mb"] > 100
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"]


def test_the_warm_up_file_is_tf_servings_format_and_holds_the_eval_examples(served):
    _, examples, _, warmup, _, _ = served
    # Parsed with TF Serving's protos alone: a TFRecord of PredictionLog{predict_log{request}}.
    from tensorflow_serving.apis import prediction_log_pb2
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(warmup).as_numpy_iterator()]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 40
    request = logs[3].predict_log.request
    assert request.model_spec.name == "taxi" and request.model_spec.signature_name == "serving_default"
    assert list(tf.make_ndarray(request.inputs["examples"])) == [examples[3]]


def test_the_fresh_process_cannot_import_the_project(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda examples: {"probabilities": tf.fill([tf.shape(examples)[0], 1], 0.5)},
                           input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.f})
    warmup = str(tmp_path / WARMUP_FILE)
    check.write_warmup(check.predict_requests([b"x"], "taxi"), warmup)
    server = REPO / "components" / "serving_check" / "server.py"
    probe = tmp_path / "probe.py"  # the server's own refusal, tried on an import of the project
    probe.write_text(server.read_text().replace("    import tensorflow as tf\n", "    import tensorflow as tf\n    import models\n", 1))
    check.SERVER, saved = probe, check.SERVER
    try:
        with pytest.raises(check.ServingFailure, match="models is the training project's code"):
            check.serve(str(tmp_path / "m"), warmup, str(tmp_path), load_timeout=120)
    finally:
        check.SERVER = saved
    assert {"models", "components", "pipeline", "cli"} <= set(check.project_packages())


def _model(tmp_path, name, fn):
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    path = str(tmp_path / name)
    tf.saved_model.save(module, path, signatures={"serving_default": module.f})
    return path


def _training_code_probability(examples):
    from models import features  # the training project's code, called from inside the graph
    return np.full((len(examples), 1), len(features.LABEL_KEY) / 100, np.float32)


@pytest.mark.parametrize("name, fn, message", [
    ("py_function", lambda e: {"probabilities": tf.py_function(_training_code_probability, [e], tf.float32)},
     "a model server could not serve it"),
    ("float64", lambda e: {"probabilities": tf.fill([tf.shape(e)[0], 1], tf.constant(0.5, tf.float64))},
     "probabilities is float64 \\[1, 1\\], not float32"),
    ("logits", lambda e: {"probabilities": tf.fill([tf.shape(e)[0], 1], 3.0)}, "probability 3.0 outside \\[0, 1\\]"),
    ("other_name", lambda e: {"scores": tf.fill([tf.shape(e)[0], 1], 0.5)}, "no 'probabilities' output"),
])
def test_a_model_a_server_cannot_serve_or_that_answers_wrongly_is_refused(tmp_path, name, fn, message):
    path = _model(tmp_path, name, fn)
    warmup = str(tmp_path / WARMUP_FILE)
    requests = check.predict_requests([b"a", b"b"], "taxi")
    check.write_warmup(requests, warmup)
    with pytest.raises(check.ServingFailure, match=message):
        responses, _ = check.serve(path, warmup, str(tmp_path), load_timeout=120)
        check.judge(requests, responses, np.array([0.5, 0.5]))


def test_answers_that_differ_from_the_model_in_process_are_refused(served):
    _, _, requests, _, responses, _ = served
    with pytest.raises(check.ServingFailure, match="request 0: served 0.\\d+, the model in process answers"):
        check.judge(requests, responses, np.full(len(requests), 2.0))


def test_a_model_that_does_not_load_in_time_is_refused(served, tmp_path):
    export_dir, _, _, warmup, _, _ = served
    with pytest.raises(check.ServingFailure, match=r"the model took \d+\.\d s to load, more than the 0.001 s allowed"):
        check.serve(export_dir, warmup, str(tmp_path), load_timeout=0.001)


def test_a_serving_process_that_hangs_is_stopped(served, tmp_path, monkeypatch):
    export_dir, _, _, warmup, _, _ = served
    monkeypatch.setattr(check, "HANG_GUARD_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(check.ServingFailure, match="the serving process did not finish within 0.5 s"):
        check.serve(export_dir, warmup, str(tmp_path), load_timeout=0.001)
    assert time.monotonic() - started < 30


# --- the executor: real TFX artifacts ---------------------------------------------------------------

def _run_executor(tmp_path, model_dir, examples, blessed=1):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    os.makedirs(model.uri)
    os.symlink(model_dir, os.path.join(model.uri, "Format-Serving"))
    split = tmp_path / "examples" / "Split-eval"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as w:
        for example in examples:
            w.write(example)
    example_artifact = standard_artifacts.Examples()
    example_artifact.uri = str(tmp_path / "examples")
    evaluator = standard_artifacts.ModelBlessing()
    evaluator.set_int_custom_property("blessed", blessed)
    out = standard_artifacts.InfraBlessing()
    out.uri = str(tmp_path / "blessing")
    serving_executor.Executor().Do(
        {"model": [model], "examples": [example_artifact], "model_blessing": [evaluator]}, {"blessing": [out]},
        {"model_name": "taxi", "load_timeout": 120.0, "requests": 20})
    return out


def test_the_executor_blesses_a_servable_model_and_keeps_its_warm_up_file(taxi_model, tmp_path):
    export_dir, _, _, eval_examples = taxi_model
    out = _run_executor(tmp_path, export_dir, eval_examples[:30])
    assert out.get_int_custom_property("blessed") == 1, out.get_string_custom_property("reason")
    assert out.get_int_custom_property("requests") == 20
    assert len(check.read_warmup(os.path.join(out.uri, WARMUP_FILE))) == 20
    assert os.path.exists(os.path.join(out.uri, "INFRA_BLESSED"))


def test_the_executor_refuses_a_model_calling_training_code_and_keeps_no_warm_up(taxi_model, tmp_path):
    _, _, _, eval_examples = taxi_model
    path = _model(tmp_path, "py_function",
                  lambda e: {"probabilities": tf.py_function(_training_code_probability, [e], tf.float32)})
    out = _run_executor(tmp_path, path, eval_examples[:5])
    assert out.get_int_custom_property("blessed") == 0
    assert out.get_string_custom_property("reason").startswith("a model server could not serve it (exit 1): ")
    assert not os.path.exists(os.path.join(out.uri, WARMUP_FILE))


def test_an_unblessed_model_is_not_checked(taxi_model, tmp_path):
    export_dir, _, _, eval_examples = taxi_model
    out = _run_executor(tmp_path, export_dir, eval_examples[:5], blessed=0)
    assert out.get_int_custom_property("blessed") == 0
    assert out.get_string_custom_property("reason") == "not checked: the Evaluator did not bless the model"
