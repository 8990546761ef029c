"""The local runner's own decisions: where the schema is staged."""


import local_runner
from pipeline.config import PipelineConfig
from pipeline.pipeline import CURATED_SCHEMA


def test_the_staged_schema_path_follows_its_content(tmp_path):
    config = PipelineConfig(output_dir=tmp_path / "out")
    staged = local_runner.stage_schema(config)
    assert staged.read_bytes() == CURATED_SCHEMA.read_bytes()
    assert local_runner.stage_schema(config) == staged  # same content, same path: the cache holds

    edited = tmp_path / "schema.pbtxt"
    edited.write_text(CURATED_SCHEMA.read_text() + "\n# reviewed again\n")
    restaged = local_runner.stage_schema(config, edited)
    assert restaged != staged and restaged.read_bytes() == edited.read_bytes()
    assert restaged.is_relative_to(config.pipeline_root)
