"""Warm start on small artifacts: run_fn starts from the base model's weights when its contract
matches, and falls back to a cold start, with the reason, when it does not (a few seconds each)."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow_transform as tft
import tf_keras
from tfx.components.trainer.fn_args_utils import FnArgs

from models import features, model, trainer, warm_start

TINY = model.Hyperparameters(train_batch_size=4, eval_batch_size=4, hidden_units=(8,), embedding_dim=2)


class FirstStepWeights(tf_keras.callbacks.Callback):
    """The model's weights as fit starts, before its first step."""

    weights = None

    def on_train_begin(self, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]


@pytest.fixture(scope="module")
def base(transformed, tmp_path_factory):
    """A model trained 20 steps with another seed than TINY's (so a fresh TINY init differs), exported."""
    _, tft_output, examples = transformed
    hp = model.Hyperparameters(**{**TINY.to_dict(), "seed": 11})
    trained = model.train([examples], [examples], tft_output, hp, train_steps=20, eval_steps=1)
    export_dir = str(tmp_path_factory.mktemp("base") / "Format-Serving")
    model.export_serving_model(trained, tft_output, export_dir, TINY)
    return export_dir, trained.get_weights()


def transform_dir(transformed) -> str:
    """The transform output the `transformed` fixture wrote, beside its examples."""
    return os.path.join(os.path.dirname(os.path.dirname(transformed[2])), "transform_output")


def run_fn_args(transformed, tmp_path, base_model: str | None, tft_output_dir: str | None = None,
                train_steps: int = 1) -> FnArgs:
    _, tft_output, examples = transformed
    return FnArgs(
        train_files=[examples], eval_files=[examples], train_steps=train_steps, eval_steps=1,
        transform_output=tft_output_dir or transform_dir(transformed),
        serving_model_dir=str(tmp_path / "model" / "Format-Serving"), model_run_dir=str(tmp_path / "model_run"),
        base_model=base_model,
        custom_config={trainer.HYPERPARAMETERS_KEY: TINY.to_dict(), trainer.WARM_START_KEY: True},
    )


def test_a_warm_start_begins_at_the_base_models_weights(transformed, base):
    _, tft_output, examples = transformed
    base_dir, base_weights = base
    start_from, line = warm_start.decide(base_dir, tft_output, TINY)
    assert start_from == base_dir and line == f"warm_start: from {base_dir}"
    first = FirstStepWeights()
    model.train([examples], [examples], tft_output, TINY, train_steps=1, eval_steps=1,
                base_model_dir=start_from, callbacks=[first])
    cold = FirstStepWeights()
    model.train([examples], [examples], tft_output, TINY, train_steps=1, eval_steps=1, callbacks=[cold])
    assert len(first.weights) == len(base_weights)
    for warm, expected in zip(first.weights, base_weights):
        np.testing.assert_array_equal(warm, expected)
    # A fresh init is not the base model: the comparison above can tell them apart.
    assert any(not np.array_equal(c, b) for c, b in zip(cold.weights, base_weights))


def test_run_fn_warm_starts_and_records_why(transformed, base, tmp_path):
    base_dir, base_weights = base
    args = run_fn_args(transformed, tmp_path, base_dir, train_steps=1)
    trainer.run_fn(args)
    model_dir = os.path.dirname(args.serving_model_dir)
    assert warm_start.read_decision(model_dir) == f"warm_start: from {base_dir}"
    # One Adam step moves each weight by at most about the learning rate: the exported model is
    # the base model's weights, one step on.
    _, tft_output, _ = transformed
    exported = model.build_model(model.vocabulary_sizes(tft_output), TINY)
    warm_start.load_weights(exported, args.serving_model_dir, tft_output, TINY, model.build_model)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(exported.get_weights(), base_weights))
    assert 0 < moved <= 1.5 * TINY.learning_rate
    # ...and it can be a base in turn.
    assert os.path.exists(os.path.join(args.serving_model_dir, "assets.extra", warm_start.CONTRACT_FILE))


def test_no_blessed_model_yet_is_a_cold_start(transformed, tmp_path):
    args = run_fn_args(transformed, tmp_path, None)
    trainer.run_fn(args)
    assert warm_start.read_decision(os.path.dirname(args.serving_model_dir)) == "cold: no blessed model yet"


@pytest.fixture
def other_vocabulary(transformed, tmp_path):
    """This run's transform output with one more company term: another vocabulary, same size rules."""
    _, tft_output, _ = transformed
    copy = tmp_path / "transform_output"
    shutil.copytree(transform_dir(transformed), copy)
    vocabulary = tft.TFTransformOutput(str(copy)).vocabulary_file_by_name("company")
    with open(vocabulary, "a") as f:
        f.write("A Company Never Seen Before\n")
    return str(copy)


def base_in_memory(tft_output, base_weights):
    """The base model rebuilt from its trained weights, without the code under test."""
    rebuilt = model.build_model(model.vocabulary_sizes(tft_output), TINY)
    rebuilt.set_weights(base_weights)
    return rebuilt


def a_batch(transformed):
    _, tft_output, examples = transformed
    inputs, _ = next(iter(model.make_dataset([examples], tft_output, 64, shuffle=False)))
    return {key: value.numpy() for key, value in inputs.items()}


def test_a_changed_vocabulary_carries_each_terms_rows_over(transformed, base, other_vocabulary, tmp_path):
    """One company term more: the same terms keep their rows, the new one starts fresh, and the
    model answers as the base model did on the same examples."""
    _, tft_output, _ = transformed
    base_dir, base_weights = base
    args = run_fn_args(transformed, tmp_path, base_dir, tft_output_dir=other_vocabulary)
    trainer.run_fn(args)
    line = warm_start.read_decision(os.path.dirname(args.serving_model_dir))
    terms = tft.TFTransformOutput(other_vocabulary).vocabulary_size_by_name("company")
    assert line == f"warm_start: from {base_dir} (rows carried over by term: company {terms - 1}/{terms} terms)"
    changed = tft.TFTransformOutput(other_vocabulary)
    warm = model.build_model(model.vocabulary_sizes(changed), TINY)
    warm_start.load_weights(warm, base_dir, changed, TINY, model.build_model)
    batch = a_batch(transformed)
    company = features.transformed_name("company")
    # The out-of-vocabulary id moved up by one (the new term took its place): follow it.
    batch_here = {**batch, company: np.where(batch[company] == terms - 1, terms, batch[company])}
    np.testing.assert_allclose(warm(batch_here).numpy(), base_in_memory(tft_output, base_weights)(batch).numpy(),
                               rtol=1e-6)


def test_a_reordered_vocabulary_maps_rows_by_term(transformed, base, tmp_path):
    """Same terms, other ids: each term's rows follow it, so the model's answers do not change."""
    _, tft_output, _ = transformed
    base_dir, base_weights = base
    copy = tmp_path / "transform_output"
    shutil.copytree(transform_dir(transformed), copy)
    path = tft.TFTransformOutput(str(copy)).vocabulary_file_by_name("payment_type")
    with open(path) as f:
        terms = f.read().splitlines()
    assert len(terms) > 1
    with open(path, "w") as f:
        f.write("\n".join(reversed(terms)) + "\n")
    reordered = tft.TFTransformOutput(str(copy))
    start_from, line = warm_start.decide(base_dir, reordered, TINY)
    assert start_from == base_dir and line == f"warm_start: from {base_dir} (rows carried over by term: payment_type reordered)"
    warm = model.build_model(model.vocabulary_sizes(reordered), TINY)
    warm_start.load_weights(warm, base_dir, reordered, TINY, model.build_model)
    batch = a_batch(transformed)
    key, n = features.transformed_name("payment_type"), len(terms)
    assert len(set(batch[key].ravel())) > 1  # the batch tells the terms apart
    # The ids this vocabulary gives the same examples: reversed, the out-of-vocabulary id kept.
    batch_here = {**batch, key: np.where(batch[key] < n, n - 1 - batch[key], batch[key])}
    base_answers = base_in_memory(tft_output, base_weights)(batch).numpy()
    np.testing.assert_allclose(warm(batch_here).numpy(), base_answers, rtol=1e-6)
    # Without the mapping (rows kept by id) the answers would differ: the test can tell.
    by_id = base_in_memory(tft_output, base_weights)
    assert not np.allclose(by_id(batch_here).numpy(), base_answers)


def test_a_contract_without_the_terms_is_a_cold_start_when_a_vocabulary_changed(transformed, base, other_vocabulary,
                                                                                tmp_path):
    base_dir, _ = base
    early = tmp_path / "early"
    shutil.copytree(base_dir, early)
    path = early / "assets.extra" / warm_start.CONTRACT_FILE
    written = json.loads(path.read_text())
    for vocab in written["vocabularies"].values():
        del vocab["values"]
    path.write_text(json.dumps(written))
    start_from, line = warm_start.decide(str(early), tft.TFTransformOutput(other_vocabulary), TINY)
    assert start_from is None
    assert line.startswith("cold: vocabulary of company differs") and "does not list its terms" in line


def test_another_architecture_or_an_old_model_is_a_cold_start(transformed, base, tmp_path):
    _, tft_output, _ = transformed
    base_dir, _ = base
    wider = model.Hyperparameters(**{**TINY.to_dict(), "hidden_units": (16,)})
    start_from, line = warm_start.decide(base_dir, tft_output, wider)
    assert start_from is None and line.startswith("cold: architecture differs")
    old = tmp_path / "old"
    shutil.copytree(base_dir, old)
    os.remove(old / "assets.extra" / warm_start.CONTRACT_FILE)
    start_from, line = warm_start.decide(str(old), tft_output, TINY)
    assert start_from is None and "no warm-start contract" in line


def test_the_contract_names_every_categorical_vocabulary(transformed):
    _, tft_output, _ = transformed
    assert set(warm_start.contract(tft_output, TINY)["vocabularies"]) == set(features.CATEGORICAL_FEATURE_KEYS)


# --- the graph: what --warm-start changes, and what the default keeps ---------------------------

def graph(warm: bool, tmp_path) -> dict:
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_pipeline
    from tests.conftest import local_locations

    pipeline = create_pipeline(PipelineConfig(warm_start=warm), local_locations(tmp_path))
    return {n.id: n for n in pipeline.components}


def test_warm_start_feeds_the_trainer_and_the_evaluator_from_one_resolver_without_a_cycle(tmp_path):
    from pipeline import resolvers

    cold, warm = graph(False, tmp_path / "cold"), graph(True, tmp_path / "warm")
    assert set(warm) == set(cold) and len(warm) == 13  # the same nodes: the baseline resolver moved
    resolver = warm[resolvers.BASELINE_MODEL_ID]
    base = warm["Trainer"].inputs["base_model"]
    assert base.producer_component_id == resolver.id
    assert warm["Evaluator"].inputs["baseline_model"].producer_component_id == resolver.id
    # The resolver reads no output of this run's Trainer (that would be a cycle).
    assert "Trainer" not in {up.id for up in resolver.upstream_nodes}
    assert json.loads(warm["Trainer"].exec_properties["custom_config"])[trainer.WARM_START_KEY] is True


def test_the_default_graph_has_no_base_model(tmp_path):
    cold = graph(False, tmp_path)
    assert "base_model" not in cold["Trainer"].inputs
    assert trainer.WARM_START_KEY not in json.loads(cold["Trainer"].exec_properties["custom_config"])
    assert "Trainer" in {up.id for up in cold["latest_blessed_model_resolver"].upstream_nodes}


# --- end to end: two --warm-start runs on one store (slow: two small pipeline runs) -------------

@pytest.mark.slow
@pytest.mark.e2e
def test_a_second_warm_start_run_trains_from_the_first_runs_blessed_model_and_is_judged_against_it(tmp_path):
    from data import taxi
    from tests.conftest import latest_summary, run_cli

    data_dir = taxi.write_sample(tmp_path / "data", rows=600)
    out = tmp_path / "out"
    first = run_cli(out, data_dir, "--warm-start")
    first_run = latest_summary(out)
    first_model = first_run.output("Trainer", "model")
    assert first_model.properties["warm_start"] == "cold: no blessed model yet"
    assert "Warm start:    cold: no blessed model yet" in first.stdout
    assert first_run.output("Evaluator", "blessing").properties["blessed"] == 1

    second = run_cli(out, data_dir, "--warm-start")
    run = latest_summary(out)
    assert run.run_id != first_run.run_id
    # The same data: Transform comes from the cache; the Trainer runs, from the first model's weights.
    assert run.states()["Transform"] == "CACHED" and run.states()["Trainer"] == "COMPLETE"
    base_dir = f"{first_model.uri}/Format-Serving"
    assert run.output("Trainer", "model").properties["warm_start"] == f"warm_start: from {base_dir}"
    assert f"Warm start:    from {base_dir}" in second.stdout
    trainer_inputs, evaluator_inputs = run.execution("Trainer").inputs, run.execution("Evaluator").inputs
    assert [a.id for a in trainer_inputs["base_model"]] == [first_model.id]
    assert [a.id for a in evaluator_inputs["baseline_model"]] == [first_model.id]
