"""A plugin trainer that misbehaves: exceptions of every kind, malformed results, folders changed under it.

One real sweep per group (a subprocess, module-scoped: the faults include ``SystemExit`` and
folders removed under the run), one trial per fault; each fault is a test id that checks its
trial's record.  What must hold for every one: the trial fails (or passes) alone, in one line
that says why, the others run, and the summary holds every trial.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
from runtime_toy import TOY, run_sweep_process

from sweep_helpers import SweepTools

EXCEPTIONS = {
    "sysexit0": ("failed", "SystemExit: 0"),
    "sysexit_str": ("failed", "SystemExit: bye"),
    "generatorexit": ("failed", "GeneratorExit"),
    "base": ("failed", "Stubborn: a BaseException of the trainer's own"),
    "memory": ("failed", "MemoryError"),
    "recursion": ("failed", "RecursionError: maximum recursion depth exceeded*"),
    "badstr": ("failed", "BadStr (its message could not be shown: RuntimeError)"),
    "huge": ("failed", "ValueError: xxxxxxxx*(1000000 characters)"),
    "newlines": ("failed", "ValueError"),
    "empty_trialfailed": ("failed", "TrialFailed"),
    "unicode": ("failed", "ValueError: bad \\u202e\\x00 text \\udcff"),
    "oserror": ("failed", "OSError: [[]Errno 28] No space left on device"),
}
T = "the trainer conftest.ToyTrainer returned"
RETURNS = {
    "generator": ("failed", f"{T} a generator from run(), not a dict of metrics"),
    "mappingproxy": ("passed", None),
    "numpy": ("passed", None),
    "numpy_history": ("passed", None),
    "fraction": ("passed", None),
    "negative": ("passed", None),
    "decimal": ("failed", f"{T} 'test_acc' as Decimal Decimal('50.5'), not a number"),
    "complex": ("failed", f"{T} 'test_acc' as complex (1+2j), not a number"),
    "str_acc": ("failed", f"{T} 'test_acc' as str '95.0', not a number"),
    "bool_acc": ("failed", f"{T} 'test_acc' as bool True, not a number"),
    "nan_best": ("failed", "best_acc is NaN"),
    "nested_history": ("passed", None),
    "long_history": ("passed", None),
    "int_key": ("failed", f"{T} a key 7; the keys must be strings"),
    "tuple_history": ("passed", None),
    "inf_epochs": ("failed", "epochs_run is infinite"),
    "str_time": ("failed", f"{T} 'training_time' as str 'fast', not a number"),
    "list_threads": ("failed", f"{T} 'torch_threads' as list [[]1], not a number"),
    "int_device": ("failed", f"{T} 'device' as int 0; give a string or null"),
    "own_trainer": ("passed", None),
    "none": ("failed", f"{T} None from run(); return a dict of metrics with test_acc"),
    "empty": ("failed", f"{T} no test_acc; return a dict of metrics with test_acc"),
    "list": ("failed", f"{T} a list from run(), not a dict of metrics"),
}
FOLDERS = {
    "rm_trial": ("passed", None),
    "file_trial": ("failed", "cannot write its folder *: *"),
    "dir_metrics": ("failed", "cannot write its folder *: *"),
    "rm_sweep": ("passed", None),
}


def _grid(actions: list[str], prefix: str) -> str:
    return "CONFIG_TOY_DO=" + "|".join(f'"{prefix}:{a}"' for a in actions) + "\n"


def _sweep(tmp: Path, grid: str, *args: str) -> dict[str, Any]:
    (tmp / "conftest.py").write_text(TOY, encoding="utf-8")
    (tmp / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp / "sweep.rc").write_text(grid, encoding="utf-8")
    result = run_sweep_process(tmp, "--range-config=sweep.rc", "--sweep-output=out", "-p", "no:cacheprovider", *args)
    folders = SweepTools.sweep_dirs(tmp / "out")
    records = []
    if folders and (folders[0] / "sweep_summary.json").is_file():
        records = json.loads((folders[0] / "sweep_summary.json").read_text(encoding="utf-8"))
    return {"result": result, "records": {r["CONFIG_TOY_DO"].partition(":")[2]: r for r in records}}


@pytest.fixture(scope="module")
def exceptions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _sweep(tmp_path_factory.mktemp("exceptions"), _grid(list(EXCEPTIONS), "raise"))


@pytest.fixture(scope="module")
def returns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _sweep(tmp_path_factory.mktemp("returns"), _grid(list(RETURNS), "return"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _sweep(tmp_path_factory.mktemp("folders"), _grid(list(FOLDERS), "folder"))


def _check(data: dict[str, Any], name: str, status: str, error: str | None) -> None:
    rec = data["records"][name]
    assert rec["status"] == status, rec
    if error is None:
        assert rec["error"] is None
    else:
        assert isinstance(rec["error"], str) and "\n" not in rec["error"] and len(rec["error"]) <= 300
        assert fnmatch.fnmatchcase(rec["error"], error), rec["error"]


@pytest.mark.parametrize(("name", "expected"), EXCEPTIONS.items(), ids=list(EXCEPTIONS))
def test_an_exception_fails_its_trial_alone(exceptions: dict[str, Any], name: str, expected: tuple[str, str]) -> None:
    _check(exceptions, name, *expected)


def test_the_exceptions_sweep_ran_every_trial(exceptions: dict[str, Any]) -> None:
    result = exceptions["result"]
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert len(exceptions["records"]) == len(EXCEPTIONS)


@pytest.mark.parametrize(("name", "expected"), RETURNS.items(), ids=list(RETURNS))
def test_a_result_is_taken_or_refused_in_a_sentence(
    returns: dict[str, Any], name: str, expected: tuple[str, str]
) -> None:
    _check(returns, name, *expected)


def test_numbers_of_other_types_become_plain_numbers(returns: dict[str, Any]) -> None:
    rec = returns["records"]["numpy"]
    assert (rec["test_acc"], rec["epochs_run"], rec["best_acc"]) == (50.5, 2, 51.0)
    assert returns["records"]["fraction"]["test_acc"] == 50.5
    assert returns["records"]["own_trainer"]["trainer"] == "toy v2"
    assert returns["records"]["negative"]["trainer"] == "conftest.ToyTrainer"


@pytest.mark.parametrize(("name", "expected"), FOLDERS.items(), ids=list(FOLDERS))
def test_a_folder_changed_under_the_trial(folders: dict[str, Any], name: str, expected: tuple[str, str]) -> None:
    _check(folders, name, *expected)


def test_the_folders_sweep_ends_in_one_piece(folders: dict[str, Any]) -> None:
    result = folders["result"]
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1 and "INTERNALERROR" not in out and "Traceback" not in out, out


def test_a_sweep_folder_replaced_by_a_file_fails_the_rest_in_one_line_each(tmp_path: Path) -> None:
    grid = 'CONFIG_TOY_DO="ok"|"folder:file_sweep"|"ok3"|"ok4"\n'
    data = _sweep(tmp_path, grid)
    result = data["result"]
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1 and "INTERNALERROR" not in out and "Traceback" not in out, out
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["*could not write * files*"])
