"""TFX's CsvExampleGen executor, rearranged so no runner has to hold the data set in memory.

TFX's CSV reader feeds the parsed lines both to the column-type inference (a CombineGlobally) and,
with the inferred types as a side input, to the tf.Example conversion; so every parsed line waits
in the runner until the inference has seen the last one. Its WriteSplit then reshuffles each split
before writing. Beam's in-process runner (FnApiRunner, the direct runner) keeps both in the
pipeline process's memory, which grows with the rows until the machine runs out; and there its
Reshuffle keeps the input order, so it shuffles nothing (tests/test_example_gen.py shows both).

Here each CSV file is read twice instead: once for the types (combined as they are read), once for
the examples; and on the in-process runner each split is written without the Reshuffle. The
examples, their types and their split are TFX's own (its line reader, parser, type inferrer,
converter and partition). On every other runner the Reshuffle stays: there it shuffles, and
spills to disk.
"""

import os
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils
from tfx_bsl.coders import csv_decoder

# The runners that run a pipeline inside this process, holding a Reshuffle's data in memory, as
# Beam accepts their names ("DirectRunner", "direct", ...; none given: the DirectRunner).
IN_PROCESS_RUNNERS = {"direct", "fnapi", "bundlebaseddirect", "switchingdirect"}


def runs_in_process(beam_args: list[str]) -> bool:
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner or "DirectRunner"
    return runner.lower().removesuffix("runner") in IN_PROCESS_RUNNERS


def _csv_files(csv_pattern: str) -> tuple[list[str], list[str]]:
    # TFX's own checks, messages included (csv_executor._CsvToExample.expand).
    csv_files = fileio.glob(csv_pattern)
    if not csv_files:
        raise RuntimeError(f"Split pattern {csv_pattern} does not match any files.")
    column_names = io_utils.load_csv_column_names(csv_files[0])
    for csv_file in csv_files[1:]:
        if io_utils.load_csv_column_names(csv_file) != column_names:
            raise RuntimeError(f"Files in same split {csv_pattern} have different header.")
    return csv_files, column_names


@beam.ptransform_fn
def CsvToExample(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):
    """tf.Examples from the split's CSV files, the types inferred in a first read of them."""
    csv_files, column_names = _csv_files(
        os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern))

    def parsed_lines(read: str) -> beam.PCollection:
        # Each file read whole, in order, by one worker: TFX's way, for quoted multi-line fields.
        return (pipeline
                | f"CreateFilenames{read}" >> beam.Create(csv_files)
                | f"ReadFromText{read}" >> beam.ParDo(csv_executor._ReadCsvRecordsFromTextFile())
                | f"ParseCSVLine{read}" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
                | f"ExtractParsedCSVLines{read}" >> beam.Keys())

    column_infos = beam.pvalue.AsSingleton(
        parsed_lines("ForTypes")
        | "InferColumnTypes" >> beam.CombineGlobally(
            csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True)))
    return parsed_lines("") | "ToTFExample" >> beam.ParDo(csv_executor._ParsedCsvToTfExample(), column_infos)


@beam.ptransform_fn
def WriteSplitInOrder(examples: beam.PCollection, output_split_path: str):
    """TFX's WriteSplit for tf.Examples in gzipped TFRecords, less its Reshuffle."""
    return (examples
            | "MaybeSerialize" >> beam.ParDo(write_split.MaybeSerialize())
            | "Write" >> beam.io.WriteToTFRecord(
                os.path.join(output_split_path, write_split.DEFAULT_TF_RECORD_FILE_NAME), file_name_suffix=".gz"))


class Executor(csv_executor.Executor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return CsvToExample

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        super().Do(input_dict, output_dict, exec_properties)

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]) -> dict:
        splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
        parquet = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY) == example_gen_pb2.FORMAT_PARQUET
        if parquet or not runs_in_process(self._beam_pipeline_args or []):
            return splits  # BaseExampleGenExecutor.Do writes them with TFX's WriteSplit
        for split_name, split in splits.items():
            split | f"WriteSplit[{split_name}]" >> WriteSplitInOrder(artifact_utils.get_split_uri(self._examples, split_name))
        # Written: Do, which names TFX's WriteSplit itself, has none left to write. It still sets
        # the artifact's split names (from the same configs) and its format properties.
        return {}
