"""The benchmarks' verdicts: figures are measured by running them, the verdicts are checked here."""

import json

from benchmarks.beam_clusters import ClusterRun, goal_lines, markdown
from benchmarks.example_gen import markdown as example_gen_markdown

GIB = 2**30


def run(rows, wall_s, rss_gib, returncode=0):
    return ClusterRun("direct-mp", rows, wall_s, returncode, {"run": int(rss_gib * GIB), "sum": int(rss_gib * GIB)},
                      {"CsvExampleGen": 1.0}, "1 1 1", "2 2 2", "log")


def test_the_10m_goal_is_met_only_in_time_within_memory_and_complete():
    assert goal_lines([run(1_000_000, 100, 1)]) == []
    [met] = goal_lines([run(10_000_000, 1419, 4.42)])
    assert met.endswith("direct-mp: met (23.6 min, 4.42 GiB)"), met
    for slow_or_big_or_failed in (run(10_000_000, 1801, 4), run(10_000_000, 1000, 12.5), run(10_000_000, 600, 3, -9)):
        [line] = goal_lines([slow_or_big_or_failed])
        assert ": NOT met (" in line, line
    assert "did not complete" in goal_lines([run(10_000_000, 600, 3, -9)])[0]
    assert "Goal (10,000,000 rows end to end in <= 30 min and <= 12.00 GiB), direct-mp: met" in markdown(
        "t", [run(10_000_000, 1419, 4.42)])


def test_the_example_gen_table_names_a_killed_run():
    runs = [{"executor": "tfx", "rows": 1000, "wall_s": 10.0, "peak_rss": GIB, "returncode": 0,
             "killed_at_rss_limit": False, "load_before": "1", "load_after": "2"},
            {"executor": "tfx", "rows": 9000, "wall_s": 30.0, "peak_rss": 21 * GIB, "returncode": -9,
             "killed_at_rss_limit": True, "load_before": "1", "load_after": "2"}]
    table = example_gen_markdown(json.loads(json.dumps(runs)), 2)
    assert "| tfx | 1,000 | 10 s | 100 | 1.00 |" in table
    assert "| tfx | 9,000 | killed at the RSS limit after 30 s | - | 21.00 |" in table
