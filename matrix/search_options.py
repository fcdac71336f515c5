"""The search options: ``--sweep-search``, ``--sweep-trials``, ``--sweep-sampler-seed``,
``--sweep-continuous``, ``--sweep-objective`` and ``--sweep-constraint``, read once into
:class:`SearchSettings` (command line first, then the ini value), part of
:class:`~pytest_sweep.matrix.options.SweepOptions`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from pytest_sweep.matrix.objectives import Constraint, Objective, SpecError, parse_constraint, parse_objectives

#: ``--sweep-search``: the grid, or one of Optuna's samplers.
SEARCHES = ("grid", "random", "qmc", "tpe", "gp", "cmaes", "nsga2")
#: Samplers that optimise several objectives jointly.
MULTI_OBJECTIVE = ("random", "qmc", "tpe", "gp", "nsga2")
DEFAULT_OBJECTIVE = "test_acc:max"


def _search(text: str) -> str:
    name = text.strip().lower()
    if name not in SEARCHES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a search; use one of {', '.join(SEARCHES)}")
    return name


def _trials(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of trials") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} must be from 0 to 4294967295")
    return value


def _objectives(text: str) -> tuple[Objective, ...]:
    try:
        return parse_objectives(text, flag="")
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("=")) from None


def _constraint(text: str) -> list[Constraint]:
    try:
        return parse_constraint(text, flag="")
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("=")) from None


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sweep")
    group.addoption(
        "--sweep-search",
        dest="sweep_search",
        type=_search,
        default=None,
        metavar="NAME",
        help="How configurations are chosen: grid (every combination, the default) or an Optuna sampler "
        "(random, qmc, tpe, gp, cmaes, nsga2) trying --sweep-trials of them; pip install pytest-sweep[search]",
    )
    group.addoption(
        "--sweep-trials",
        dest="sweep_trials",
        type=_trials,
        default=None,
        metavar="N",
        help="With a sampler: how many configurations to try (items trial_001 ... trial_N)",
    )
    group.addoption(
        "--sweep-sampler-seed",
        dest="sweep_sampler_seed",
        type=_seed,
        default=None,
        metavar="N",
        help="The sampler's seed (default 0), separate from CONFIG_SEED: the same seed gives the same "
        "configurations in a serial run",
    )
    group.addoption(
        "--sweep-continuous",
        dest="sweep_continuous",
        action="store_true",
        default=None,
        help="With a sampler: offer each numeric range a:s:b as the continuous interval [a, b] instead of its values",
    )
    group.addoption(
        "--sweep-objective",
        dest="sweep_objective",
        type=_objectives,
        default=None,
        metavar="METRIC:DIR,...",
        help="What the search optimises and the reports rank by: record metrics with max or min, "
        "e.g. test_acc:max,final_sparsity:max (several: the reports show the Pareto front)",
    )
    group.addoption(
        "--sweep-constraint",
        dest="sweep_constraint",
        action="append",
        type=_constraint,
        default=[],
        metavar="METRIC>=X",
        help="A trial is feasible only if its METRIC>=X (or <=X); infeasible ones leave the front, "
        "and samplers that use constraints are told (repeatable)",
    )
    parser.addini("sweep_search", "grid or an Optuna sampler: random, qmc, tpe, gp, cmaes, nsga2", default="grid")
    parser.addini("sweep_trials", "Configurations a sampler tries", default="")
    parser.addini("sweep_sampler_seed", "The sampler's seed", default="0")
    parser.addini("sweep_continuous", "Offer numeric ranges as continuous intervals (bool)", type="bool", default=False)
    parser.addini("sweep_objective", "Objectives: METRIC:max|min, comma-separated", default=DEFAULT_OBJECTIVE)
    parser.addini("sweep_constraint", "Constraints: METRIC>=X or METRIC<=X ...", type="args", default=[])


@dataclass(frozen=True)
class SearchSettings:
    """The search options of a run, resolved once."""

    search: str = "grid"
    trials: int | None = None
    seed: int = 0
    continuous: bool = False
    objectives: tuple[Objective, ...] = (Objective("test_acc", "max"),)
    constraints: tuple[Constraint, ...] = ()
    #: whether --sweep-objective or --sweep-constraint was given (else the reports stay as they were)
    explicit: bool = False

    @property
    def sampled(self) -> bool:
        return self.search != "grid"


def _ini(config: pytest.Config, name: str, parse: object) -> object:
    raw = str(config.getini(name)).strip()
    try:
        return parse(raw)  # type: ignore[operator]
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini value {name} = {raw!r}: {exc}") from None


def resolve(config: pytest.Config) -> SearchSettings:
    """The run's search settings; a bad ini value or a bad combination is a usage error.

    Read once, into :class:`~pytest_sweep.matrix.options.SweepOptions` (its ``search``)."""
    opt = config.getoption
    search = opt("sweep_search", None) or _ini(config, "sweep_search", _search)
    trials = opt("sweep_trials", None)
    if trials is None and str(config.getini("sweep_trials")).strip():
        trials = _ini(config, "sweep_trials", _trials)
    seed = opt("sweep_sampler_seed", None)
    if seed is None:
        seed = _ini(config, "sweep_sampler_seed", _seed)
    continuous = opt("sweep_continuous", None)
    if continuous is None:
        continuous = bool(config.getini("sweep_continuous"))
    objectives = opt("sweep_objective", None)
    explicit = objectives is not None
    if objectives is None:
        raw = str(config.getini("sweep_objective")).strip()
        explicit = raw != DEFAULT_OBJECTIVE
        objectives = _ini(config, "sweep_objective", _objectives)
    given = [c for group in opt("sweep_constraint", None) or [] for c in group]
    if not given:
        given = [c for text in config.getini("sweep_constraint") for c in _ini_constraint(text)]
    explicit = explicit or bool(given)
    result = SearchSettings(
        str(search),
        trials,
        int(seed),
        bool(continuous),
        tuple(objectives),
        tuple(given),
        explicit,
    )
    _check(result, given_trials=opt("sweep_trials", None) is not None)
    return result


def _ini_constraint(text: str) -> list[Constraint]:
    try:
        return parse_constraint(text, flag="")
    except SpecError as exc:
        raise pytest.UsageError(f"ini value sweep_constraint = {text!r}: {str(exc).removeprefix('=')}") from None


def _check(s: SearchSettings, given_trials: bool) -> None:
    from pytest_sweep.matrix.study import missing_packages

    missing = missing_packages(s.search) if s.sampled else []
    if missing:
        extra = " ".join(m for m in missing if m != "optuna")
        raise pytest.UsageError(
            f"--sweep-search={s.search} needs {' and '.join(missing)}: pip install 'pytest-sweep[search]'"
            + (f" {extra}" if extra else "")
        )
    if s.sampled and s.trials is None:
        raise pytest.UsageError(
            f"--sweep-search={s.search} needs --sweep-trials=N (how many configurations the sampler tries)"
        )
    if not s.sampled and given_trials:
        raise pytest.UsageError(
            "--sweep-trials applies to a sampled search; add --sweep-search=random|qmc|tpe|gp|cmaes|nsga2 "
            "(the grid runs every combination)"
        )
    if len(s.objectives) > 1 and s.search not in ("grid", *MULTI_OBJECTIVE):
        raise pytest.UsageError(
            f"--sweep-search={s.search} optimises one objective; with {len(s.objectives)} objectives use "
            "nsga2, tpe, gp, random or qmc"
        )
