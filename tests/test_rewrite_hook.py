"""``pytest_sweep_rewrite_range_config``: a plugin rewrites a parsed range file before expansion.

The hook's contract, with a conftest plugin: the rewritten parameters and run list are what is
collected (ids and folders carry the runs' labels), its notes are shown once per file, its
``RangeConfigError`` is a usage error, and every key it produces must be a declared symbol.
"""

from __future__ import annotations

import pytest

from sweep_helpers import SweepPytester

PLUGIN = """
from dataclasses import replace

from pytest_sweep.matrix import RangeConfigError, Symbol
from pytest_sweep.matrix.rangeconfig import Param, Rewritten, Run


def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_LEGACY_OPTIMIZERS", "str", None, "Comma-separated optimizers (a legacy spelling)")]


def pytest_sweep_rewrite_range_config(rc, symbols):
    legacy = rc.param("CONFIG_LEGACY_OPTIMIZERS")
    if legacy is None:
        return None
    if legacy.values[0] == "bad":
        raise RangeConfigError(rc.path, legacy.line, "bad is not an optimizer list; write sgd,adamw")
    if legacy.values[0] == "undeclared":
        return Rewritten(replace(rc, params=(Param("CONFIG_NOBODY", ("1",), 0, "fixed"),)))
    names = legacy.values[0].split(",")
    params = [p for p in rc.params if p.key != "CONFIG_LEGACY_OPTIMIZERS"]
    params.append(Param("CONFIG_OPTIMIZER", (names[0],), legacy.line, "fixed", quoted=True))
    runs = tuple(Run(f"lenet5_{name}", {"CONFIG_OPTIMIZER": name}) for name in names)
    return Rewritten(replace(rc, params=tuple(params), runs=runs), notes=(f"{len(runs)} runs from a legacy list",))
"""

BASE = 'CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\nCONFIG_NUM_EPOCHS=1\n'


def test_the_rewritten_runs_are_collected_with_their_labels(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(PLUGIN)
    sweep_pytester.range_config(BASE + 'CONFIG_LEGACY_OPTIMIZERS="sgd,adamw"\nCONFIG_BATCH_SIZE=64|128\n')
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "sweep: sweep.rc: 2 runs from a legacy list",
            "sweep: 4 combinations; trainer: lenet5/digits/adamw/none e1 b128, lenet5/digits/adamw/none e1 b64, "
            "lenet5/digits/sgd/none e1 b128, lenet5/digits/sgd/none e1 b64",
            "*",
            "sweep.rc::config_001[lenet5_sgd-BATCH_SIZE=64]",
            "sweep.rc::config_002[lenet5_sgd-BATCH_SIZE=128]",
            "sweep.rc::config_003[lenet5_adamw-BATCH_SIZE=64]",
            "sweep.rc::config_004[lenet5_adamw-BATCH_SIZE=128]",
        ]
    )
    assert result.stdout.str().count("2 runs from a legacy list") == 1


def test_a_file_the_plugin_does_not_recognise_is_left_alone(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(PLUGIN)
    sweep_pytester.range_config(BASE + "CONFIG_BATCH_SIZE=64|128\n")
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["sweep.rc::config_001[BATCH_SIZE=64]", "sweep.rc::config_002[BATCH_SIZE=128]"])
    assert "legacy" not in result.stdout.str()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bad", "ERROR: {path}:4: bad is not an optimizer list; write sgd,adamw"),
        ("undeclared", "ERROR: {path}:0: CONFIG_NOBODY is not a known symbol*"),
    ],
)
def test_a_rewrite_mistake_is_a_usage_error(sweep_pytester: SweepPytester, value: str, expected: str) -> None:
    sweep_pytester.pytester.makeconftest(PLUGIN)
    path = sweep_pytester.range_config(BASE + f'CONFIG_LEGACY_OPTIMIZERS="{value}"\n').resolve()
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected.format(path=path)])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
