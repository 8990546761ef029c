"""A metadata store a team shares: runs and lineage on MLMD over a real MariaDB server.

The server is Debian's mariadb-server, started by tests/mariadb.py on 127.0.0.1 with its data in
a temporary directory (no mock). Two output directories run the pipeline into one database at
the same time; a SELECT-only user reads it; the password shows up nowhere.
"""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from data import taxi
from pipeline.config import ConfigError
from pipeline.metadata import MetadataStore, StoreError, parse
from tests import mariadb
from tests.conftest import REPO, SMALL_RUN


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mariadb.mariadb(tmp_path_factory.mktemp("mariadb")) as running:
        yield running


# --- the option's spelling and the password --------------------------------------------------------


def test_a_path_or_nothing_is_an_sqlite_file(tmp_path):
    assert parse(None, tmp_path / "metadata.sqlite") == MetadataStore(sqlite=tmp_path / "metadata.sqlite")
    assert parse(str(tmp_path / "team.sqlite"), tmp_path / "x").sqlite == tmp_path / "team.sqlite"


def test_a_mysql_url_names_user_host_port_and_database(tmp_path, monkeypatch):
    monkeypatch.setenv("MLMD_MYSQL_PASSWORD", "from-env")
    store = parse("mysql://ana@db.example:3307/team_mlmd", tmp_path)
    assert (store.user, store.host, store.port, store.database, store.password) == (
        "ana", "db.example", 3307, "team_mlmd", "from-env")
    assert parse("mysql://ana@db.example/team_mlmd", tmp_path).port == 3306
    assert "from-env" not in repr(store) and "from-env" not in str(store)


@pytest.mark.parametrize("value, message", [
    ("mysql://ana:secret@db/m", "no password in the URI"),
    ("postgresql://ana@db/m", "expects a file or mysql://"),
    ("mysql://db/m", "expects mysql://USER@HOST"),
    ("mysql://ana@db/", "expects mysql://USER@HOST"),
])
def test_bad_urls_are_refused_naming_the_option(value, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        parse(value, tmp_path)
    assert error.value.option == "--metadata-store" and message in str(error.value)
    assert "secret" not in str(error.value)


def test_the_password_file_must_be_the_users_only(tmp_path, monkeypatch):
    monkeypatch.delenv("MLMD_MYSQL_PASSWORD", raising=False)
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    secret.chmod(0o640)
    with pytest.raises(ConfigError) as error:
        parse("mysql://ana@db/m", tmp_path, secret)
    assert error.value.option == "--metadata-password-file" and str(secret) in str(error.value)
    assert "from-file" not in str(error.value)
    secret.chmod(0o600)
    assert parse("mysql://ana@db/m", tmp_path, secret).password == "from-file"


# --- the server says no: one line naming host, user and database ----------------------------------


def _store(server, user, password, database=mariadb.DATABASE, port=None):
    return MetadataStore(host="127.0.0.1", port=port or server.port, database=database, user=user, password=password)


@pytest.mark.parametrize("case, message", [
    ("wrong password", "access denied for user 'writer'"),
    ("missing database", "no database 'nowhere' that user 'writer' may use"),
    ("unreachable", "cannot reach the server"),
    ("read-only user", "user 'reader' may only read it"),
])
def test_a_store_that_cannot_be_used_is_named_in_one_line(server, case, message):
    store = {
        "wrong password": _store(server, mariadb.WRITER, "not-the-password"),
        "missing database": _store(server, mariadb.WRITER, mariadb.WRITER_PASSWORD, database="nowhere"),
        "unreachable": _store(server, mariadb.WRITER, mariadb.WRITER_PASSWORD, port=mariadb.free_port()),
        "read-only user": _store(server, mariadb.READER, mariadb.READER_PASSWORD),
    }[case]
    with pytest.raises(StoreError) as error:
        store.check(write=True)
    text = str(error.value)
    assert message in text and f"@127.0.0.1:{store.port}/{store.database}" in text, text
    assert "\n" not in text and store.password not in text


def test_a_server_that_would_lose_concurrent_writes_is_refused(server):
    server.sql("SET GLOBAL innodb_snapshot_isolation=ON")
    try:
        with pytest.raises(StoreError, match="innodb_snapshot_isolation=ON, under which concurrent runs lose"):
            _store(server, mariadb.WRITER, mariadb.WRITER_PASSWORD).check(write=True)
        _store(server, mariadb.READER, mariadb.READER_PASSWORD).check(write=False)  # reading is safe
    finally:
        server.sql("SET GLOBAL innodb_snapshot_isolation=OFF")


def test_a_writer_passes_and_a_reader_may_read(server):
    _store(server, mariadb.WRITER, mariadb.WRITER_PASSWORD).check(write=True)
    _store(server, mariadb.READER, mariadb.READER_PASSWORD).check(write=False)


def test_run_refuses_a_read_only_user_before_anything_runs(server, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.main, ["run", "--output-dir", str(out), "--metadata-store", server.url(mariadb.READER)],
        env={"MLMD_MYSQL_PASSWORD": mariadb.READER_PASSWORD})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: metadata store {server.url(mariadb.READER)}: user 'reader' may "
        "only read it; a run needs a user with write rights (INSERT, UPDATE, CREATE on the database)"]
    assert not out.exists()


# --- a team on one store ---------------------------------------------------------------------------


def _run(out: Path, data: Path, store_url: str, password: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(out), "--data-dir", str(data),
            "--metadata-store", store_url, *SMALL_RUN, *extra]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1200,
                          env=mariadb.env_with_password(password))


@pytest.fixture(scope="module")
def two_users(server, tmp_path_factory):
    """Two output directories (two people, two data sets) running into the one database at once."""
    root = tmp_path_factory.mktemp("team")
    people = {}
    for name, rows in (("ana", 600), ("bo", 650)):
        people[name] = (root / name / "out", taxi.write_sample(root / name / "data", rows=rows))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(people, pool.map(
            lambda item: _run(item[0], item[1], server.url(mariadb.WRITER), mariadb.WRITER_PASSWORD),
            people.values())))
    return people, results


@pytest.mark.e2e
def test_two_runs_at_once_into_one_store_both_complete_and_each_traces_to_its_own_data(server, two_users):
    from lineage.query import Lineage
    from lineage.store import open_store
    from runs.execute import store_address

    people, results = two_users
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stdout[-3000:] + result.stderr[-3000:])
        assert f"MLMD store:    {server.url(mariadb.WRITER)}" in result.stdout
        # Each summary is of its own run, whichever of the two ended last.
        out = people[name][0]
        [pushed_line] = [line for line in result.stdout.splitlines() if line.startswith("Pushed model:")]
        assert pushed_line.split()[2].startswith(str(out / "serving")), (name, pushed_line)
    reader = Lineage(open_store(store_address(_store(server, mariadb.READER, mariadb.READER_PASSWORD))))
    runs = reader.runs("chicago_taxi")
    assert len(runs) == 2 and {r.state for r in runs} == {"COMPLETE"}
    for name, (out, data) in people.items():
        pushes = [reader.run(r.run_id).output("Pusher", "pushed_model") for r in runs]
        [pushed] = [a for a in pushes if a is not None and a.uri.startswith(str(out))]
        trace = reader.trace(str(pushed.id))
        [example_gen] = [e for e in trace.executions.values() if e.node_id == "CsvExampleGen"]
        assert example_gen.properties["input_base"] == str(data), (name, example_gen.properties)
        assert all(a.uri.startswith(str(out)) for a in trace.artifacts.values()), name


@pytest.mark.e2e
def test_the_password_is_nowhere_a_run_writes(server, two_users):
    people, results = two_users
    for result in results.values():
        assert mariadb.WRITER_PASSWORD not in result.stdout + result.stderr
    for out, _ in people.values():
        for path in out.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert mariadb.WRITER_PASSWORD.encode() not in path.read_bytes(), path
    # Nor in MLMD: every table of the database, dumped as text.
    dump = subprocess.run(["mariadb-dump", "-uroot", f"--socket={server.socket}", mariadb.DATABASE],
                          capture_output=True, text=True, timeout=120)
    assert dump.returncode == 0 and "INSERT INTO" in dump.stdout, dump.stderr
    assert mariadb.WRITER_PASSWORD not in dump.stdout


@pytest.mark.e2e
def test_a_read_only_user_writes_the_report(server, two_users):
    people, _ = two_users
    out, _ = people["ana"]
    result = subprocess.run(
        [sys.executable, "-m", "cli", "report", "latest", "--output-dir", str(out), "--out", str(out / "ro-report"),
         "--metadata-store", server.url(mariadb.READER)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=mariadb.env_with_password(mariadb.READER_PASSWORD))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "ro-report" / "report.html").is_file()
    assert server.url(mariadb.READER) in (out / "ro-report" / "report.md").read_text()


# --- moving an existing store ----------------------------------------------------------------------


def _answers(lineage):
    """What lineage says of a store, without its ids and times (a copy has new ones)."""
    runs = [(r.run_id, r.state, tuple(sorted(lineage.run(r.run_id).states().items()))) for r in lineage.runs()]
    trace = lineage.trace("latest-pushed-model")
    executions = sorted((e.node_id, e.state, str(e.properties.get("input_base", ""))) for e in trace.executions.values())
    artifacts = sorted((a.type, a.uri) for a in trace.artifacts.values())
    kinds = {edge[0][0] + edge[1][0] for edge in trace.edges}
    return runs, executions, artifacts, len(trace.edges), kinds


@pytest.mark.e2e
def test_a_local_store_copied_into_the_database_answers_the_same_questions(server, two_runs):
    from lineage.query import Lineage
    from lineage.store import StoreAddress, open_store
    from runs.execute import store_address

    output_dir = two_runs[0]
    server.sql(f"CREATE DATABASE copied; GRANT ALL PRIVILEGES ON copied.* TO '{mariadb.WRITER}'@'127.0.0.1';")
    target = server.url(mariadb.WRITER, "copied")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "metadata", "copy", "--from", str(output_dir / "metadata.sqlite"), "--to", target],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=mariadb.env_with_password(mariadb.WRITER_PASSWORD))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"Copied {output_dir / 'metadata.sqlite'} into {target}: ")
    local = Lineage(open_store(StoreAddress(sqlite=output_dir / "metadata.sqlite")))
    copied = Lineage(open_store(store_address(_store(server, mariadb.WRITER, mariadb.WRITER_PASSWORD, "copied"))))
    before, after = _answers(local), _answers(copied)
    assert len(before[0]) >= 2 and before[1] and before[2]  # runs, and a trace with executions and artifacts
    assert after == before


# --- the server goes away in the middle of a run ---------------------------------------------------


@pytest.mark.e2e
def test_a_server_gone_mid_run_fails_in_one_line_and_the_rerun_resumes_from_the_cache(tmp_path):
    import signal
    import time

    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    root = tmp_path / "db"
    root.mkdir()
    with mariadb.mariadb(root) as server:
        out, data = tmp_path / "out", taxi.write_sample(tmp_path / "data", rows=600)
        argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(out), "--data-dir", str(data),
                "--metadata-store", server.url(mariadb.WRITER), *SMALL_RUN]
        env = mariadb.env_with_password(mariadb.WRITER_PASSWORD)
        running = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        reader = _store(server, mariadb.READER, mariadb.READER_PASSWORD).connection_config(read_only=True)
        deadline = time.monotonic() + 600
        while True:  # until the Trainer runs: the components before it are done and recorded
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline, "the Trainer never started"
            try:
                store = metadata_store.MetadataStore(reader)
                trainer = [e for e in store.get_executions_by_type("tfx.components.trainer.component.Trainer")]
                if any(e.last_known_state == mlmd.Execution.RUNNING for e in trainer):
                    break
            except Exception:  # the schema is not there yet
                pass
            time.sleep(0.5)
        server.process.send_signal(signal.SIGKILL)  # the server goes away, uncleanly
        server.process.wait()
        stdout, stderr = running.communicate(timeout=600)
        assert running.returncode == 1, stdout[-2000:] + stderr[-3000:]
        lines = stderr.strip().splitlines()
        assert lines[0].startswith("Run failed in Trainer: ") or lines[0].startswith("Error: metadata store "), stderr
        assert lines[-1].startswith("Full log: ") or len(lines) == 1, stderr
        assert "Traceback" not in stderr, stderr[-3000:]
        # Back again on the same data: the re-run resumes where the first stopped.
        server = mariadb.start(root, server.port)
        try:
            rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
        finally:
            server.stop()
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert re.search(r"^Note: execution \d+ \(Trainer\) of an interrupted run: marked CANCELED$", rerun.stdout, re.M), \
        rerun.stdout[:3000]
    for node in ("CsvExampleGen", "StatisticsGen", "Transform"):
        assert re.search(rf"^\[\s*\d+/13\] {node} +cached ", rerun.stdout, re.M), (node, rerun.stdout[-3000:])
    assert re.search(r"^\[\s*\d+/13\] Trainer +done ", rerun.stdout, re.M), rerun.stdout[-3000:]


@pytest.mark.e2e
def test_lineage_takes_the_same_spelling_and_a_read_only_user(server, two_users):
    import json

    people, _ = two_users
    env = mariadb.env_with_password(mariadb.READER_PASSWORD)

    def lineage(*args):
        result = subprocess.run([sys.executable, "-m", "cli", "lineage", *args, "--metadata-store",
                                 server.url(mariadb.READER), "--json"],
                                cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout)

    runs = lineage("runs")
    assert len(runs) == 2 and {r["state"] for r in runs} == {"COMPLETE"}
    trace = lineage("trace", "latest-pushed-model")
    uris = [a["uri"] for a in trace["artifacts"]]
    roots = {name for name, (out, _) in people.items() if all(u.startswith(str(out)) for u in uris)}
    assert len(roots) == 1, uris  # one person's model, traced to that person's artifacts only
