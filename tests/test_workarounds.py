"""Each workaround around TFX, Beam or CPython (upstream/workarounds.py) still has what it leans on.

After an upgrade these fail first, naming the workaround, instead of the workaround silently
doing nothing (or patching something that moved).
"""

import importlib.metadata

import pytest

from upstream import workarounds


def test_every_assumption_holds_on_the_installed_versions():
    assert workarounds.check() == []


@pytest.mark.parametrize("package", ["tfx", "apache-beam"])
def test_the_installed_versions_are_the_ones_checked(package):
    installed = importlib.metadata.version(package)
    assert installed == workarounds.CHECKED_ON[package], (
        f"{package} {installed} is not the {workarounds.CHECKED_ON[package]} upstream/workarounds.py was checked "
        "on: read each workaround against the new version, then update CHECKED_ON")


def test_a_changed_log_template_is_caught(monkeypatch):
    broken = dict(workarounds.COMPONENT_RECORDS)
    broken["tfx.orchestration.local.local_dag_runner"] = ("Component %s started.", "Component %s is finished.", None)
    monkeypatch.setattr(workarounds, "COMPONENT_RECORDS", broken)
    [problem] = workarounds.check()
    assert "no longer logs 'Component %s started.'" in problem
