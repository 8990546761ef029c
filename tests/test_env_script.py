"""tools/env.sh, the one place that builds and enters the environment.

Exercised for real on the native route with a scratch cache and a tiny lock file (an empty
requirement set), so venv creation, reuse, rebuild after an interruption, and exec are all run.
The rootfs route is what runs this very suite on a glibc < 2.39 machine.
"""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "env.sh"


def _glibc_at_least(major: int, minor: int) -> bool:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    return tuple(int(p) for p in version.split(".")[:2]) >= (major, minor)


@pytest.fixture
def env(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# no packages: enough to build and enter a venv\n")
    variables = dict(os.environ, TFX_PIPELINE_CACHE=str(tmp_path / "cache"), TFX_ENV_LOCK=str(lock))
    for name in ("TFX_ENV_ROUTE", "TFX_ENV_ACTIVE"):  # this suite itself runs inside the env
        variables.pop(name, None)
    variables.pop("PYTHONPATH", None)

    def run(*args: str, cwd: Path = tmp_path, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], cwd=cwd, env=dict(variables, **extra),
            capture_output=True, text=True, timeout=300,
        )

    return run, tmp_path / "cache"


def test_auto_route_follows_the_glibc_the_wheels_need(env):
    run, _ = env
    result = run("info")
    assert result.returncode == 0, result.stderr
    expected = "native" if _glibc_at_least(2, 39) else "rootfs"
    assert f"route={expected}" in result.stdout


def test_unknown_route_is_refused(env):
    run, _ = env
    result = run("info", TFX_ENV_ROUTE="docker")
    assert result.returncode != 0
    assert "TFX_ENV_ROUTE must be native, rootfs or auto" in result.stderr


@pytest.mark.skipif(not _glibc_at_least(2, 39), reason="the native route needs glibc >= 2.39")
def test_native_venv_is_built_once_reused_and_rebuilt_when_half_built(env):
    run, cache = env
    first = run("ensure", TFX_ENV_ROUTE="native")
    assert first.returncode == 0, first.stderr
    assert "route=native" in first.stderr and "installing" in first.stderr
    (venv,) = cache.glob("venv-py*")
    assert (venv / ".complete").is_file()

    sentinel = venv / "sentinel"
    sentinel.touch()
    again = run("ensure", TFX_ENV_ROUTE="native")
    assert again.returncode == 0 and "installing" not in again.stderr
    assert sentinel.exists()  # reused, not rebuilt

    (venv / ".complete").unlink()  # what an interrupted build leaves behind
    rebuilt = run("ensure", TFX_ENV_ROUTE="native")
    assert rebuilt.returncode == 0 and "installing" in rebuilt.stderr
    assert not sentinel.exists() and (venv / ".complete").is_file()


@pytest.mark.skipif(not _glibc_at_least(2, 39), reason="the native route needs glibc >= 2.39")
def test_exec_runs_in_the_venv_in_the_callers_directory_with_the_repo_importable(env, tmp_path):
    run, cache = env
    workdir = tmp_path / "somewhere"
    workdir.mkdir()
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys, pipeline\n"
        "print(sys.prefix); print(os.getcwd()); print(pipeline.__file__)\n"
    )
    result = run("exec", "python", str(script), cwd=workdir, TFX_ENV_ROUTE="native")
    assert result.returncode == 0, result.stderr
    prefix, cwd, module = result.stdout.split()
    assert Path(prefix).parent == cache and Path(prefix).name.startswith("venv-py")
    assert cwd == str(workdir)
    assert Path(module).is_relative_to(REPO)


def test_rootfs_route_refuses_user_paths_it_could_not_see_before_building_anything(env):
    run, cache = env
    result = run("exec", "true", TFX_ENV_ROUTE="rootfs", TFX_ENV_USER_PATHS="/tmp/fine /var/lib/taxi-out")
    assert result.returncode != 0
    assert "/var/lib/taxi-out is under /var, which the Debian 13 rootfs keeps as its own" in result.stderr
    assert not cache.exists() or not any(cache.iterdir())  # refused before any build


def test_exec_without_a_command_is_a_usage_error(env):
    run, _ = env
    result = run("exec")
    assert result.returncode != 0 and "usage" in result.stderr


@pytest.mark.skipif(not _glibc_at_least(2, 39), reason="the native route needs glibc >= 2.39")
def test_concurrent_first_calls_build_once(env):
    run, cache = env
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run("ensure", TFX_ENV_ROUTE="native"), range(2)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sum("installing" in r.stderr for r in results) == 1
    assert len(list(cache.glob("venv-py*"))) == 1



def test_the_console_script_runs_the_cli():
    result = subprocess.run([str(REPO / "tools" / "bin" / "tfx-taxi"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in ("run", "lineage", "schema", "tensorboard"))
