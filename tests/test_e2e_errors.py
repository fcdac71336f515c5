"""A user's mistake is a usage error (exit code 4) with one line naming where and the fix.

Every case runs pytest in process (nothing trains), asserts the exit code, the one
``ERROR:`` line (``file:line`` or the flag, and what to do) and that no traceback
reached the terminal.
"""

from __future__ import annotations

import pytest

from sweep_helpers import SweepPytester, assert_usage_error

GOOD = 'CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\nCONFIG_LEARNING_RATE=0.001|0.003\n'


def range_file(sp: SweepPytester, text: str) -> str:
    """Write the range config; return its path as the error message names it."""
    return str(sp.range_config(text).resolve())


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            GOOD + "CONFIG_FOO=1\n",
            4,
            "CONFIG_FOO is not a known symbol: no installed plugin consumes it (pytest --sweep-symbols lists them)",
            id="unknown-symbol",
        ),
        pytest.param(
            'CONFIG_MODEL="lenet5"\nCONFIG_LEARNIG_RATE=0.1\n',
            2,
            "CONFIG_LEARNIG_RATE is not a known symbol: no installed plugin consumes it; "
            "did you mean CONFIG_LEARNING_RATE? (pytest --sweep-symbols lists them)",
            id="near-miss-symbol",
        ),
        pytest.param(
            "CONFIG_BATCH_SIZE=abc\n",
            1,
            "CONFIG_BATCH_SIZE=abc is not a number; expected int, at least 1",
            id="bad-int",
        ),
        pytest.param(
            GOOD + "CONFIG_BATCH_SIZE=64|abc\n",
            4,
            "CONFIG_BATCH_SIZE=abc is not a number; expected int, at least 1",
            id="bad-int-among-choices",
        ),
        pytest.param(
            'CONFIG_OPTIMIZER="adamx"\n',
            1,
            "CONFIG_OPTIMIZER=adamx is not one of sgd|adam|adamw|adamwadv|adamwspam|adamwprune",
            id="bad-choice",
        ),
        pytest.param(
            "CONFIG_ADAM_BETA1=1.5\n",
            1,
            "CONFIG_ADAM_BETA1=1.5 is out of range; expected float, from 0 to 1",
            id="out-of-bounds",
        ),
        pytest.param(
            GOOD + "CONFIG_BATCH_SIZE\n",
            4,
            "expected KEY=VALUE, e.g. CONFIG_BATCH_SIZE=128; got 'CONFIG_BATCH_SIZE'",
            id="no-equals",
        ),
        pytest.param(
            "CONFIG_LEARNING_RATE=0.1:0.2:0.6\n",
            1,
            "0.1:0.2:0.6 does not land on 0.6 (it gives 0.1, 0.3, 0.5); use an end of 0.5 or 0.7",
            id="bad-range",
        ),
        pytest.param(
            'CONFIG_BATCH_SIZE=64\nCONFIG_MODEL="lenet5"\nCONFIG_BATCH_SIZE=128\n',
            3,
            "CONFIG_BATCH_SIZE is already set on line 1; keep one definition (list several values as a|b)",
            id="duplicate-key",
        ),
    ],
)
def test_range_config_mistake_names_file_line_and_fix(
    sweep_pytester: SweepPytester, text: str, line: int, message: str
) -> None:
    path = range_file(sweep_pytester, text)
    result = sweep_pytester.run("--range-config=sweep.rc")
    assert_usage_error(result, f"ERROR: {path}:{line}: {message}")


@pytest.mark.parametrize("text", ["", "\n# only a comment\n\n"], ids=["empty", "comments-only"])
def test_empty_range_config(sweep_pytester: SweepPytester, text: str) -> None:
    path = range_file(sweep_pytester, text)
    result = sweep_pytester.run("--range-config=sweep.rc")
    what = "the file is empty" if not text.strip() else "no parameters found"
    assert_usage_error(result, f"ERROR: {path}: {what}; add at least one CONFIG_...=value line")


def test_missing_range_config(sweep_pytester: SweepPytester) -> None:
    result = sweep_pytester.run("--range-config=missing.rc")
    assert_usage_error(
        result, "ERROR: missing.rc: cannot read range config: No such file or directory; check the --range-config path"
    )


def test_missing_config_dir(sweep_pytester: SweepPytester) -> None:
    result = sweep_pytester.run("--config-dir=nowhere")
    assert_usage_error(result, "ERROR: nowhere: config directory not found; run `make sweep-generate*")


def test_grid_above_max_combinations(sweep_pytester: SweepPytester) -> None:
    path = range_file(sweep_pytester, GOOD + "CONFIG_WEIGHT_DECAY=0.0|0.05\n")
    result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-max-combinations=3")
    assert_usage_error(
        result,
        f"ERROR: {path}: 4 combinations exceed the limit of 3; "
        "narrow the ranges or raise the limit with --sweep-max-combinations=4",
    )
    # the same grid is fine at its size
    ok = sweep_pytester.run("--range-config=sweep.rc", "--sweep-max-combinations=4", "--collect-only", "-q")
    assert ok.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--sweep-set", "FOO"],
            "*error: argument --sweep-set: 'FOO' is not KEY=VALUE (e.g. CONFIG_NUM_EPOCHS=5)",
            id="sweep-set-not-assignment",
        ),
        pytest.param(
            ["--sweep-set", "CONFIG_NOPE=1"],
            "ERROR: --sweep-set CONFIG_NOPE=1: CONFIG_NOPE is not a known symbol (pytest --sweep-symbols lists them)",
            id="sweep-set-unknown",
        ),
        pytest.param(
            ["--sweep-set", "CONFIG_NUM_EPOCH=1"],
            "ERROR: --sweep-set CONFIG_NUM_EPOCH=1: CONFIG_NUM_EPOCH is not a known symbol; "
            "did you mean CONFIG_NUM_EPOCHS? (pytest --sweep-symbols lists them)",
            id="sweep-set-near-miss",
        ),
        pytest.param(
            ["--sweep-set", "CONFIG_BATCH_SIZE=x"],
            "ERROR: --sweep-set: CONFIG_BATCH_SIZE=x is not a number; expected int, at least 1",
            id="sweep-set-bad-value",
        ),
        pytest.param(["--sweep-epochs=0"], "*error: argument --sweep-epochs: 0 must be at least 1", id="epochs-zero"),
        pytest.param(
            ["--sweep-epochs=two"], "*error: argument --sweep-epochs: 'two' is not a whole number", id="epochs-text"
        ),
        pytest.param(
            ["--sweep-device=gpu"], "ERROR: --sweep-device=gpu: use auto, cpu, cuda or cuda:N", id="bad-device"
        ),
        pytest.param(
            ["--sweep-minutes-per-trial=0"],
            "*error: argument --sweep-minutes-per-trial: 0 must be above 0",
            id="minutes-zero",
        ),
        pytest.param(
            ["--sweep-summary-interval=-1"],
            "*error: argument --sweep-summary-interval: -1 must be a number of seconds, 0 or more",
            id="summary-interval-negative",
        ),
        pytest.param(
            ["-o", "sweep_summary_interval=often"],
            "ERROR: ini value sweep_summary_interval = 'often': use a number of seconds, 0 or more",
            id="summary-interval-ini",
        ),
    ],
)
def test_bad_flag_names_the_flag_and_fix(sweep_pytester: SweepPytester, args: list[str], expected: str) -> None:
    sweep_pytester.range_config(GOOD)
    result = sweep_pytester.run("--range-config=sweep.rc", *args)
    assert_usage_error(result, expected)


def test_sweep_generate_needs_a_range_config(sweep_pytester: SweepPytester) -> None:
    result = sweep_pytester.run("--sweep-generate=generated")
    assert_usage_error(result, "ERROR: --sweep-generate needs --range-config=FILE (the range config to expand)")
    assert not (sweep_pytester.path / "generated").exists()


def test_sweep_generate_reports_a_bad_range_config(sweep_pytester: SweepPytester) -> None:
    path = range_file(sweep_pytester, "CONFIG_BATCH_SIZE=abc\n")
    result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-generate=generated")
    assert_usage_error(result, f"ERROR: {path}:1: CONFIG_BATCH_SIZE=abc is not a number; expected int, at least 1")
    assert not (sweep_pytester.path / "generated").exists()


def test_conflicting_symbol_declarations_name_both_plugins(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(
        """
        from pytest_sweep.matrix import Symbol

        def pytest_sweep_declare_symbols():
            return [Symbol("CONFIG_NUM_EPOCHS", "str", "ten", "Epochs, spelled out")]
        """
    )
    sweep_pytester.range_config(GOOD)
    result = sweep_pytester.run("--range-config=sweep.rc")
    assert_usage_error(result, "ERROR: symbol CONFIG_NUM_EPOCHS declared as int by *trainer and as str by *conftest.py")


def test_a_plugin_declaring_something_else_than_symbols(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.pytester.makeconftest(
        """
        def pytest_sweep_declare_symbols():
            return ["CONFIG_DEPTH"]
        """
    )
    sweep_pytester.range_config(GOOD)
    result = sweep_pytester.run("--range-config=sweep.rc")
    assert_usage_error(result, "ERROR: plugin *conftest.py: pytest_sweep_declare_symbols must return Symbol objects")


def test_every_unknown_symbol_is_named_at_once_in_file_order(sweep_pytester: SweepPytester) -> None:
    """A file with several unknown symbols needs one run to clean up, not one run per symbol."""
    path = range_file(
        sweep_pytester,
        GOOD + "CONFIG_ZETA=1\n# CONFIG_NOT_A_THING is not set\nCONFIG_NUM_EPOCH=2\nCONFIG_ALPHA=y\n",
    )
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only")
    assert_usage_error(
        result,
        f"ERROR: {path}: 4 unknown symbols: no installed plugin consumes them (pytest --sweep-symbols lists them); "
        "fix or remove each:",
    )
    result.stderr.fnmatch_lines(
        [
            f"  {path}:4: CONFIG_ZETA",
            f"  {path}:5: CONFIG_NOT_A_THING",
            f"  {path}:6: CONFIG_NUM_EPOCH; did you mean CONFIG_NUM_EPOCHS?",
            f"  {path}:7: CONFIG_ALPHA",
        ],
        consecutive=True,
    )
