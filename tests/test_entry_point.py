"""One light ``pytest11`` entry point; the built-in plugins only in a sweep (issue 17, part 3).

Every pytest run in an environment with pytest-sweep installed loads ``pytest_sweep.entry``.  In a
run without a sweep it must add nothing but its few light modules, while ``--help`` still lists
every option, third-party implementations of our hooks still validate, ``-p no:NAME`` still turns
one built-in plugin off, and ``pytest -VV`` lists the plugin once, as pytest plugins are listed.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pytest_sweep.entry
from pytest_sweep import BUILTIN_PLUGINS, ENTRY_POINT, __version__, plugin_args
from pytest_sweep.cli import main as cli_main

from sweep_helpers import SweepPytester, assert_usage_error

#: What the entry point imports in a run without a sweep, and nothing else.
LIGHT_MODULES = {
    "pytest_sweep",
    "pytest_sweep.entry",
    "pytest_sweep.matrix",
    "pytest_sweep.matrix.errors",  # clip(), which the record's checks use (stdlib only)
    "pytest_sweep.matrix.hookspecs",
    "pytest_sweep.matrix.objectives",  # the search options' types (stdlib only)
    "pytest_sweep.matrix.options",
    "pytest_sweep.matrix.records",  # the result metrics' names, which objectives validates (stdlib only)
    "pytest_sweep.matrix.search_options",
    "pytest_sweep.plugins",
    "pytest_sweep.plugins.options",
    "pytest_sweep.plugins.trainer_hookspecs",  # the built-in trainer's factory hooks (pluggy only)
}

RECORD_MODULES = """\
import json, sys

def pytest_collection_finish(session):
    path = session.config.rootpath / "modules.json"
    path.write_text(json.dumps(sorted(sys.modules)))
"""


def _modules_loaded(pytester: pytest.Pytester, *args: str) -> set[str]:
    result = pytester.runpytest_subprocess(
        "-p", "xdist.plugin", *args, "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    result.assert_outcomes()
    assert result.ret == 0
    return set(json.loads((pytester.path / "modules.json").read_text()))


def test_a_run_without_a_sweep_imports_only_the_light_modules(sweep_pytester: SweepPytester) -> None:
    pytester = sweep_pytester.pytester
    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    without = _modules_loaded(pytester)
    with_us = _modules_loaded(pytester, *plugin_args())
    assert with_us - without == LIGHT_MODULES
    # and a sweep does load the built-in plugins, under the same entry point
    pytester.makefile(".rc", sweep='CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\n')
    swept = _modules_loaded(pytester, *plugin_args(), "--range-config=sweep.rc")
    assert set(BUILTIN_PLUGINS.values()) <= swept
    assert not {m for m in swept if m.split(".")[0] in ("torch", "torchvision", "scipy", "sklearn", "matplotlib")}


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?m)^\s+(--(?:sweep|range|config)-[a-z0-9-]+)", text))


def test_help_lists_every_option_that_a_sweep_knows(sweep_pytester: SweepPytester) -> None:
    plain = sweep_pytester.run("--help")
    swept = sweep_pytester.run("--help", "--range-config=anything")
    plain_flags, swept_flags = _flags(plain.stdout.str()), _flags(swept.stdout.str())
    assert plain_flags == swept_flags
    for flag in ("--range-config", "--sweep-workers-per-gpu", "--sweep-compare-fail", "--sweep-importance-threshold"):
        assert flag in plain_flags
    assert {"--sweep-scheduler", "--sweep-metric", "--sweep-order", "--sweep-backend"} <= plain_flags
    assert "sweep_order" in plain.stdout.str() and "sweep_compare_fail" in plain.stdout.str()  # ini values


@pytest.mark.parametrize("name", sorted(BUILTIN_PLUGINS))
def test_a_lazily_registered_plugin_defines_no_option_nor_hookspec(name: str) -> None:
    """The command line is parsed before a sweep is known: options live in the light modules."""
    module = importlib.import_module(BUILTIN_PLUGINS[name])
    assert not hasattr(module, "pytest_addoption"), f"{name}: move its options to plugins/options.py"
    assert not hasattr(module, "pytest_addhooks"), f"{name}: hookspecs are added by pytest_sweep.entry"


def test_the_only_entry_point_is_the_light_module() -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == dict([ENTRY_POINT])


TRAINER_CONFTEST = """\
import pytest
from pytest_sweep.matrix import Symbol


class Flat:
    def run(self, trial, ctx):
        return {"test_acc": 50.0 + float(trial.raw["CONFIG_TOY"]), "best_acc": 50.0}


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_TOY", "int", 0, "A toy knob")]


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Flat()
"""


def test_a_builtin_plugin_is_turned_off_by_its_name(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(TRAINER_CONFTEST)
    sweep_pytester.range_config("CONFIG_TOY=1|2\n")
    for extra, html in (((), True), (("-p", "no:sweep.html"), False)):
        result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-output=out", *extra)
        result.assert_outcomes(passed=2)
        (folder,) = sorted((sweep_pytester.path / "out").glob("sweep_*"))
        assert (folder / "sweep_summary.json").is_file()
        assert (folder / "sweep_report.html").is_file() is html
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()


@pytest.mark.parametrize("option", ["--range-config=sweep.rc", "--sweep-symbols"])
def test_a_sweep_without_the_core_is_a_usage_error(sweep_pytester: SweepPytester, option: str) -> None:
    sweep_pytester.range_config('CONFIG_MODEL="lenet5"\n')
    result = sweep_pytester.run(option, "-p", "no:sweep.core")
    assert_usage_error(result, f"ERROR: {option.split('=')[0]} needs the plugin sweep.core, which -p no:sweep.core *")


def test_a_conftests_sweep_hooks_validate_in_a_run_without_a_sweep(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(TRAINER_CONFTEST)
    sweep_pytester.pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    sweep_pytester.run("-p", "no:cacheprovider").assert_outcomes(passed=1)


EARLY_PLUGIN = """\
from pytest_sweep.matrix import Symbol

def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_EARLY_BIRD", "int", 0, "Declared by a plugin registered before ours")]
"""


def test_a_plugin_registered_before_ours_is_checked_against_our_hookspecs(sweep_pytester: SweepPytester) -> None:
    pytester = sweep_pytester.pytester
    pytester.makepyfile(early=EARLY_PLUGIN, misspelt="def pytest_sweep_validate_trial(trail):\n    return None\n")
    pytester.syspathinsert()
    listed = pytester.runpytest("-p", "early", *plugin_args(), "--sweep-symbols")
    assert listed.ret == 0
    listed.stdout.fnmatch_lines(["from early:", "  CONFIG_EARLY_BIRD (*"])
    # a wrong argument name fails at start-up, even in a run without a sweep (pluggy checks it
    # when our hookspecs are added)
    bad = pytester.runpytest_subprocess("-p", "misspelt", *plugin_args(), "--collect-only")
    assert bad.ret != 0
    assert "trail" in bad.stdout.str() + bad.stderr.str()


def test_the_trainers_factory_hooks_are_checked_in_every_run(sweep_pytester: SweepPytester) -> None:
    """The built-in trainer's hookspecs (``plugins/trainer_hookspecs.py``, not the core's) are added by
    the entry point in every run: a conftest that answers them runs without a sweep and with
    ``-p no:sweep.trainer``, and a wrong argument name is refused at start-up either way."""
    pytester = sweep_pytester.pytester
    pytester.makeconftest(
        "from pytest_sweep.matrix import Symbol\n\n"
        "def pytest_sweep_declare_symbols():\n    return [Symbol('CONFIG_TOY', 'int', 0, 'A toy knob')]\n\n"
        "def pytest_sweep_make_dataset(trial):\n    return None\n\n"
        "def pytest_sweep_make_pruner(trial, model, optimizer, steps_per_epoch):\n    return None\n"
    )
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    assert sweep_pytester.run("-q").ret == pytest.ExitCode.OK
    sweep_pytester.range_config("CONFIG_TOY=1|2\n")
    collected = sweep_pytester.run("--collect-only", "-q", "-p", "no:sweep.trainer", "--range-config=sweep.rc")
    assert collected.ret == pytest.ExitCode.OK, collected.stdout.str()
    assert "2 tests collected" in collected.stdout.str()
    pytester.makeconftest("def pytest_sweep_make_model(trial, dataset):\n    return None\n")
    bad = pytester.runpytest_subprocess(*plugin_args(), "-q")
    assert bad.ret != 0
    assert "dataset" in bad.stdout.str() + bad.stderr.str()


def test_a_late_start_through_a_conftests_pytest_plugins_still_runs_the_core(sweep_pytester: SweepPytester) -> None:
    pytester = sweep_pytester.pytester
    pytester.makeconftest(f"pytest_plugins = [{ENTRY_POINT[1]!r}]\n")
    listed = pytester.runpytest("--sweep-symbols")
    assert listed.ret == 0
    listed.stdout.fnmatch_lines(["* config symbols (a range config may set any of them)"])
    sweep_pytester.range_config("CONFIG_NO_SUCH_KNOB=1\n")
    assert_usage_error(pytester.runpytest("--range-config=sweep.rc"), "*CONFIG_NO_SUCH_KNOB*")


def test_pytest_version_lists_the_plugin_once(pytester: pytest.Pytester) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-VV", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    ours = [line for line in text.splitlines() if line.strip().startswith("pytest-sweep-")]
    assert ours == [f"  pytest-sweep-{__version__} at {pytest_sweep.entry.__file__}"], text


def test_the_console_script_prints_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"pytest-sweep {__version__}\n"
