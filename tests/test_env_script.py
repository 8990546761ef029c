"""tools/env.sh, the one place that builds and enters the environment.

Exercised for real on the native route with a scratch cache and a tiny lock file (an empty
requirement set), so venv creation, reuse, rebuild after an interruption, and exec are all run.
The rootfs route is what runs this very suite on a glibc < 2.39 machine; its debootstrap call is
checked here with stand-ins for the commands that would need root. The Debian packages are named
once (tools/debian.env): the rootfs and the image's install step are both checked against it.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "env.sh"
DEBIAN_ENV = REPO / "tools" / "debian.env"
DOCKERFILE = REPO / "Dockerfile"


def _debian_packages(name: str) -> list[str]:
    """A package list of tools/debian.env, as the shell that sources it sees it."""
    result = subprocess.run(["sh", "-c", 'set -a && . "$0" && printenv "$1"', str(DEBIAN_ENV), name],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _dockerfile_suite() -> str:
    (base,) = [args for kind, args in _dockerfile_instructions() if kind == "FROM"]
    match = re.fullmatch(r"debian:(\w+)-slim", base)
    assert match, base
    return match.group(1)


def _stub(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text("#!/bin/sh\n" + body)
    (bin_dir / name).chmod(0o755)


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
    assert result.returncode == 1
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
    assert result.returncode == 1 and "usage: tools/env.sh exec COMMAND" in result.stderr


@pytest.mark.parametrize("args", [(), ("bogus",)])
def test_no_or_an_unknown_subcommand_is_a_usage_error(env, args):
    run, _ = env
    result = run(*args)
    assert result.returncode == 1
    assert "usage: tools/env.sh ensure | exec COMMAND [ARGS...] | info | selftest | lock" in result.stderr


def test_cache_paths_are_keyed_by_the_debian_release_and_the_lock(env, tmp_path):
    # The paths every machine has already built: a change here means minutes of rebuilding on each.
    run, cache = env
    key = hashlib.sha256((tmp_path / "lock.txt").read_bytes()).hexdigest()[:12]
    rootfs = run("info", TFX_ENV_ROUTE="rootfs")
    assert rootfs.returncode == 0, rootfs.stderr
    assert rootfs.stdout.split()[-1] == f"venv={cache}/rootfs-{_dockerfile_suite()}/usr/local/tfx-venvs/{key}"
    native = run("info", TFX_ENV_ROUTE="native", PYTHON=sys.executable)
    assert native.returncode == 0, native.stderr
    assert native.stdout.split()[-1] == f"venv={cache}/venv-py{sys.version_info[0]}.{sys.version_info[1]}-{key}"


def test_the_rootfs_is_bootstrapped_from_the_images_release_with_the_shared_packages(env, tmp_path):
    run, cache = env
    bin_dir, calls = tmp_path / "bin", tmp_path / "debootstrap.args"
    _stub(bin_dir, "id", "echo 0\n")  # root, as the route needs, without being root
    # The stand-in unshare runs debootstrap only: nothing may mount in this machine's own namespace.
    _stub(bin_dir, "unshare", 'while [ "$1" != -- ]; do shift; done; shift\n[ "$1" = debootstrap ] || exit 97\nexec "$@"\n')
    _stub(bin_dir, "debootstrap", f'printf "%s\\n" "$@" > "{calls}"\nexit 1\n')
    result = run("ensure", TFX_ENV_ROUTE="rootfs", PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode == 1
    suite = _dockerfile_suite()
    assert f"building a Debian 13 ({suite}) root filesystem in {cache}/rootfs-{suite}" in result.stderr
    assert f"debootstrap failed; see {cache}/debootstrap.log" in result.stderr
    args = calls.read_text().splitlines()
    (include,) = [a.removeprefix("--include=") for a in args if a.startswith("--include=")]
    assert include.split(",") == _debian_packages("DEBIAN_PACKAGES") + _debian_packages("ROOTFS_PACKAGES")
    assert "--variant=minbase" in args
    positional = [a for a in args if not a.startswith("--")]
    assert positional[:2] == [suite, f"{cache}/rootfs-{suite}.partial"]
    assert not (cache / f"rootfs-{suite}").exists()  # a failed build leaves nothing to be used


def test_the_image_installs_the_shared_packages_read_from_the_same_file(tmp_path):
    instructions = _dockerfile_instructions()
    copies = {args.split()[0]: args.split()[-1] for kind, args in instructions if kind == "COPY"}
    (install_step,) = [args for kind, args in instructions if kind == "RUN" and "$DEBIAN_PACKAGES" in args]
    # The same file with one package more: the step must install what the file says.
    shared = tmp_path / "debian.env"
    shared.write_text(DEBIAN_ENV.read_text() + 'DEBIAN_PACKAGES="$DEBIAN_PACKAGES stand-in-package"\n')
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    for name in ("apt-get", "rm"):  # recorded, not run
        _stub(bin_dir, name, f'echo {name} "$@" >> "{calls}"\n')
    result = subprocess.run(["sh", "-c", install_step.replace(copies["tools/debian.env"], str(shared))],
                            env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    installs = [line for line in calls.read_text().splitlines() if line.startswith("apt-get install")]
    packages = _debian_packages("DEBIAN_PACKAGES") + ["stand-in-package"]
    assert installs == ["apt-get install -y --no-install-recommends " + " ".join(packages)]
    assert not set(packages) & set(_debian_packages("ROOTFS_PACKAGES") + _debian_packages("ROOTFS_EXTRA_PACKAGES"))
    # The compiler the pip step needs is installed and removed by that step, from the same file.
    (pip_step,) = [args for kind, args in instructions if kind == "RUN" and "pip install" in args and "-r " in args]
    assert pip_step.startswith(f". {copies['tools/debian.env']} ")
    assert "apt-get install -y --no-install-recommends $BUILD_PACKAGES" in pip_step
    assert "apt-get purge -y --auto-remove $BUILD_PACKAGES" in pip_step
    assert _debian_packages("ROOTFS_PACKAGES") == _debian_packages("BUILD_PACKAGES")


@pytest.mark.skipif(not _glibc_at_least(2, 39), reason="the native route needs glibc >= 2.39")
def test_the_native_route_installs_the_extras_with_apt_once_and_a_missing_one_fails_ci(env, tmp_path):
    run, cache = env
    bin_dir, calls = tmp_path / "bin", tmp_path / "apt-get.calls"
    extras = _debian_packages("ROOTFS_EXTRA_PACKAGES")
    _stub(bin_dir, "dpkg-query", "exit 1\n")  # none of them installed
    _stub(bin_dir, "apt-get", f'echo "$@" >> "{calls}"\n')  # recorded, not run
    path = f"{bin_dir}:{os.environ['PATH']}"

    _stub(bin_dir, "id", "echo 1000\n")  # not root: nothing can be installed
    refused = run("ensure", TFX_ENV_ROUTE="native", PATH=path, CI="true")
    assert refused.returncode == 1
    assert f"CI=true: not root: cannot apt-get install {' '.join(extras)}" in refused.stderr
    noted = run("ensure", TFX_ENV_ROUTE="native", PATH=path, CI="")
    assert noted.returncode == 0 and "tests that need them are skipped" in noted.stderr
    assert not calls.exists()

    _stub(bin_dir, "id", "echo 0\n")
    first = run("ensure", TFX_ENV_ROUTE="native", PATH=path, CI="true")
    assert first.returncode == 0, first.stderr
    again = run("ensure", TFX_ENV_ROUTE="native", PATH=path, CI="true")
    assert again.returncode == 0, again.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends " + " ".join(extras)]


@pytest.mark.skipif(not _glibc_at_least(2, 39), reason="the native route needs glibc >= 2.39")
def test_concurrent_first_calls_build_once(env):
    run, cache = env
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run("ensure", TFX_ENV_ROUTE="native"), range(2)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sum("installing" in r.stderr for r in results) == 1
    assert len(list(cache.glob("venv-py*"))) == 1



def _commands(help_text: str) -> list[str]:
    """The command names click lists under 'Commands:' in a --help text."""
    section = help_text.split("Commands:", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()]


def test_the_console_script_runs_the_cli():
    result = subprocess.run([str(REPO / "tools" / "bin" / "tfx-taxi"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _commands(result.stdout) == ["history", "kfp", "lineage", "metadata", "models", "report", "run", "schema", "tensorboard"]


def test_the_packaged_console_script_is_the_entry_python_m_cli_runs():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"tfx-taxi": "cli:entry"}  # entry(): main() without the interpreter's teardown
    source = (REPO / "cli.py").read_text()
    assert source.rstrip().endswith('if __name__ == "__main__":\n    entry()')
