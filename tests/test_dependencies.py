"""Safe to install beside another project's torch: ranges in the metadata, pins only for CI (issue 17, part 1).

The package metadata (``pyproject.toml``) carries lower bounds only, every runtime requirement
and runtime extra; the ``dev`` tooling extra alone may pin.  ``constraints.txt`` pins what CI
installs (torch and torchvision from the local wheels), ``constraints-min.txt`` the floors that
``tox -e minimums`` runs.  torchvision is the ``vision`` extra, imported only by the CIFAR-10 and
MNIST loaders; scikit-learn is gone (the digits ship in the package); scipy is declared and never
imported when the plugins load.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from pytest_sweep import BUILTIN_PLUGINS

from sweep_helpers import SweepPytester

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
CORE = [Requirement(text) for text in PROJECT["dependencies"]]
EXTRAS = {name: [Requirement(text) for text in reqs] for name, reqs in PROJECT["optional-dependencies"].items()}
RUNTIME = CORE + [req for name, reqs in EXTRAS.items() if name != "dev" for req in reqs]


def _pins(name: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert match, f"{name}: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def _floor(req: Requirement) -> Version:
    (spec,) = req.specifier
    return Version(spec.version)


@pytest.mark.parametrize("req", RUNTIME, ids=str)
def test_runtime_requirements_are_lower_bounds_only(req: Requirement) -> None:
    assert [spec.operator for spec in req.specifier] == [">="], f"{req}: a floor only (pins go to constraints.txt)"


def test_the_core_needs_neither_torchvision_nor_scikit_learn_and_admits_torch_2_13() -> None:
    core: dict[str, Requirement] = {canonicalize_name(req.name): req for req in CORE}
    assert "torchvision" not in core and "scikit-learn" not in core
    assert core["torch"].specifier.contains("2.13.0+cpu")  # the CPU build a user may already have
    assert "scipy" in core
    assert [str(r) for r in EXTRAS["vision"]] == ["torchvision>=0.29.1"]


def test_constraints_pin_every_requirement_inside_its_range() -> None:
    pins = _pins("constraints.txt")
    for req in [*RUNTIME, *EXTRAS["dev"]]:
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(pins[name]), f"constraints.txt: {name}=={pins[name]} is outside {req}"
    assert (pins["torch"], pins["torchvision"]) == (Version("2.14.1"), Version("0.29.1"))  # the local wheels
    # scikit-learn only for the docs' example plugin (its digits), through the docs tooling extra
    assert [name for name, reqs in EXTRAS.items() for r in reqs if canonicalize_name(r.name) == "scikit-learn"] == [
        "docs"
    ]


def test_the_floors_are_the_versions_tested() -> None:
    """Core floors are what ``tox -e minimums`` installs; the runtime extras' floors are what CI installs."""
    mins, pins = _pins("constraints-min.txt"), _pins("constraints.txt")
    for req in CORE:
        name = canonicalize_name(req.name)
        assert mins.get(name) == _floor(req), f"{req}: constraints-min.txt must install exactly the floor"
    core = {canonicalize_name(req.name) for req in CORE}
    for extra in ("vision", "ray", "search", "tensorboard", "mlflow"):
        for req in EXTRAS[extra]:
            if canonicalize_name(req.name) in core:  # scipy: the core's floor, which tox -e minimums runs
                assert _floor(req) == mins[canonicalize_name(req.name)], f"{req}: the core's floor"
                continue
            assert pins[canonicalize_name(req.name)] == _floor(req), f"{req}: the floor is the version CI runs"


def test_every_install_goes_through_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [line for line in makefile.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("-c constraints.txt" in line or "--no-deps" in line for line in installs), installs
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert "constraints = constraints.txt" in tox and "constraints = constraints-min.txt" in tox
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_loading_the_plugins_imports_neither_scipy_nor_torchvision() -> None:
    """Every built-in plugin, as a sweep loads them: the heavy libraries wait until they are used."""
    code = (
        "import importlib, json, sys\n"
        "import pytest_sweep.entry\n"
        f"for m in {sorted(BUILTIN_PLUGINS.values())!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"scipy", "sklearn", "torch", "torchvision", "matplotlib", "numpy"}


BLOCK_TORCHVISION = "import sys\n\nsys.modules['torchvision'] = None  # as where it is not installed\n"


def test_a_trial_that_needs_torchvision_fails_alone_when_it_is_missing(sweep_pytester: SweepPytester) -> None:
    pytester = sweep_pytester.pytester
    pytester.makepyfile(block_torchvision=BLOCK_TORCHVISION)
    sweep_pytester.range_config(
        sweep_pytester.DIGITS_BASE.replace('CONFIG_DATASET="digits"', 'CONFIG_DATASET="digits"|"mnist"')
    )
    result = pytester.runpytest_subprocess(
        "-p", "block_torchvision", *sweep_pytester.plugin_args, "--range-config=sweep.rc", "--sweep-output=out",
        timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    records = sweep_pytester.records(sweep_pytester.only_sweep_dir(pytester.path / "out"))
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "\n" not in failed[0]["error"]
    assert failed[0]["error"].startswith("MNIST needs torchvision, which is not installed; ")
    assert "pip install 'pytest-sweep[vision]'" in failed[0]["error"]
