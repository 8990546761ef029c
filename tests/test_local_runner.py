"""The local runner's own decisions: where the schema is staged, and where everything lives."""

from pathlib import Path

import local_runner
from pipeline.beam import DirectBeam
from pipeline.locations import OutputDir
from pipeline.schemas import CURATED_SCHEMA, stage_schema


def test_the_staged_schema_path_follows_its_content(tmp_path):
    output = OutputDir(tmp_path / "out")
    staged = stage_schema(output.pipeline_root)
    assert staged.read_bytes() == CURATED_SCHEMA.read_bytes()
    assert stage_schema(output.pipeline_root) == staged  # same content, same path: the cache holds

    edited = tmp_path / "schema.pbtxt"
    edited.write_text(CURATED_SCHEMA.read_text() + "\n# reviewed again\n")
    restaged = stage_schema(output.pipeline_root, edited)
    assert restaged != staged and restaged.read_bytes() == edited.read_bytes()
    assert restaged.is_relative_to(output.pipeline_root)


def test_a_local_run_keeps_all_its_state_under_the_output_dir(tmp_path):
    out = tmp_path / "out"
    where = local_runner.locations(OutputDir(out), None, DirectBeam("in_memory"))
    for path in (where.pipeline_root, where.serving_dir, where.metadata.sqlite, where.serving_model_dir("taxi"),
                 where.tflite_serving_dir("taxi")):
        assert Path(path).is_relative_to(out), path
    assert where.serving_model_dir("taxi") == str(out / "serving" / "taxi")
    assert where.tflite_serving_dir("taxi") == str(out / "serving" / "taxi_tflite")
    assert list(where.beam_args) == ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
                                     "--direct_num_workers=1"]
