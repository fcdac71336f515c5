"""Command-line options and ini values of the built-in plugins, defined without importing them.

pytest reads every option before it knows whether a sweep is active, and ``--help`` must list
them all, while the plugins themselves are imported only in a sweep (``pytest_sweep.entry``).
So the plugins' options live here, next to the core's (:mod:`pytest_sweep.matrix.options`), and
this module stays light: no import of a plugin, of ``tabulate`` or of the scheduling rules (the
``--sweep-metric`` type imports them when the option is given).

It also reads them: each plugin's values are resolved once (command line first, then the ini
value), in that plugin's own ``pytest_configure``, into a small frozen object or value kept in
``config.stash`` (:func:`scheduler_options`, :func:`compare_options`, :func:`sweep_order`,
:func:`importance_threshold`, :func:`tensorboard_setting`, :func:`mlflow_options`).  A plugin
turned off with ``-p no:NAME`` reads nothing, so a bad value of its options fails only where it
runs.  The core's options are :class:`~pytest_sweep.matrix.options.SweepOptions`
(``--sweep-workers-per-gpu`` among them: the Ray backend packs its actors by it too).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_sweep.matrix.options import non_negative_int, parse_float, positive_int, sweep_options

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


# -- reading them, once per plugin -----------------------------------------------------------------
_T = TypeVar("_T")


def _once(config: pytest.Config, key: pytest.StashKey[_T], read: Callable[[pytest.Config], _T]) -> _T:
    """``read(config)`` the first time, then the value kept in ``config.stash``."""
    if key not in config.stash:
        config.stash[key] = read(config)
    return config.stash[key]


#: the words an ini value of a tracker (``sweep_tensorboard``, ``sweep_mlflow``) reads as on or off
TRUE_WORDS = ("1", "true", "yes", "on", "y")
FALSE_WORDS = ("", "0", "false", "no", "off", "n")


# sweep.compare
@dataclass(frozen=True)
class CompareOptions:
    """``--sweep-compare`` and ``--sweep-compare-fail`` (option, else ini)."""

    #: the baseline folder as given; empty: no comparison
    baseline: str
    #: where a relative baseline is: the invocation folder for the option, the rootdir for the ini value
    base: Path
    #: the ``METRIC:PP`` thresholds as given
    fails: tuple[str, ...]


def _compare_options(config: pytest.Config) -> CompareOptions:
    opt = config.getoption("sweep_compare", None)
    raw = opt if opt is not None else str(config.getini("sweep_compare")).strip()
    fails = list(config.getoption("sweep_compare_fail", None) or []) or list(config.getini("sweep_compare_fail"))
    base = config.invocation_params.dir if opt is not None else config.rootpath
    return CompareOptions(str(raw), base, tuple(str(f) for f in fails))


_COMPARE = pytest.StashKey[CompareOptions]()


def compare_options(config: pytest.Config) -> CompareOptions:
    return _once(config, _COMPARE, _compare_options)


# sweep.importance
def shown(text: str, limit: int = 40) -> str:
    """A user's value in an error line: escaped (no raw control characters) and at most ``limit`` long."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def parse_threshold(text: str, flag: str = "--sweep-importance-threshold") -> float:
    """A non-negative finite number of percentage points; else a one-line ``pytest.UsageError``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise pytest.UsageError(f"{flag}={shown(text)}: use a number of percentage points, 0 or more (e.g. {flag}=0.5)")
    return value


def _importance_threshold(config: pytest.Config) -> float | None:
    opt = config.getoption("sweep_importance_threshold", None)
    if opt is not None:
        return parse_threshold(str(opt))
    try:
        raw = str(config.getini("sweep_importance_threshold")).strip()
    except ValueError:  # the option's plugin is not loaded
        return None
    return parse_threshold(raw, "ini value sweep_importance_threshold") if raw else None


_IMPORTANCE = pytest.StashKey["float | None"]()


def importance_threshold(config: pytest.Config) -> float | None:
    """The user's noise threshold (option, else ini), or None when neither is set."""
    return _once(config, _IMPORTANCE, _importance_threshold)


# sweep.schedulers
@dataclass(frozen=True)
class SchedulerOptions:
    """The scheduler options, parsed (command line first, then the ini value)."""

    name: str
    grace: int
    eta: float
    objective: Objective
    startup: int
    asha_mode: str = "stopping"

    @property
    def promotion(self) -> bool:
        return self.name == "asha" and self.asha_mode == "promotion"


def _scheduler_options(config: pytest.Config) -> SchedulerOptions:
    values: list[Any] = []
    for flag, (parse, ini, _, _) in SCHEDULER_OPTIONS.items():
        value = config.getoption(option_dest(flag), None)
        if value is None:
            raw = str(config.getini(ini)).strip()
            try:
                value = parse(raw)
            except argparse.ArgumentTypeError as exc:
                why = str(exc).removeprefix(f"{raw!r}: ")
                raise pytest.UsageError(f"ini value {ini} = {raw!r}: {why}") from None
        values.append(value)
    found = SchedulerOptions(*values)
    if found.asha_mode == "promotion" and found.name != "asha":
        raise pytest.UsageError(
            f"--sweep-asha-mode=promotion needs --sweep-scheduler=asha (the scheduler is {found.name}); "
            "add --sweep-scheduler=asha or drop the mode"
        )
    if found.promotion:
        search = sweep_options(config).search.search
        if search != "grid":
            raise pytest.UsageError(
                f"--sweep-asha-mode=promotion works on a grid sweep (--sweep-search is {search}: a sampled "
                "trial's values are drawn when it starts, so it cannot be split into stages); "
                "use --sweep-asha-mode=stopping with a sampler"
            )
    return found


_SCHEDULER = pytest.StashKey[SchedulerOptions]()


def scheduler_options(config: pytest.Config) -> SchedulerOptions:
    """The options' values; a bad ini value is a usage error naming it."""
    return _once(config, _SCHEDULER, _scheduler_options)


# sweep.ordering
def _sweep_order(config: pytest.Config) -> str:
    value = config.getoption("sweep_order", None)
    if value is None:
        value = str(config.getini("sweep_order")).strip()
        if not value:
            return "interleaved" if sweep_options(config).scheduler != "none" else "grid"
        if value not in ORDERS:
            raise pytest.UsageError(f"ini value sweep_order = {value!r}: use grid, interleaved or random")
    return str(value)


_ORDER = pytest.StashKey[str]()


def sweep_order(config: pytest.Config) -> str:
    """``--sweep-order`` (else the ini value; without either: interleaved with a scheduler, else grid)."""
    return _once(config, _ORDER, _sweep_order)


# sweep.tensorboard
def _tensorboard_setting(config: pytest.Config) -> Path | bool | None:
    opt = config.getoption("sweep_tensorboard", None)
    if opt is not None:
        return None if not str(opt).strip() else config.invocation_params.dir / Path(str(opt)).expanduser()
    raw = str(config.getini("sweep_tensorboard")).strip()
    if raw.lower() in FALSE_WORDS:
        return False
    if raw.lower() in TRUE_WORDS:
        return None
    return config.rootpath / Path(raw).expanduser()


_TENSORBOARD = pytest.StashKey["Path | bool | None"]()


def tensorboard_setting(config: pytest.Config) -> Path | bool | None:
    """False: off; None: on, into the sweep folder; a path: on, into that folder."""
    return _once(config, _TENSORBOARD, _tensorboard_setting)


# sweep.mlflow
@dataclass(frozen=True)
class MlflowOptions:
    """``--sweep-mlflow`` and ``--sweep-mlflow-experiment`` (option, else ini)."""

    #: the tracking URI or folder as given; None: off; empty: the default store
    uri: str | None
    #: where a relative folder is: the invocation folder for the option, the rootdir for the ini value
    base: Path
    #: the experiment's name; empty: the range config's file name
    experiment: str


def _mlflow_options(config: pytest.Config) -> MlflowOptions:
    opt = config.getoption("sweep_mlflow", None)
    uri: str | None
    if opt is not None:
        uri, base = str(opt).strip(), config.invocation_params.dir
    else:
        uri, base = str(config.getini("sweep_mlflow")).strip(), config.rootpath
        if uri.lower() in FALSE_WORDS:
            uri = None
        elif uri.lower() in TRUE_WORDS:
            uri = ""
    given = config.getoption("sweep_mlflow_experiment", None)
    name = str(given if given is not None else config.getini("sweep_mlflow_experiment")).strip()
    return MlflowOptions(uri, base, name)


_MLFLOW = pytest.StashKey[MlflowOptions]()


def mlflow_options(config: pytest.Config) -> MlflowOptions:
    return _once(config, _MLFLOW, _mlflow_options)
