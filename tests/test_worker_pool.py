"""upstream/worker_pool.py, the SDK worker pool beside a local Flink cluster: a real pool process
on 127.0.0.1, asked over gRPC as TaskManagers ask it. Its workers are real SDK harness processes
(given a control endpoint nobody serves, they wait for it, which keeps them alive to be counted)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster_runs import free_port
from tests.conftest import REPO


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def pool():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "upstream.worker_pool", f"127.0.0.1:{port}"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening on 127.0.0.1:" in process.stdout.readline()
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def stub(port: int):
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc

    return beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def test_a_worker_id_two_taskmanagers_started_is_stopped_only_by_the_last_of_them(pool):
    from apache_beam.portability.api import beam_fn_api_pb2, endpoints_pb2

    process, port = pool
    pool_stub = stub(port)
    nobody = endpoints_pb2.ApiServiceDescriptor(url=f"127.0.0.1:{free_port()}")
    start = beam_fn_api_pb2.StartWorkerRequest(worker_id="1-1", control_endpoint=nobody)
    for _ in range(2):  # two TaskManagers, numbering their first worker alike
        assert not pool_stub.StartWorker(start).error
    assert wait_until(lambda: len(children(process.pid)) == 2), children(process.pid)
    workers = children(process.pid)

    pool_stub.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="1-1"))  # the first one done
    time.sleep(2)
    assert all(alive(w) for w in workers), "the other TaskManager's worker was stopped too"

    pool_stub.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="1-1"))  # the last one
    assert wait_until(lambda: not any(alive(w) for w in workers), 30), [w for w in workers if alive(w)]


def listening(port: int) -> set[str]:
    """The local addresses of the sockets listening on this port, from the kernel's tables (hex)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_it_listens_on_the_address_given_only(pool):
    _, port = pool
    # 127.0.0.1 only (as IPv4, or IPv4-mapped on an IPv6 socket): Beam's own worker_pool_main
    # listens on [::], every interface (all zeros here).
    found = listening(port)
    assert found and found <= {"0100007F", "0000000000000000FFFF00000100007F"}, found


def test_a_stopped_pool_stops_its_workers(pool):
    from apache_beam.portability.api import beam_fn_api_pb2, endpoints_pb2

    process, port = pool
    nobody = endpoints_pb2.ApiServiceDescriptor(url=f"127.0.0.1:{free_port()}")
    assert not stub(port).StartWorker(beam_fn_api_pb2.StartWorkerRequest(worker_id="2-1", control_endpoint=nobody)).error
    assert wait_until(lambda: len(children(process.pid)) == 1)
    workers = children(process.pid)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert wait_until(lambda: not any(alive(w) for w in workers), 30)
