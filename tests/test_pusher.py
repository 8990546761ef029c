"""The Pusher publishes last and all or nothing: publish.py's staging and renames, a push killed
mid-copy, and the executor's blessing rules, on real files and real TFX artifacts."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.pusher import executor as pusher_executor, publish
from components.tflite_export.component import TFLiteModel
from tests.conftest import REPO, tree_hashes


def _files(directory: Path, **files: str) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def sources(tmp_path):
    model = _files(tmp_path / "model", **{"saved_model.pb": "graph", "variables/variables.index": "w"})
    twin = _files(tmp_path / "twin", **{"model.tflite": "flatbuffer", "metadata.json": "{}"})
    return model, twin


def test_both_forms_appear_as_one_version_and_nothing_else_is_left(sources, tmp_path):
    model, twin = sources
    serving, tflite = tmp_path / "serving" / "taxi", tmp_path / "serving" / "taxi_tflite"
    published = publish.publish("1700000000", [(str(tflite), publish.copy_tree(str(twin))),
                                               (str(serving), publish.copy_tree(str(model)))])
    assert published == [f"{tflite}/1700000000", f"{serving}/1700000000"]
    assert tree_hashes(serving / "1700000000") == tree_hashes(model)
    assert tree_hashes(tflite / "1700000000") == tree_hashes(twin)
    assert os.listdir(serving) == ["1700000000"] and os.listdir(tflite) == ["1700000000"]
    with pytest.raises(FileExistsError, match="never overwritten"):
        publish.publish("1700000000", [(str(serving), publish.copy_tree(str(twin)))])
    assert tree_hashes(serving / "1700000000") == tree_hashes(model)


@pytest.mark.parametrize("fail_in", ["the second copy", "the last rename"])
def test_a_failure_anywhere_leaves_every_destination_as_it_was(sources, tmp_path, monkeypatch, fail_in):
    model, twin = sources
    serving, tflite = tmp_path / "serving" / "taxi", tmp_path / "serving" / "taxi_tflite"
    publish.publish("1", [(str(tflite), publish.copy_tree(str(twin))), (str(serving), publish.copy_tree(str(model)))])
    before = tree_hashes(tmp_path / "serving")

    def broken_copy(target):
        raise OSError("disk full")

    writers = [(str(tflite), publish.copy_tree(str(twin))), (str(serving), publish.copy_tree(str(model)))]
    if fail_in == "the second copy":
        writers[1] = (str(serving), broken_copy)
    else:
        rename = tf.io.gfile.rename

        def rename_once(source, target, overwrite=False):
            if target.endswith(f"{serving.name}/2"):
                raise OSError("disk full")
            rename(source, target, overwrite)

        monkeypatch.setattr(tf.io.gfile, "rename", rename_once)
    with pytest.raises(OSError, match="disk full"):
        publish.publish("2", writers)
    assert tree_hashes(tmp_path / "serving") == before  # the TFLite twin of version 2 is gone again too


def test_a_push_killed_mid_copy_leaves_no_visible_version(sources, tmp_path):
    model, twin = sources
    serving = tmp_path / "serving" / "taxi"
    publish.publish("1", [(str(serving), publish.copy_tree(str(model)))])
    started = tmp_path / "started"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from components.pusher import publish
        copy = publish.copy_tree({str(model)!r})
        def slow(target):
            copy(target)
            Path({str(started)!r}).touch()
            time.sleep(60)  # killed here: the files are staged, not yet renamed
        publish.publish("2", [({str(serving)!r}, slow)])
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the push never started"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert publish.versions(str(serving)) == [1]  # what TF Serving and every reader here would see
    [leftover] = publish.leftovers(str(serving))
    assert leftover.startswith(".2.") and leftover.endswith(".partial")
    assert publish.next_version([str(serving)], now=0) == "2"


def test_a_version_is_never_reused_or_older_than_the_newest(tmp_path):
    base = tmp_path / "taxi"
    assert publish.next_version([str(base)], now=1700000000.7) == "1700000000"
    (base / "1700000000").mkdir(parents=True)
    (base / ".1700000005.ab.partial").mkdir()
    assert publish.next_version([str(base)], now=1700000000.2) == "1700000001"  # two pushes in a second
    assert publish.next_version([str(base)], now=1600000000) == "1700000001"  # a clock behind the last push
    assert publish.next_version([str(base)], now=1800000000) == "1800000000"


# --- the executor: TFX's blessing rules, the twin, the PushedModel artifact -----------------------

def _artifact(kind, uri, **ints):
    artifact = kind()
    artifact.uri = str(uri)
    for key, value in ints.items():
        artifact.set_int_custom_property(key, value)
    return artifact


def _push(tmp_path, model, twin, blessed=1, exported=1):
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serving" / "taxi")))
    (tmp_path / "blessing").mkdir(exist_ok=True)
    model_artifact = _artifact(standard_artifacts.Model, model.parent)  # <model>/Format-Serving is TFX's layout
    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    inputs = {
        "model": [model_artifact],
        "model_blessing": [_artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing", blessed=blessed)],
        "tflite_model": [_artifact(TFLiteModel, twin, exported=exported)],
    }
    properties = {"push_destination": proto_utils.proto_to_json(destination),
                  "tflite_destination": str(tmp_path / "serving" / "taxi_tflite")}
    pusher_executor.Executor().Do(inputs, {"pushed_model": [pushed]}, properties)
    return pushed


@pytest.fixture
def trained(tmp_path):
    model = _files(tmp_path / "trainer" / "Format-Serving", **{"saved_model.pb": "graph", "variables/v.index": "w"})
    twin = _files(tmp_path / "tflite", **{"model.tflite": "flatbuffer"})
    return model, twin


def test_a_blessed_model_is_published_with_its_twin_and_recorded(trained, tmp_path):
    model, twin = trained
    pushed = _push(tmp_path, model, twin)
    version = pushed.get_string_custom_property("pushed_version")
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_destination") == str(tmp_path / "serving" / "taxi" / version)
    assert pushed.get_string_custom_property("tflite_destination") == str(tmp_path / "serving" / "taxi_tflite" / version)
    assert tree_hashes(tmp_path / "serving" / "taxi" / version) == tree_hashes(model)
    assert tree_hashes(tmp_path / "serving" / "taxi_tflite" / version) == tree_hashes(twin)


def test_an_unblessed_model_is_not_published_and_says_why(trained, tmp_path):
    model, twin = trained
    pushed = _push(tmp_path, model, twin, blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0
    assert pushed.get_string_custom_property("not_pushed_reason") == "the Evaluator did not bless the model"
    assert tree_hashes(tmp_path / "serving") == {}


def test_a_blessed_model_without_its_twin_is_refused(trained, tmp_path):
    model, twin = trained
    with pytest.raises(RuntimeError, match="published with its twin or not at all"):
        _push(tmp_path, model, twin, exported=0)
    assert tree_hashes(tmp_path / "serving") == {}
