"""Print constraints.txt: the exact version of every package CI installs, read from this environment.

CI (``make test``, ``tox``, ``.ci/run``) installs with ``pip install -c constraints.txt ...``, so
it gets these versions whatever is newest on the index; the package metadata itself carries ranges
only.  Run it in an environment where the suite passes, after changing a dependency:

    .venv/bin/python .ci/freeze_constraints.py > constraints.txt

It follows the requirements that ``pyproject.toml`` declares, the core's and every extra's (and the
build requirement, setuptools), through every installed distribution's metadata, markers evaluated
for this interpreter.  The environment needs every extra installed: the Makefile's
``.[dev,ray,vision,docs,search,tensorboard,mlflow]``.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def roots() -> list[str]:
    """Every requirement pyproject.toml declares (core and extras) and the build requirement."""
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return [*reqs, *data["build-system"]["requires"]]


def closure(roots: list[str]) -> dict[str, str]:
    """Canonical name -> installed version, for every distribution the roots need."""
    found: dict[str, str] = {}
    todo = [(Requirement(r), frozenset(Requirement(r).extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = importlib.metadata.distribution(req.name)
        if name != "pytest-sweep":
            found[name] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            env = default_environment()
            if sub.marker is not None and not any(
                sub.marker.evaluate({**env, "extra": extra}) for extra in (extras or {""})
            ):
                continue
            todo.append((sub, frozenset(sub.extras)))
    return found


def main() -> int:
    pins = closure(roots())
    print("# Exact versions for CI (pip install -c constraints.txt ...): written by .ci/freeze_constraints.py")
    print("# from an environment where the suite passed. The package metadata has ranges only (pyproject.toml).")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
