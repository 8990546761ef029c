"""make simulate's driver: what it refuses before writing a span or starting a run (instant).

The simulation itself is N pipeline runs (minutes each): run by hand, its output is in README.md.
"""

from click.testing import CliRunner

from benchmarks import simulate


def test_an_output_directory_with_earlier_runs_is_refused_in_one_line(tmp_path):
    (tmp_path / "metadata.sqlite").write_text("")
    result = CliRunner().invoke(simulate.main, ["--spans", "2", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"--output-dir {tmp_path} is not empty" in result.output
    assert not (tmp_path / "spans").exists()  # nothing written


def test_a_broken_span_outside_the_spans_is_refused(tmp_path):
    result = CliRunner().invoke(simulate.main, ["--spans", "2", "--broken-span", "5", "--output-dir", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--broken-span must be between 1 and 2, got 5" in result.output
    assert not (tmp_path / "o").exists()
