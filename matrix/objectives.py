"""Objectives and constraints of a search or a Pareto front: ``test_acc:max``, ``final_sparsity>=0.7``.

Pure parsing, shared by the sampled search (what the sampler is told) and the Pareto front (what
the reports show).  An objective or a constraint names a numeric metric of the trial record.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pytest_sweep.matrix.records import RESULT_METRICS

#: The record's numeric metrics an objective or a constraint may name.
METRICS = RESULT_METRICS
DIRECTIONS = ("max", "min")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|=>|=<|>|<|=)\s*(\S.*?)\s*$")


class SpecError(ValueError):
    """A malformed objective or constraint; the message says what to write instead."""


@dataclass(frozen=True)
class Objective:
    """One metric and its direction."""

    metric: str
    direction: str = "max"

    @property
    def sign(self) -> float:
        """+1 to maximise, -1 to minimise: ``sign * value`` is always to be maximised."""
        return 1.0 if self.direction == "max" else -1.0

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


@dataclass(frozen=True)
class Constraint:
    """``metric >= bound`` or ``metric <= bound``."""

    metric: str
    op: str
    bound: float

    def violation(self, value: float | None) -> float:
        """How far ``value`` is from feasible (0 or less: feasible; a missing value: 1)."""
        if value is None:
            return 1.0
        return self.bound - value if self.op == ">=" else value - self.bound

    def holds(self, value: float | None) -> bool:
        return self.violation(value) <= 0

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def _metric(name: str, flag: str, text: str) -> str:
    if name not in METRICS:
        raise SpecError(
            f"{flag}={text}: {name!r} is not a numeric metric of the record; use one of {', '.join(METRICS)}"
        )
    return name


def parse_objectives(text: str, flag: str = "--sweep-objective") -> tuple[Objective, ...]:
    """``test_acc:max,final_sparsity:max`` -> objectives (each metric once; direction max by default)."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise SpecError(f"{flag}={text!r}: give METRIC:max or METRIC:min, comma-separated, e.g. test_acc:max")
    out: list[Objective] = []
    for part in parts:
        name, sep, direction = part.partition(":")
        name, direction = name.strip(), direction.strip()
        _metric(name, flag, text)
        if sep and direction not in DIRECTIONS:
            raise SpecError(f"{flag}={text}: the direction of {name} must be max or min, not {direction!r}")
        if any(o.metric == name for o in out):
            raise SpecError(f"{flag}={text}: {name} is named twice; give each metric once")
        out.append(Objective(name, direction or "max"))
    if len(out) > 3:
        raise SpecError(f"{flag}={text}: at most three objectives (a front of more cannot be shown or judged)")
    return tuple(out)


def parse_constraint(text: str, flag: str = "--sweep-constraint") -> list[Constraint]:
    """``final_sparsity>=0.7`` (several comma-separated) -> constraints."""
    out: list[Constraint] = []
    parts = [p for p in text.split(",")]
    if not text.strip() or any(not p.strip() for p in parts):
        raise SpecError(f"{flag}={text!r}: give METRIC>=NUMBER or METRIC<=NUMBER, e.g. final_sparsity>=0.7")
    for part in parts:
        match = _CONSTRAINT.match(part)
        if match is None:
            raise SpecError(f"{flag}={text}: {part.strip()!r} is not METRIC>=NUMBER or METRIC<=NUMBER")
        name, op, number = match.groups()
        _metric(name, flag, text)
        op = {"=>": ">=", "=<": "<="}.get(op, op)
        if op not in (">=", "<="):
            raise SpecError(f"{flag}={text}: use >= or <= (a bound the metric may reach), not {op}")
        try:
            bound = float(number)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound):
            raise SpecError(f"{flag}={text}: {number!r} is not a finite number")
        out.append(Constraint(name, op, bound))
    return out


def metric_value(record: dict[str, Any], metric: str) -> float | None:
    """The record's metric as a finite float, or None."""
    value = record.get(metric)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
