"""The project's CsvExampleGen executor: TFX's examples and splits, without holding the data in memory.

Each test runs the real executor (and TFX's own, to compare) on Beam's FnApiRunner over CSV files
written to a temporary directory.
"""

import csv
import json

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from tfx.components.example_gen import utils as example_gen_utils, write_split
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from benchmarks.example_gen import run_executor
from components.example_gen import executor as project_executor
from tests.conftest import local_locations

IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]
MULTI_PROCESSING = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
HEADER = ["row", "fare", "company", "note"]


def write_csv(data_dir, files=2, rows_per_file=300):
    """Rows numbered in file order; an int, a float, a string with empty cells, a quoted multi-line field."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        with (data_dir / f"part-{f}.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(HEADER)
            for i in range(rows_per_file):
                row = f * rows_per_file + i
                writer.writerow([row, f"{row * 0.25:.2f}", "" if row % 7 == 0 else f"c{row % 5}",
                                 "two\nlines" if row % 50 == 0 else ("" if row % 3 == 0 else "x")])
    return files * rows_per_file


def read_split(examples, split):
    """The split's records, file by file (sorted by name), each file in its written order."""
    files = sorted(tf.io.gfile.glob(artifact_utils.get_split_uri([examples], split) + "/*"))
    assert files, f"no files in split {split}"
    return [r.numpy() for f in files for r in tf.data.TFRecordDataset(f, compression_type="GZIP")]


def canonical(record):
    return tf.train.Example.FromString(record).SerializeToString(deterministic=True)


def row_of(record):
    return tf.train.Example.FromString(record).features.feature["row"].int64_list.value[0]


@pytest.mark.parametrize("beam_args", [IN_MEMORY, MULTI_PROCESSING], ids=["in_memory", "multi_processing"])
def test_the_examples_and_their_split_are_tfx_own(tmp_path, beam_args):
    rows = write_csv(tmp_path / "data")
    ours = run_executor(project_executor.Executor, beam_args, tmp_path / "data", tmp_path / "ours")
    theirs = run_executor(tfx_csv_executor.Executor, beam_args, tmp_path / "data", tmp_path / "tfx")

    assert artifact_utils.decode_split_names(ours.split_names) == ["train", "eval"]
    assert ours.split_names == theirs.split_names
    for key in ("payload_format", "file_format"):
        assert ours.get_string_custom_property(key) == theirs.get_string_custom_property(key) != ""
    total = 0
    for split in ("train", "eval"):
        mine = sorted(map(canonical, read_split(ours, split)))
        assert mine == sorted(map(canonical, read_split(theirs, split))), f"split {split} differs from TFX's"
        total += len(mine)
    assert total == rows
    first = tf.train.Example.FromString(read_split(ours, "train")[0]).features.feature
    assert first["row"].HasField("int64_list") and first["fare"].HasField("float_list")
    assert first["company"].HasField("bytes_list") and first["note"].HasField("bytes_list")
    notes = {v for r in read_split(ours, "train") + read_split(ours, "eval")
             for v in tf.train.Example.FromString(r).features.feature["note"].bytes_list.value}
    assert b"two\nlines" in notes  # the quoted multi-line field read as one cell


def test_on_the_in_process_runner_each_file_is_written_in_its_own_order(tmp_path):
    write_csv(tmp_path / "data", files=1, rows_per_file=2000)
    examples = run_executor(project_executor.Executor, MULTI_PROCESSING, tmp_path / "data", tmp_path / "ours")
    rows = [row_of(r) for r in read_split(examples, "train")]
    assert len(rows) > 1000 and rows == sorted(rows)


def test_beams_in_process_reshuffle_keeps_the_input_order(tmp_path):
    """Why the executor drops TFX's Reshuffle on FnApiRunner: there it shuffles nothing (it only holds
    every element in memory and deals them out to the workers). Should this fail after a Beam
    upgrade, the Reshuffle does shuffle there now: reconsider dropping it (executor.py)."""
    out = tmp_path / "order"

    class Numbers(beam.DoFn):
        def process(self, n):
            yield from range(n)

    with beam.Pipeline(options=PipelineOptions(MULTI_PROCESSING)) as p:
        (p | beam.Create([5000]) | beam.ParDo(Numbers()) | beam.Reshuffle()
           | beam.Map(str) | beam.io.WriteToText(str(out)))
    shards = sorted(tmp_path.glob("order*"))
    values = [[int(line) for line in shard.read_text().split()] for shard in shards]
    assert sum(map(len, values)) == 5000
    assert all(v == sorted(v) for v in values), "the Reshuffle reordered elements"


# --- the shape of the Beam pipeline: what a runner must hold ---------------------------------------

class _Graph(beam.pipeline.PipelineVisitor):
    def __init__(self):
        self.leaves = []

    def visit_transform(self, applied):
        self.leaves.append(applied)


def graph(executor_class, beam_args, data_dir, out_dir):
    """The leaf transforms of the executor's Beam pipeline, built and not run."""
    executor = executor_class(BaseBeamExecutor.Context(beam_pipeline_args=beam_args))
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    executor._examples = [examples]
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(data_dir),
        standard_component_specs.INPUT_CONFIG_KEY: json.dumps({"splits": [{"name": "single_split", "pattern": "*.csv"}]}),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_utils.make_default_output_config(example_gen_pb2.Input())),
    }
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    for name, split in executor.GenerateExamplesByBeam(pipeline, exec_properties).items():
        # What BaseExampleGenExecutor.Do does with the splits it is handed.
        split | f"WriteSplit[{name}]" >> write_split.WriteSplit(str(out_dir / name), "tfrecords_gzip")
    visitor = _Graph()
    pipeline.visit(visitor)
    return visitor.leaves


def held_in_memory(leaves):
    """What FnApiRunner would hold whole on the way from the CSV lines to the files: a GroupByKey, or
    a step that waits for a side input computed from that same data."""
    producer = {out: t for t in leaves for out in t.outputs.values()}

    def ancestry(pcolls, with_side_inputs=True):
        seen, stack = [], list(pcolls)
        while stack:
            t = producer.get(stack.pop())
            if t is not None and t not in seen:
                seen.append(t)
                stack.extend(t.main_inputs.values())
                stack.extend(s.pvalue for s in t.side_inputs if with_side_inputs)
        return seen

    found = set()
    for write in (t for t in leaves if t.full_label.endswith("WriteImpl/WriteBundles")):
        # The file names' Create (a handful of elements) is not the data.
        data_path = [t for t in ancestry(write.main_inputs.values(), with_side_inputs=False)
                     if "CreateFilenames" not in t.full_label]
        for t in data_path:
            if isinstance(t.transform, beam.GroupByKey):
                found.add(f"{write.full_label}: fed through {t.full_label}")
            for side in t.side_inputs:
                if set(ancestry([side.pvalue])) & set(data_path):
                    found.add(f"{t.full_label}: waits for a side input computed from its own input")
    return sorted(found)


def test_tfx_own_executor_holds_the_data_set_where_the_projects_does_not(tmp_path):
    write_csv(tmp_path / "data", files=1, rows_per_file=10)
    theirs = held_in_memory(graph(tfx_csv_executor.Executor, MULTI_PROCESSING, tmp_path / "data", tmp_path / "tfx"))
    assert any("ToTFExample" in line for line in theirs), theirs
    assert any("Shuffle" in line for line in theirs), theirs
    assert held_in_memory(graph(project_executor.Executor, MULTI_PROCESSING, tmp_path / "data", tmp_path / "ours")) == []


@pytest.mark.parametrize("args, in_process", [
    ([], True), (["--runner=DirectRunner"], True), (["--runner", "direct"], True), (IN_MEMORY, True),
    (["--runner=FlinkRunner"], False), (["--runner=SparkRunner"], False), (["--runner=DataflowRunner"], False),
    (["--runner=PrismRunner"], False),  # not run here: TFX's way, Reshuffle and all
])
def test_which_runners_run_in_this_process(args, in_process):
    assert project_executor.runs_in_process(args) is in_process


def test_on_another_runner_tfx_write_split_and_its_shuffle_stay(tmp_path):
    write_csv(tmp_path / "data", files=1, rows_per_file=10)
    flink = ["--runner=FlinkRunner", "--flink_master=127.0.0.1:1"]
    found = held_in_memory(graph(project_executor.Executor, flink, tmp_path / "data", tmp_path / "ours"))
    assert found and all("Shuffle" in line for line in found), found


def test_the_pipelines_use_the_project_executor_under_tfx_node_id(tmp_path):
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_pipeline, create_schema_pipeline

    for pipeline in (create_pipeline(PipelineConfig(), local_locations(tmp_path)),
                     create_schema_pipeline(PipelineConfig(), local_locations(tmp_path))):
        [node] = [c for c in pipeline.components if c.id == "CsvExampleGen"]
        assert node.executor_spec.executor_class is project_executor.Executor
