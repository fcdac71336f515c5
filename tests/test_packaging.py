"""The installed wheel holds one import name, so other projects' packages never shadow ours.

A regular (not editable) install of the built wheel into a fresh virtual environment without
torch, next to a user project that has its own top-level ``plugins``, ``trainers`` and ``matrix``
packages: pytest (autoloading our entry points) must run the user's tests unchanged, both as
``pytest`` and as ``python -m pytest``, and still collect a sweep.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# one worker builds the wheel for all of them: two `pip wheel` of the checkout at once share its build/
# folder, and one removes what the other copies ("No such file or directory", seen under -n auto)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]

ROOT = Path(__file__).resolve().parents[1]
#: What the light environment needs to run pytest and collect a sweep (no torch, no xdist).
LIGHT_DEPS = ("pytest", "pluggy", "iniconfig", "packaging", "pygments", "tabulate")


def _installed(name: str) -> str | None:
    """The installed version (pygments is a pytest dependency only since 8.4)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, ROOT)
    (found,) = out.glob("pytest_sweep-*.whl")
    return found


@pytest.fixture(scope="module")
def light_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("light") / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    pins = [f"{name}=={version}" for name in LIGHT_DEPS if (version := _installed(name))]
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps", *pins, wheel)
    return venv


USER_TEST = """\
import matrix
import plugins
import trainers
from plugins.helpers import double


def test_the_users_own_packages():
    assert (matrix.OWNER, plugins.OWNER, trainers.OWNER) == ("user", "user", "user")
    assert double(21) == 42
"""

RANGE = 'CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\nCONFIG_LEARNING_RATE=0.001|0.003\n'


def _user_project(root: Path) -> Path:
    project = root / "project"
    for name in ("matrix", "plugins", "trainers"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text('OWNER = "user"\n', encoding="utf-8")
    (project / "plugins" / "helpers.py").write_text("def double(x):\n    return 2 * x\n", encoding="utf-8")
    (project / "conftest.py").write_text("import plugins\n\nassert plugins.OWNER == 'user'\n", encoding="utf-8")
    (project / "tests").mkdir()
    (project / "tests" / "test_user.py").write_text(USER_TEST, encoding="utf-8")
    (project / "sweep.rc").write_text(RANGE, encoding="utf-8")
    return project


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
        names = set(zf.namelist())
    assert {t for t in tops if not t.endswith(".dist-info")} == {"pytest_sweep"}
    assert {"pytest_sweep/py.typed", "pytest_sweep/matrix/plugin.py", "pytest_sweep/plugins/trainer.py"} <= names
    assert {"pytest_sweep/entry.py", "pytest_sweep/cli.py", "pytest_sweep/plugins/options.py"} <= names
    assert "pytest_sweep/trainers/loop.py" in names


def test_a_users_own_plugins_trainers_and_matrix_packages_still_work(light_venv: Path, tmp_path: Path) -> None:
    project = _user_project(tmp_path)
    env = _user_env()  # the user's pytest autoloads our entry point
    bin_dir = light_venv / "bin"
    for command in ([bin_dir / "pytest"], [bin_dir / "python", "-m", "pytest"]):
        out = _run(*command, "-q", "-p", "no:cacheprovider", cwd=project, env=env)
        assert "1 passed" in out
    out = _run(bin_dir / "pytest", "--range-config=sweep.rc", "--collect-only", "-q", cwd=project, env=env)
    assert "sweep.rc::config_002[LEARNING_RATE=0.003]" in out and "2 tests collected" in out
    plugins = _run(bin_dir / "python", "-m", "pytest", "--trace-config", "--co", "-q", cwd=project, env=env)
    assert "pytest_sweep/entry.py" in plugins  # our entry point did load
    assert "pytest_sweep/matrix/plugin.py" not in plugins  # and, without a sweep, nothing else


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH")}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


def test_the_checkouts_root_cannot_stand_in_for_the_installed_package(light_venv: Path, tmp_path: Path) -> None:
    """From the repository's root (first on ``sys.path``), the installed wheel is what runs (issue 17, part 4)."""
    python = light_venv / "bin" / "python"
    where = _run(python, "-c", "import pytest_sweep.matrix as m; print(m.__file__)", cwd=ROOT, env=_user_env())
    assert Path(where.strip()).is_relative_to(light_venv)
    out = _run(
        python,
        "-m",
        "pytest",
        "--range-config=defconfigs/digits-smoke",
        f"--sweep-output={tmp_path / 'out'}",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=ROOT,
        env=_user_env(),
    )
    assert "4 tests collected" in out
