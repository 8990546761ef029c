"""A throwaway Prometheus and Pushgateway for the tests: Debian's prometheus and
prometheus-pushgateway, on 127.0.0.1, their data in a temporary directory, stopped afterwards.
tools/env.sh installs the packages into the environment (tools/debian.env)."""

import contextlib
import dataclasses
import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mariadb import free_port

BINARIES = ("prometheus", "prometheus-pushgateway", "promtool")
INTERVAL = "1s"  # scrape and rule evaluation: the tests wait seconds, not minutes


def require_binaries() -> None:
    for binary in BINARIES:
        if shutil.which(binary) is None:
            pytest.skip(f"no {binary} on PATH: the environment installs Debian's prometheus and "
                        "prometheus-pushgateway (tools/debian.env)")


@dataclasses.dataclass
class Servers:
    prometheus: str  # http://127.0.0.1:PORT
    pushgateway: str

    def query(self, promql: str) -> list[dict]:
        """An instant query through Prometheus's HTTP API: the result vector."""
        return self._api("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))["result"]

    def alerts(self) -> list[dict]:
        return self._api("/api/v1/alerts")["alerts"]

    def rules(self) -> list[dict]:
        return [rule for group in self._api("/api/v1/rules")["groups"] for rule in group["rules"]]

    def _api(self, path: str) -> dict:
        with urllib.request.urlopen(self.prometheus + path, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> object:
    """Polls condition() until it returns something truthy (returned); fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not seen within {timeout:.0f} s"
        time.sleep(0.25)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _start(argv: list[str], log: Path, ready_url: str) -> subprocess.Popen:
    with log.open("a") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _ready(ready_url):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{argv[0]} did not answer within 60 s: {log.read_text()[-2000:]}"
        time.sleep(0.2)
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def servers(root: Path, rule_files: list[Path]) -> Iterator[Servers]:
    """A Pushgateway and a Prometheus that scrapes it every second and evaluates `rule_files`."""
    require_binaries()
    gateway_port, prometheus_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    config = root / "prometheus.yml"
    # honor_labels: the pushed job and grouping labels stay as pushed (Prometheus's advice for a
    # Pushgateway), as in the README's configuration.
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}]}],
    }))
    started = []
    try:
        started.append(_start(
            # Debian's build persists to /var/lib/prometheus/pushgateway.data by default, so a
            # new gateway would start with an earlier test run's groups: keep it in the temp dir.
            ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gateway_port}",
             f"--persistence.file={root / 'pushgateway.data'}"],
            root / "pushgateway.log", f"{gateway}/-/ready"))
        started.append(_start(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            root / "prometheus.log", f"http://127.0.0.1:{prometheus_port}/-/ready"))
        yield Servers(f"http://127.0.0.1:{prometheus_port}", gateway)
    finally:
        for process in reversed(started):
            _stop(process)
