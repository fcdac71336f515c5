"""Command-line options and ini values of the built-in plugins, defined without importing them.

pytest reads every option before it knows whether a sweep is active, and ``--help`` must list
them all, while the plugins themselves are imported only in a sweep (``pytest_sweep.entry``).
So the plugins' options live here, next to the core's (:mod:`pytest_sweep.matrix.options`), and
this module stays light: no import of a plugin, of ``tabulate`` or of the scheduling rules (the
``--sweep-metric`` type imports them when the option is given).  Each plugin reads its values
(``config.getoption``/``config.getini``) and validates them in its own ``pytest_configure``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix.options import non_negative_int, parse_float, positive_int

if TYPE_CHECKING:
    from pytest_sweep.matrix.scheduling import Objective

#: ``sweep.importance`` (and ``plugins/noise.py``): the noise floor in percentage points.
DEFAULT_IMPORTANCE_THRESHOLD = 0.5
#: ``sweep.ordering``: the orders ``--sweep-order`` accepts.
ORDERS = ("grid", "interleaved", "random")
#: ``sweep.tensorboard`` and ``sweep.mlflow``: how to install what they need.
TENSORBOARD_EXTRA = "pip install 'pytest-sweep[tensorboard]'"
MLFLOW_EXTRA = "pip install 'pytest-sweep[mlflow]'"


# -- sweep.gpu -----------------------------------------------------------------------------------
def _gpu(parser: pytest.Parser) -> None:
    parser.getgroup("sweep").addoption(
        "--sweep-workers-per-gpu",
        type=int,
        default=1,
        metavar="K",
        help="Pack K xdist workers (or, with --sweep-backend=ray, K Ray actors of num_gpus=1/K) onto each GPU "
        "(small models); default 1",
    )


# -- sweep.compare -------------------------------------------------------------------------------
def _compare(parser: pytest.Parser) -> None:
    group = parser.getgroup("sweep")
    group.addoption(
        "--sweep-compare",
        dest="sweep_compare",
        default=None,
        metavar="DIR",
        help="After the run, compare each trial's accuracy with the same config in the sweep folder DIR",
    )
    group.addoption(
        "--sweep-compare-fail",
        dest="sweep_compare_fail",
        action="append",
        default=[],
        metavar="METRIC:PP",
        help="With --sweep-compare: exit non-zero when a configuration's METRIC (test_acc or best_acc) dropped by "
        "more than PP percentage points (with seeds swept in both: by a one-sided test, Holm-corrected), or a "
        "result the baseline had is lost; hypervolume:PCT: when the Pareto front's hypervolume lost more than "
        "PCT percent (repeatable)",
    )
    parser.addini("sweep_compare", "Baseline sweep folder for --sweep-compare", default="")
    parser.addini("sweep_compare_fail", "Thresholds for --sweep-compare-fail (METRIC:PP ...)", type="args", default=[])


# -- sweep.importance ----------------------------------------------------------------------------
def _importance(parser: pytest.Parser) -> None:
    parser.getgroup("sweep").addoption(
        "--sweep-importance-threshold",
        dest="sweep_importance_threshold",
        default=None,
        metavar="PP",
        help="The noise floor in percentage points: without swept seeds, differences below the larger of PP "
        f"and one test image are noise (default: {DEFAULT_IMPORTANCE_THRESHOLD:g}); with CONFIG_SEED swept, an effect "
        "must also reach PP to count as important",
    )
    parser.addini(
        "sweep_importance_threshold",
        "Percentage points below which a parameter's effect is unimportant",
        default="",
    )


# -- sweep.ordering ------------------------------------------------------------------------------
def parse_order(text: str) -> str:
    """``--sweep-order``'s type."""
    if text not in ORDERS:
        raise argparse.ArgumentTypeError(f"{text!r}: use grid, interleaved or random")
    return text


def _ordering(parser: pytest.Parser) -> None:
    parser.getgroup("sweep").addoption(
        "--sweep-order",
        dest="sweep_order",
        type=parse_order,
        default=None,
        metavar="ORDER",
        help="Order of the trials: grid (as expanded), interleaved (spread over the grid) or random (CONFIG_SEED)",
    )
    parser.addini(
        "sweep_order",
        "Order of the trials: grid, interleaved or random (default interleaved with a scheduler, else grid)",
        default="",
    )


# -- sweep.schedulers ----------------------------------------------------------------------------
#: The reduction factors accepted: closer to 1 every epoch is a rung that stops almost nothing;
#: above 100 no trial but the best of a hundred ever reaches a second rung.
REDUCTION_RANGE = (1.1, 100.0)


def parse_reduction(text: str) -> float:
    value = parse_float(text)
    low, high = REDUCTION_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} must be from {low:g} to {high:g} (e.g. 2, 3 or 4)")
    return value


def parse_scheduler(text: str) -> str:
    if not text.strip() or not text.replace("-", "_").replace(".", "_").isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a scheduler name; use none, asha or median")
    return text.strip()


def parse_objective(text: str) -> Objective:
    from pytest_sweep.matrix.scheduling import MODES, Objective

    metric, sep, mode = text.strip().partition(":")
    if not metric.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: give an epoch metric, e.g. test_acc or test_loss:min")
    if sep and mode not in MODES:
        raise argparse.ArgumentTypeError(f"{text!r}: the direction after ':' must be max or min")
    return Objective(metric, mode or "max")


#: ``--sweep-asha-mode``: a trial below a rung's cutoff stops there, or every trial pauses there.
ASHA_MODES = ("stopping", "promotion")


def parse_asha_mode(text: str) -> str:
    if text.strip() not in ASHA_MODES:
        raise argparse.ArgumentTypeError(f"{text!r}: use stopping or promotion")
    return text.strip()


#: ``sweep.schedulers``: option -> (parser, ini name, ini default, help)
SCHEDULER_OPTIONS: dict[str, tuple[Callable[[str], Any], str, str, str]] = {
    "--sweep-scheduler": (
        parse_scheduler,
        "sweep_scheduler",
        "none",
        "Stop hopeless trials early: none, asha (asynchronous successive halving) or median",
    ),
    "--sweep-grace-epochs": (
        positive_int,
        "sweep_grace_epochs",
        "1",
        "Epochs before the first decision: ASHA's first rung, the median rule's warm-up",
    ),
    "--sweep-reduction": (
        parse_reduction,
        "sweep_reduction",
        "3",
        "ASHA's reduction factor eta: rungs at grace x eta^k epochs, the top 1/eta go on",
    ),
    "--sweep-metric": (
        parse_objective,
        "sweep_metric",
        "test_acc",
        "The epoch metric the scheduler compares, with :max (default) or :min, e.g. test_loss:min",
    ),
    "--sweep-startup-trials": (
        non_negative_int,
        "sweep_startup_trials",
        "3",
        "The median rule stops nothing before this many trials completed",
    ),
    "--sweep-asha-mode": (
        parse_asha_mode,
        "sweep_asha_mode",
        "stopping",
        "ASHA's mode: stopping (a trial below a rung's cutoff stops there) or promotion (every trial pauses "
        "at each rung, checkpointed, and the rung's best are continued later)",
    ),
}


def option_dest(flag: str) -> str:
    """``--sweep-grace-epochs`` -> ``sweep_grace_epochs``."""
    return flag.removeprefix("--").replace("-", "_")


def _schedulers(parser: pytest.Parser) -> None:
    group = parser.getgroup("sweep")
    for flag, (parse, ini, default, text) in SCHEDULER_OPTIONS.items():
        group.addoption(flag, dest=option_dest(flag), type=parse, default=None, metavar="VALUE", help=text)
        parser.addini(ini, f"{text} (default {default})", default=default)


# -- sweep.tensorboard ---------------------------------------------------------------------------
def _tensorboard(parser: pytest.Parser) -> None:
    parser.getgroup("sweep").addoption(
        "--sweep-tensorboard",
        dest="sweep_tensorboard",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="Log each trial's per-epoch metrics and the sweep's HParams for TensorBoard, into the sweep "
        f"folder or DIR/<sweep folder name> ({TENSORBOARD_EXTRA})",
    )
    parser.addini("sweep_tensorboard", "TensorBoard logs: true (the sweep folder) or a folder; empty: off", default="")


# -- sweep.mlflow --------------------------------------------------------------------------------
def _mlflow(parser: pytest.Parser) -> None:
    group = parser.getgroup("sweep")
    group.addoption(
        "--sweep-mlflow",
        dest="sweep_mlflow",
        nargs="?",
        const="",
        default=None,
        metavar="TRACKING_URI",
        help=f"Log the sweep to MLflow: a parent run, a nested run per trial (default store: mlruns/ beside the "
        f"sweep folders; {MLFLOW_EXTRA})",
    )
    group.addoption(
        "--sweep-mlflow-experiment",
        dest="sweep_mlflow_experiment",
        default=None,
        metavar="NAME",
        help="The MLflow experiment of --sweep-mlflow (default: the range config's file name)",
    )
    parser.addini(
        "sweep_mlflow", "MLflow tracking: true (mlruns/ beside the sweep folders) or a tracking URI", default=""
    )
    parser.addini("sweep_mlflow_experiment", "The MLflow experiment of --sweep-mlflow", default="")


def addoption(parser: pytest.Parser) -> None:
    """Every built-in plugin's options and ini values (after the core's, in the ``sweep`` group)."""
    _gpu(parser)
    _importance(parser)
    _compare(parser)
    _schedulers(parser)
    _ordering(parser)
    _tensorboard(parser)
    _mlflow(parser)
