"""Helpers shared by the test modules: hermetic runs of real sweeps (in process or in a subprocess).

Every inner run disables plugin autoloading (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) and loads exactly
the sweep's own plugins with ``-p``, so a stray plugin installed next to pytest-sweep cannot change
what the tests see.  ``OMP_NUM_THREADS=1`` keeps a trial subprocess from spinning two torch threads
on a busy two-core machine.  Test modules import what they need from here; ``conftest.py`` wraps
the same classes in fixtures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep import plugin_args

if TYPE_CHECKING:
    from pytest_sweep.matrix.collect import SweepItem

PLUGIN_ARGS = tuple(plugin_args())
#: The built-in plugins plus xdist, for runs with ``-n`` (autoload stays off).
XDIST_PLUGIN_ARGS = (*PLUGIN_ARGS, "-p", "xdist.plugin")
HERMETIC_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: The CIFAR-10/MNIST loaders and the dataloader input path need torchvision (the ``vision`` extra),
#: which the environment of the lowest versions (``tox -e minimums``, torch 2.13) cannot have.
needs_torchvision = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None, reason="needs torchvision: pip install -e '.[vision]'"
)
#: Generous: a trial subprocess imports torch (about 10 s on a busy machine).
SUBPROCESS_TIMEOUT = 300.0


class SweepTools:
    """Helpers that need no ``pytester`` (so module-scoped fixtures can use them)."""

    #: LeNet-5 on the bundled digits (UCI ML hand-written digits): no download, a fraction of a second per epoch.
    DIGITS_BASE = (
        'CONFIG_MODEL="lenet5"\n'
        'CONFIG_DATASET="digits"\n'
        'CONFIG_DEVICE="cpu"\n'
        'CONFIG_OPTIMIZER="adamw"\n'
        "CONFIG_NUM_EPOCHS=2\n"
        "CONFIG_BATCH_SIZE=64\n"
    )
    plugin_args = PLUGIN_ARGS

    @classmethod
    def digits_config(cls, *extra_lines: str) -> str:
        """The digits base config plus ``extra_lines`` (the swept keys)."""
        return cls.DIGITS_BASE + "".join(line + "\n" for line in extra_lines)

    @staticmethod
    def sweep_dirs(root: Path) -> list[Path]:
        return sorted(p for p in root.glob("sweep_*") if p.is_dir())

    @classmethod
    def only_sweep_dir(cls, root: Path) -> Path:
        found = cls.sweep_dirs(root)
        assert len(found) == 1, f"expected one sweep folder under {root}, found {found}"
        return found[0]

    @staticmethod
    def summary(sweep_dir: Path) -> list[dict[str, Any]]:
        data = json.loads((sweep_dir / "sweep_summary.json").read_text(encoding="utf-8"))
        assert isinstance(data, list)
        return data

    @classmethod
    def records(cls, sweep_dir: Path) -> dict[str, dict[str, Any]]:
        """The records of ``sweep_summary.json`` by config name."""
        return {r["config_file"]: r for r in cls.summary(sweep_dir)}

    @staticmethod
    def run_process(cwd: Path, *args: str, env: dict[str, str] | None = None, plugins: bool = True) -> pytest.RunResult:
        """``python -m pytest ARGS`` in ``cwd``: ``runpytest_subprocess`` for a module-scoped
        fixture (``pytester`` is function-scoped), so one real sweep can feed several tests."""
        full_env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
        full_env.update(HERMETIC_ENV)
        full_env.update(env or {})
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *(PLUGIN_ARGS if plugins else ()), *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        return pytest.RunResult(
            proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), time.monotonic() - started
        )


class SweepPytester(SweepTools):
    """``pytester`` with the sweep's plugins on every command line."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester

    @property
    def path(self) -> Path:
        return self.pytester.path

    def range_config(self, text: str, name: str = "sweep.rc") -> Path:
        path = self.path / name
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str) -> pytest.RunResult:
        """In process: for collection and usage errors (nothing there imports torch)."""
        return self.pytester.runpytest(*PLUGIN_ARGS, *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        """In a fresh interpreter: for runs that train (torch stays out of this process)."""
        return self.pytester.runpytest_subprocess(*PLUGIN_ARGS, *args, timeout=SUBPROCESS_TIMEOUT)

    def sweep_items(self, *args: str) -> list[SweepItem]:
        """The items a sweep collects in process (``inline_genitems``), each checked to be a sweep's."""
        from pytest_sweep.matrix.collect import SweepItem

        items, _ = self.pytester.inline_genitems(*PLUGIN_ARGS, *args)
        swept = [item for item in items if isinstance(item, SweepItem)]
        assert len(swept) == len(items), [type(item).__name__ for item in items]
        return swept


def assert_usage_error(result: pytest.RunResult, expected: str) -> None:
    """Exit code 4, exactly one ``ERROR:`` line, ``expected`` (a glob) on one line, no traceback."""
    output = result.stdout.lines + result.stderr.lines
    assert result.ret == pytest.ExitCode.USAGE_ERROR, "\n".join(output)
    assert "Traceback" not in "\n".join(output)
    assert "INTERNALERROR" not in "\n".join(output)
    assert len([line for line in output if line.startswith("ERROR:")]) == 1, "\n".join(output)
    result.stderr.fnmatch_lines([expected])
