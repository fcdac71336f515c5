"""A separate plugin package, found through its ``pytest11`` entry point, extends a sweep.

``tests/plugin_pkg`` is an installable example package (``sweep_mytrainer``, entry point
``mytrainer``).  Each test lays it out on a fresh path entry with a ``.dist-info`` folder
built from the package's own ``pyproject.toml``, which is exactly what
``importlib.metadata`` (and so pytest's plugin loading) reads, then runs pytest in a
subprocess with that path entry on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from sweep_helpers import SweepPytester

PKG = Path(__file__).resolve().parent / "plugin_pkg"
TOY_RC = "CONFIG_MYTRAINER_DEPTH=1|2|5\n"


def install_on_path(site: Path) -> str:
    """Copy the package under ``site`` with a ``.dist-info``; return the entry point's name."""
    project = tomllib.loads((PKG / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    entry_points = project["entry-points"]["pytest11"]
    shutil.copytree(PKG / "sweep_mytrainer", site / "sweep_mytrainer")
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", encoding="utf-8"
    )
    lines = ["[pytest11]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (name,) = entry_points
    return str(name)


def load_example() -> ModuleType:
    """The example plugin, imported here to recompute what its trainer must have measured."""
    spec = importlib.util.spec_from_file_location("_example_mytrainer", PKG / "sweep_mytrainer" / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def site(sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = sweep_pytester.path / "site"
    site.mkdir()
    assert install_on_path(site) == "mytrainer"
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def test_entry_point_plugin_trains_and_reports(
    sweep_pytester: SweepPytester, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # autoloading on: every pytest11 entry point loads, pytest-sweep's own and the example's
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    sweep_pytester.range_config(TOY_RC)
    result = sweep_pytester.pytester.runpytest_subprocess("--range-config=sweep.rc", "--sweep-output=out", timeout=120)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "plugins: *sweep-mytrainer-0.1.0*",
            "sweep: 3 combinations; trainer: mytrainer/perceptron d1, mytrainer/perceptron d2, mytrainer/perceptron d5",
        ]
    )

    example = load_example()
    expected = {f"config_00{i}": [acc for _, acc in example.fit(depth)] for i, depth in ((1, 1), (2, 2), (3, 5))}
    assert len({accs[-1] for accs in expected.values()}) == 3  # the depths really give different results

    sweep_dir = sweep_pytester.only_sweep_dir(sweep_pytester.path / "out")
    report = json.loads((sweep_dir / "mytrainer_report.json").read_text(encoding="utf-8"))
    assert report["torch_imported"] is False  # the built-in trainer (torch) never ran
    assert report["records"] == [
        {
            "config_file": "config_001",
            "status": "passed",
            "depth": "1",
            "test_acc": expected["config_001"][-1],
            "trainer": "mytrainer/perceptron d1",
        },
        {
            "config_file": "config_002",
            "status": "passed",
            "depth": "2",
            "test_acc": expected["config_002"][-1],
            "trainer": "mytrainer/perceptron d2",
        },
        {
            "config_file": "config_003",
            "status": "passed",
            "depth": "5",
            "test_acc": expected["config_003"][-1],
            "trainer": "mytrainer/perceptron d5",
        },
    ]
    best = max(expected, key=lambda name: expected[name][-1])
    assert report["best"] == best

    # the built-in reporters saw the same sweep
    records = sweep_pytester.records(sweep_dir)
    assert {n: r["test_acc"] for n, r in records.items()} == {n: a[-1] for n, a in expected.items()}
    assert {r["device"] for r in records.values()} == {"python"}
    assert records["config_003"]["CONFIG_MYTRAINER_DEPTH"] == 5  # the swept column, typed
    analysis = (sweep_dir / "sweep_analysis.txt").read_text(encoding="utf-8")
    assert f"Config file: {best}\n" in analysis
    result.stdout.fnmatch_lines([f"best: {best} at {expected[best][-1]:.2f}% test accuracy; *"])

    for name, folder in ((n, r["trial_dir"]) for n, r in records.items()):
        log = (sweep_dir / folder / "output.log").read_text(encoding="utf-8")
        passes = len(expected[name])
        assert log.count("mytrainer pass ") == passes
        assert f"mytrainer pass {passes}/{passes}  " in log
        assert " on digits " not in log and " on cifar10 " not in log  # no built-in training
        metrics = json.loads((sweep_dir / folder / "training_metrics.json").read_text(encoding="utf-8"))
        assert [e["test_acc"] for e in metrics["epochs"]] == expected[name]  # epoch hook history


def test_entry_point_name_loads_the_plugin_without_autoload(sweep_pytester: SweepPytester, site: Path) -> None:
    # "mytrainer" is no module name: only the entry point of that name resolves it
    result = sweep_pytester.pytester.runpytest_subprocess(
        *sweep_pytester.plugin_args, "-p", "mytrainer", "--sweep-symbols", timeout=120
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "from mytrainer:",
            "  CONFIG_MYTRAINER_DEPTH (int, from 1 to 50; default 1)",
            "      Training passes of the mytrainer perceptron",
        ]
    )


def test_without_the_entry_point_the_symbol_is_unknown(sweep_pytester: SweepPytester, site: Path) -> None:
    # autoloading off and no -p mytrainer: the package is importable but not registered
    path = sweep_pytester.range_config(TOY_RC)
    result = sweep_pytester.pytester.runpytest_subprocess(
        *sweep_pytester.plugin_args, "--range-config=sweep.rc", "--collect-only", timeout=120
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {path.resolve()}:1: CONFIG_MYTRAINER_DEPTH is not a known symbol*"])
    assert "sweep_mytrainer" not in sys.modules  # nothing here imported it either


def _console(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_the_installed_plugins_reporter_runs_under_pytest_sweep_report(
    sweep_pytester: SweepPytester, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pytest-sweep report DIR`` calls the same ``pytest_sweep_finished`` as the sweep: the
    installed package's reporter writes its file again, beside the built-in reports."""
    sweep_pytester.range_config(TOY_RC)
    result = sweep_pytester.pytester.runpytest_subprocess(
        *sweep_pytester.plugin_args, "-p", "mytrainer", "--range-config=sweep.rc", "--sweep-output=out", timeout=120
    )
    result.assert_outcomes(passed=3)
    sweep_dir = sweep_pytester.only_sweep_dir(sweep_pytester.path / "out")
    written = (sweep_dir / "mytrainer_report.json").read_text(encoding="utf-8")
    summary = (sweep_dir / "sweep_summary.json").read_bytes()
    for name in ("mytrainer_report.json", "sweep_summary.csv", "sweep_analysis.txt"):
        (sweep_dir / name).unlink()

    # autoloading off: only pytest-sweep's own plugins report
    done = _console(sweep_pytester.path, "report", str(sweep_dir))
    assert done.returncode == 0, done.stderr
    assert not (sweep_dir / "mytrainer_report.json").exists()
    assert (sweep_dir / "sweep_summary.csv").is_file() and (sweep_dir / "sweep_analysis.txt").is_file()

    # autoloading on: the pytest11 entry point's reporter runs too, on the same records
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    done = _console(sweep_pytester.path, "report", str(sweep_dir))
    assert done.returncode == 0, done.stderr
    again = json.loads((sweep_dir / "mytrainer_report.json").read_text(encoding="utf-8"))
    assert again == json.loads(written)
    assert (sweep_dir / "sweep_summary.json").read_bytes() == summary  # the input is not rewritten
    assert done.stdout.splitlines()[-1].startswith(f"{sweep_dir}: sweep_analysis.txt, ")


WRAPPER = """\
import json

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_sweep_finished(config, sweep):
    answers = yield
    (sweep.dir / "wrapped.json").write_text(json.dumps({"from_summary": sweep.from_summary, "n": len(sweep.records)}))
    return answers
"""
FAILING = """\
def pytest_sweep_finished(config, sweep):
    raise OSError(28, "No space left on device")
"""


def test_under_pytest_sweep_report_a_wrapper_runs_once_and_a_failing_reporter_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script calls the hook as a sweep does: a plugin's wrapper runs around every
    reporter, and a reporter that raises is named alone while the others write their files."""
    from synthetic import grid_records

    from pytest_sweep import cli

    folder = tmp_path / "sweep"
    folder.mkdir()
    records = grid_records({"CONFIG_X": ["1", "2"]}, lambda v: 80.0 + float(v["CONFIG_X"]))
    (folder / "sweep_summary.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "wrapping_reporter.py").write_text(WRAPPER, encoding="utf-8")
    (tmp_path / "failing_reporter.py").write_text(FAILING, encoding="utf-8")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setenv("PYTEST_PLUGINS", "wrapping_reporter,failing_reporter")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["report", str(folder)])
    err = capsys.readouterr().err.splitlines()
    assert code == cli.USAGE_ERROR and len(err) == 1, err
    assert ": failing_reporter could not write its files: OSError: No space left on device" in err[0], err
    assert json.loads((folder / "wrapped.json").read_text(encoding="utf-8")) == {"from_summary": True, "n": 2}
    assert (folder / "sweep_summary.csv").is_file() and (folder / "sweep_report.html").is_file()
