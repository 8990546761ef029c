"""Configuration: defaults, command-line overrides, and invalid values refused with the option named."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from models.hyperparameters import Hyperparameters
from pipeline.beam import DirectBeam
from pipeline.config import ConfigError, PipelineConfig
from pipeline.locations import OutputDir, check_data
from runs import options as run_options
from tests.conftest import REPO


def test_defaults_put_all_state_under_the_output_dir(tmp_path):
    output = OutputDir(tmp_path / "out")
    for path in (output.pipeline_root, output.metadata_path, output.serving_dir, output.log_dir,
                 output.reports_dir, output.tensorboard_dir):
        assert path.is_relative_to(output.path)
    assert output.serving_dir == tmp_path / "out" / "serving"


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert OutputDir(Path("rel")).path == tmp_path / "rel"


def test_beam_args_always_name_the_runner_and_running_mode():
    args = DirectBeam("multi_processing", 2).args()
    assert "--runner=FnApiRunner" in args
    assert "--direct_running_mode=multi_processing" in args
    assert "--direct_num_workers=2" in args


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"train_steps": 0}, "--train-steps"),
        ({"eval_steps": -1}, "--eval-steps"),
        ({"min_auc": 1.5}, "--min-auc"),
        ({"max_auc_drop": -0.1}, "--max-auc-drop"),
        ({"model_name": "../escape"}, "--model-name"),
        ({"hyperparameters": Hyperparameters(learning_rate=0)}, "--learning-rate"),
        ({"hyperparameters": Hyperparameters(hidden_units=())}, "--hidden-units"),
        ({"hyperparameters": Hyperparameters(distribution_strategy="tpu")}, "--distribution-strategy"),
        ({"hyperparameters": Hyperparameters(seed=-1)}, "--seed"),
        ({"hyperparameters": Hyperparameters(replicas=0)}, "--replicas"),
        ({"hyperparameters": Hyperparameters(replicas=2, distribution_strategy="multi_worker")}, "--replicas"),
        ({"hyperparameters": Hyperparameters(workers=2)}, "--workers"),
        ({"hyperparameters": Hyperparameters(workers=99, distribution_strategy="multi_worker")}, "--workers"),
        ({"warn_only_anomalies": ("NO_SUCH_KIND",)}, "--warn-only-anomalies"),
    ],
)
def test_invalid_values_are_refused_naming_the_option(changes, option):
    with pytest.raises(ConfigError) as error:
        PipelineConfig(**changes)
    assert error.value.option == option
    assert str(error.value).startswith(option)


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: DirectBeam("prism"), "--beam-mode"),
        (lambda: DirectBeam("multi_processing", -2), "--beam-workers"),
        (lambda: DirectBeam("in_memory", 2), "--beam-workers"),  # in_memory runs one worker
        (lambda: OutputDir(Path("")), "--output-dir"),  # what an empty OUTPUT_DIR= gives
    ],
)
def test_invalid_locations_are_refused_naming_the_option(build, option):
    with pytest.raises(ConfigError) as error:
        build()
    assert error.value.option == option


def test_data_dir_must_exist_and_hold_csv_files(tmp_path):
    with pytest.raises(ConfigError, match="--data-dir: .*is not a directory"):
        check_data(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"--data-dir: .*holds no \*\.csv file"):
        check_data(tmp_path)
    assert check_data("gs://bucket/data/") == "gs://bucket/data"  # a URI: for the runners whose workers read it


def test_command_line_overrides_reach_the_config_and_hyperparameters():
    config = run_options.build_config(
        {"train_steps": 7, "hidden_units": "16,8", "mixed_precision": True, "enable_cache": False, "min_auc": None}
    )
    assert config.train_steps == 7
    assert config.enable_cache is False
    assert config.min_auc == PipelineConfig().min_auc
    assert config.hyperparameters.hidden_units == (16, 8)
    assert config.hyperparameters.mixed_precision is True


# The options of `cli run` the README's Configuration section documents, with the defaults it
# states: what users and their scripts rely on, written out here, not read from the code.
DOCUMENTED_OPTIONS = {
    "--output-dir": "outputs", "--data-dir": None,
    "--train-steps": "1000", "--eval-steps": "5", "--train-batch-size": "512", "--eval-batch-size": "1024",
    "--learning-rate": "0.002", "--hidden-units": "32,16", "--embedding-dim": "4", "--seed": "42",
    "--distribution-strategy": "mirrored", "--replicas": "1", "--workers": "1", "--mixed-precision": None,
    "--min-auc": "0.85", "--min-binary-accuracy": "0.8", "--max-auc-drop": "0.01",
    "--max-drift": "0.5", "--warn-only-anomalies": None, "--allow-non-finite": None,
    "--tflite-quantization": "dynamic", "--tflite-min-agreement": "0.99",
    "--beam-mode": "auto", "--beam-workers": "0",
    "--no-enable-cache": None, "--pipeline-name": "chicago_taxi", "--model-name": "taxi",
    "--verbose": None, "--no-report": None,
}


def _help_entries(help_text: str) -> dict[str, str]:
    """`--help`'s options section: each option name -> its whole entry (wrapped lines joined)."""
    entries: list[tuple[str, list[str]]] = []  # (the names and metavar, the entry's lines)
    for line in help_text.split("Options:", 1)[1].splitlines():
        if re.match(r"^  -", line):
            entries.append((re.split(r"\s{2,}", line.strip(), maxsplit=1)[0], [line.strip()]))
        elif line.strip() and entries:
            entries[-1][1].append(line.strip())
    return {name: " ".join(lines) for head, lines in entries for name in re.findall(r"--[a-z][a-z0-9-]*", head)}


def test_the_documented_options_are_those_of_cli_run_with_their_defaults():
    result = subprocess.run([sys.executable, "-m", "cli", "run", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    entries = _help_entries(result.stdout)
    assert sorted(set(DOCUMENTED_OPTIONS) - set(entries)) == [], result.stdout
    for option, default in DOCUMENTED_OPTIONS.items():
        if default is not None:
            shown = re.search(r"\[default: ([^\]]*)\]", entries[option])
            assert shown and shown[1].strip() == default, (option, entries[option])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train-steps", "0"], "--train-steps: must be at least 1"),
        (["--hidden-units", "64,x"], "--hidden-units: expects comma-separated integers"),
        (["--beam-mode", "prism"], "Invalid value for '--beam-mode'"),
        (["--no-such-option"], "No such option '--no-such-option'"),
    ],
)
def test_cli_rejects_bad_options_before_running_anything(argv, message, tmp_path):
    result = CliRunner().invoke(cli.main, ["run", "--output-dir", str(tmp_path / "out"), *argv])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was created
