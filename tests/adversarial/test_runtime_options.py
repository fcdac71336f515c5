"""Hostile values for every runtime option and ini value: each one a usage error in one line, or accepted as meant.

The option types are called directly (they are what argparse calls); the ini values and the
options that are checked later (at configure, at session start) go through a real in-process
run with a torch-free plugin trainer, one run per value.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest
from runtime_toy import write_toy

from pytest_sweep.matrix import options
from pytest_sweep.matrix.options import address_problem
from pytest_sweep.plugins import options as plugin_options

from sweep_helpers import SweepPytester, assert_usage_error

BAD = argparse.ArgumentTypeError


def _rejects(parse: Callable[[str], Any], text: str) -> str:
    with pytest.raises(BAD) as info:
        parse(text)
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


# -- --sweep-trial-timeout ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "nan", "-nan", "-1", "0", "-0", "1e-6", "1e-5", "0.05", "0.0999999", "inf", "-inf", "1e8",
     "1e400", "0x10", "5s", "1,5", "١e-3", "10**2", "None"],
)  # fmt: skip
def test_trial_timeout_refuses(text: str) -> None:
    _rejects(options._timeout, text)


@pytest.mark.parametrize(("text", "value"), [("0.1", 0.1), (" 2 ", 2.0), ("1e7", 1e7), ("١", 1.0), ("1_0", 10.0)])
def test_trial_timeout_accepts(text: str, value: float) -> None:
    assert options._timeout(text) == value


# -- --sweep-summary-interval ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "x", "nan", "-1", "-1e-9", "inf", "1e309", "-inf"])
def test_summary_interval_refuses(text: str) -> None:
    _rejects(options._non_negative_float, text)


# -- whole numbers: --sweep-epochs, --sweep-grace-epochs, --sweep-startup-trials, --sweep-ray-node-retries ------
@pytest.mark.parametrize("text", ["", "1.0", "1e3", "0x10", "one", "1 2", "9" * 5000, "-1", "0"])
def test_positive_int_refuses(text: str) -> None:
    _rejects(options.positive_int, text)


@pytest.mark.parametrize("text", ["-1", "-0.0", "x", "", "2.5"])
def test_non_negative_int_refuses(text: str) -> None:
    _rejects(options.non_negative_int, text)


# -- positive numbers: --sweep-minutes-per-trial, --sweep-ray-cpus-per-trial ---------------------------------
@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "1e400", "", "x"])
def test_positive_float_refuses(text: str) -> None:
    _rejects(options._positive_float, text)


# -- the schedulers' options --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["1", "1.0", "1.05", "0.5", "-3", "nan", "inf", "100.5", "1e6", "", "three", "1.000000000001"]
)
def test_reduction_refuses(text: str) -> None:
    _rejects(plugin_options.parse_reduction, text)


@pytest.mark.parametrize("text", ["1.1", "2", "3", "100"])
def test_reduction_accepts(text: str) -> None:
    assert plugin_options.parse_reduction(text) == float(text)


@pytest.mark.parametrize("text", ["", "   ", "a b", "asha;rm -rf", "../x", "1asha", "asha\nmedian"])
def test_scheduler_name_refuses(text: str) -> None:
    _rejects(plugin_options.parse_scheduler, text)


@pytest.mark.parametrize(
    "text", ["", ":", ":max", "test_acc:", "test_acc:MAX", "test_acc:min:max", "test acc", "1acc", "acc-1", "acc:up"]
)
def test_metric_refuses(text: str) -> None:
    _rejects(plugin_options.parse_objective, text)


# -- --sweep-ray-address -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    ["", " ", "http://x", "ray://host:10001", "host:abc", "[::1]:6379x", "host:0", "host:70000", ":6379", "a b:1",
     "::1:6379", "host:", "host:+1", "host:-1", "host: 1", "LOCAL", "Auto", "localhost", "[::1]", "h:1:2", "-x:1",
     "host:６３７９", "x" * 300 + ":1", "host:1\n", "\x00:1"],
)  # fmt: skip
def test_ray_address_refuses(address: str) -> None:
    problem = address_problem(address)
    assert problem is not None and "\n" not in problem


@pytest.mark.parametrize(
    "address", ["auto", "local", "127.0.0.1:6379", "[::1]:6379", "head:6379", "ray-head.ns.svc.cluster.local:6379"]
)
def test_ray_address_accepts(address: str) -> None:
    assert address_problem(address) is None


# -- ini values, through a real run ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        ("sweep_summary_interval = -1", "*ini value sweep_summary_interval = '-1'*"),
        ("sweep_summary_interval = nan", "*ini value sweep_summary_interval = 'nan'*"),
        ("sweep_progress = verbose", "*ini value sweep_progress = 'verbose'*"),
        ("sweep_backend = ray2", "*ini value sweep_backend = 'ray2'*"),
        ("sweep_scheduler = bogus!", "*ini value sweep_scheduler = 'bogus!'*"),
        ("sweep_scheduler = hyperband", "*--sweep-scheduler=hyperband: no installed plugin provides this scheduler*"),
        ("sweep_grace_epochs = 0", "*ini value sweep_grace_epochs = '0'*"),
        ("sweep_grace_epochs = 1.5", "*ini value sweep_grace_epochs = '1.5'*"),
        ("sweep_reduction = 1.000000000001", "*ini value sweep_reduction = '1.000000000001'*"),
        ("sweep_reduction = inf", "*ini value sweep_reduction = 'inf'*"),
        ("sweep_metric = test acc", "*ini value sweep_metric = 'test acc'*"),
        ("sweep_startup_trials = -1", "*ini value sweep_startup_trials = '-1'*"),
        ("sweep_max_combinations = 1e3", "*ini value sweep_max_combinations = '1e3' is not a whole number*"),
        ("sweep_max_combinations = 0", "*ini value sweep_max_combinations = '0' must be above 0*"),
        ("sweep_minutes_per_trial = nan", "*ini value sweep_minutes_per_trial = 'nan'*"),
        ("sweep_minutes_per_trial = inf", "*ini value sweep_minutes_per_trial = 'inf'*"),
        ("sweep_minutes_per_trial = ten", "*ini value sweep_minutes_per_trial = 'ten' is not a number*"),
    ],
)
def test_a_bad_ini_value_is_one_usage_line(sweep_pytester: SweepPytester, ini: str, expected: str) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    sweep_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}"), expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sweep-minutes-per-trial=inf"], "*--sweep-minutes-per-trial: inf*"),
        (["--sweep-trial-timeout=0.01"], "*--sweep-trial-timeout: 0.01 is below 0.1 s*"),
        (["--sweep-scheduler=asha", "--sweep-reduction=1.01"], "*--sweep-reduction: 1.01 must be from 1.1 to 100*"),
        (["--sweep-scheduler=ASHA"], "*--sweep-scheduler=ASHA: no installed plugin provides this scheduler*"),
        (["--sweep-progress=all"], "*--sweep-progress: invalid choice*"),
        (["--sweep-backend=slurm"], "*--sweep-backend: invalid choice*"),
    ],
)
def test_a_bad_option_is_one_usage_line(sweep_pytester: SweepPytester, args: list[str], expected: str) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}", *args), expected)
