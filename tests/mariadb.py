"""A throwaway MariaDB server for the tests: Debian's mariadb-server, on 127.0.0.1, its data in a
temporary directory, stopped afterwards. tools/env.sh installs the package into the environment."""

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATABASE = "mlmd"
WRITER, WRITER_PASSWORD = "writer", "w-secret-3f9a"  # test-only credentials of a throwaway server
READER, READER_PASSWORD = "reader", "r-secret-7c21"


@dataclasses.dataclass
class Server:
    port: int
    socket: Path
    process: subprocess.Popen

    def url(self, user: str, database: str = DATABASE) -> str:
        return f"mysql://{user}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str) -> str:
        """Runs SQL as the server's root (over its socket)."""
        result = subprocess.run(["mariadb", "-uroot", f"--socket={self.socket}", "-N", "-e", statement],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, port: int) -> Server:
    """Starts mariadbd on an installed data directory under `root`; returns once it answers."""
    sock = root / "mysqld.sock"
    log = (root / "server.log").open("a")
    process = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={root / 'data'}", "--user=root", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={root / 'mysqld.pid'}", "--skip-name-resolve",
         "--innodb-snapshot-isolation=OFF"],  # MariaDB >= 11.6's default breaks concurrent MLMD writers
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 120
    while subprocess.run(["mariadb", "-uroot", f"--socket={sock}", "-e", "SELECT 1"], capture_output=True).returncode:
        assert process.poll() is None, (root / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "MariaDB did not answer within 120 s"
        time.sleep(0.2)
    return Server(port, sock, process)


@contextlib.contextmanager
def mariadb(root: Path) -> Iterator[Server]:
    """Starts a server with a database and two users: WRITER (all rights on it), READER (SELECT only)."""
    for binary in ("mariadb-install-db", "mariadbd", "mariadb"):
        if shutil.which(binary) is None:
            pytest.skip(f"no {binary} on PATH: the environment installs Debian's mariadb-server (tools/debian.env)")
    install = subprocess.run(["mariadb-install-db", f"--datadir={root / 'data'}", "--user=root",
                              "--auth-root-authentication-method=socket", "--skip-test-db"],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    server = start(root, free_port())
    try:
        server.sql(
            f"CREATE DATABASE {DATABASE};"
            f"CREATE USER '{WRITER}'@'127.0.0.1' IDENTIFIED BY '{WRITER_PASSWORD}';"
            f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{WRITER}'@'127.0.0.1';"
            f"CREATE USER '{READER}'@'127.0.0.1' IDENTIFIED BY '{READER_PASSWORD}';"
            f"GRANT SELECT ON {DATABASE}.* TO '{READER}'@'127.0.0.1';")
        yield server
    finally:
        server.stop()


def env_with_password(password: str) -> dict[str, str]:
    return dict(os.environ, MLMD_MYSQL_PASSWORD=password)
