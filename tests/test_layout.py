"""The layout's promise: imports go one way, floor by floor, and no runner leans on another.

Read from the sources (every import statement, those inside functions too), so a lazy import
that goes upward is caught like a top-level one.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Bottom to top. A module may import its own floor and those below it, never one above.
FLOORS = [
    {"upstream"},
    {"models", "data"},
    {"components"},
    {"pipeline"},
    {"lineage"},
    {"report"},
    {"runs"},
    {"local_runner", "beam_runner", "kubeflow"},
    {"cli"},
    {"benchmarks"},
]
RUNNERS = {"local_runner", "beam_runner", "kubeflow"}
FLOOR_OF = {name: i for i, names in enumerate(FLOORS) for name in names}


def project_modules() -> list[Path]:
    tops = [REPO / f"{name}.py" for name in FLOOR_OF if (REPO / f"{name}.py").is_file()]
    packages = [p for name in FLOOR_OF if (REPO / name).is_dir() for p in sorted((REPO / name).rglob("*.py"))]
    return tops + packages


def imported_tops(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(FLOOR_OF)


def test_every_project_module_has_a_floor():
    tops = {p.name.removesuffix(".py") for p in REPO.glob("*.py")} | {
        p.parent.name for p in REPO.glob("*/__init__.py")}
    assert tops - {"tests"} <= set(FLOOR_OF), "a new top-level module or package: give it a floor in FLOORS"


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_one_way(path):
    top = path.relative_to(REPO).parts[0].removesuffix(".py")
    upward = {name for name in imported_tops(path) if FLOOR_OF[name] > FLOOR_OF[top]}
    assert not upward, f"{path.relative_to(REPO)} imports {sorted(upward)} from a floor above its own"
    if top in RUNNERS:
        others = imported_tops(path) & (RUNNERS - {top})
        assert not others, f"runner {top} imports runner(s) {sorted(others)}"
