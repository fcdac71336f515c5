"""The Pareto front of a sweep: pure functions, records -> :class:`Front`.

A *configuration* is a trial, or the trials that differ only in ``CONFIG_SEED`` (replicates,
grouped as :mod:`~pytest_sweep.plugins.replicates` groups them); its value on each objective is
the mean over its passed seeds.  Only passed trials count (a trial stopped early never finished,
a failed one has nothing to show).

**Domination, with the seed noise.**  With every objective turned to "larger is better" (a
``:min`` objective's values negated), configuration A dominates B when A is at least as good as
B on every objective (by the means) and better *beyond the noise* on at least one: by more than
``t95(nA + nB - 2) * sqrt(sdA²/nA + sdB²/nB)`` (a 95% two-sided interval of the difference of
two means).  Without swept seeds there is no estimate of the noise and the margin is 0: plain
Pareto domination.  So a configuration leaves the front only when the data show another is
better, never on a difference the seeds cannot resolve; the noise-aware front contains the plain
one.

**Constraints** (``final_sparsity>=0.7``) are judged on a configuration's means; an infeasible
configuration is never on the front.

**Hypervolume**: the volume dominated by the front, up to a reference point 10% of the range
below the worst feasible configuration on each objective (in "larger is better" terms).  Two
fronts are compared with one reference point computed over both (:func:`reference_point`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_sweep.matrix.objectives import Constraint, Objective, metric_value
from pytest_sweep.plugins.replicates import configurations
from pytest_sweep.plugins.stats import t95

NOISE_RULE = (
    "A dominates B: at least as good on every objective (means over seeds) and better by more than "
    "t95 * sqrt(sdA^2/nA + sdB^2/nB) on one; without swept seeds, plain domination"
)


@dataclass(frozen=True)
class Point:
    """One configuration on the objectives (``means`` in the metrics' own units and directions)."""

    label: str
    trials: tuple[str, ...]
    swept: dict[str, Any]
    means: tuple[float, ...]
    sds: tuple[float | None, ...]
    n: int
    feasible: bool = True

    def signed(self, objectives: Sequence[Objective]) -> tuple[float, ...]:
        """The means with every objective turned to "larger is better"."""
        return tuple(o.sign * m for o, m in zip(objectives, self.means, strict=True))

    def to_json(self, objectives: Sequence[Objective]) -> dict[str, Any]:
        return {
            "config": self.label,
            "trials": list(self.trials),
            "swept": self.swept,
            "values": {o.metric: m for o, m in zip(objectives, self.means, strict=True)},
            "sd": {o.metric: s for o, s in zip(objectives, self.sds, strict=True)},
            "n": self.n,
            "feasible": self.feasible,
        }


@dataclass
class Front:
    """The configurations of a sweep on its objectives, and the non-dominated feasible ones."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    points: list[Point]
    front: list[Point]
    #: configurations that passed but lack an objective's metric, by metric
    missing: dict[str, int] = field(default_factory=dict)

    @property
    def infeasible(self) -> list[Point]:
        return [p for p in self.points if not p.feasible]

    def hypervolume(self, ref: Sequence[float] | None = None) -> float | None:
        """The front's hypervolume ("larger is better" space) up to ``ref`` (default: its own)."""
        if not self.front:
            return None
        ref = tuple(ref) if ref is not None else reference_point(self)
        if ref is None:
            return None
        return hypervolume([p.signed(self.objectives) for p in self.front], ref)

    def to_json(self) -> dict[str, Any]:
        ref = reference_point(self)
        return {
            "objectives": [str(o) for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "noise_rule": NOISE_RULE,
            "configurations": len(self.points),
            "infeasible": len(self.infeasible),
            "missing_metric": self.missing,
            "front": [p.to_json(self.objectives) for p in self.front],
            "hypervolume": self.hypervolume(ref),
            "reference_point": None if ref is None else dict(zip((str(o) for o in self.objectives), ref, strict=True)),
            "reference_point_note": "in larger-is-better terms (a :min objective negated)",
        }


def _stats(values: list[float]) -> tuple[float, float | None]:
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def points(
    records: list[dict[str, Any]], objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
) -> tuple[list[Point], dict[str, int]]:
    """Every configuration with a passed trial that reports all objectives; and how many lacked one."""
    out: list[Point] = []
    missing: dict[str, int] = {}
    passed = [r for r in records if r.get("status") == "passed"]
    for config in configurations(passed):
        trials = config.trials
        means: list[float] = []
        sds: list[float | None] = []
        lacking = False
        for o in objectives:
            values = [v for v in (metric_value(r, o.metric) for r in trials) if v is not None]
            if len(values) < len(trials):
                missing[o.metric] = missing.get(o.metric, 0) + 1
                lacking = True
                continue
            mean, sd = _stats(values)
            means.append(mean)
            sds.append(sd)
        if lacking:
            continue
        feasible = True
        for c in constraints:
            values = [v for v in (metric_value(r, c.metric) for r in trials) if v is not None]
            value = _stats(values)[0] if len(values) == len(trials) else None
            feasible = feasible and c.holds(value)
        first = trials[0]
        swept = {k: first.get(k) for k in first.get("swept") or [] if k != "CONFIG_SEED"}
        out.append(
            Point(
                str(first.get("config_file")),
                tuple(str(r.get("config_file")) for r in trials),
                swept,
                tuple(means),
                tuple(sds),
                len(trials),
                feasible,
            )
        )
    return out, missing


def margin(a: Point, b: Point, k: int) -> float:
    """The noise on objective ``k`` between two configurations (0 without an estimate for both)."""
    sa, sb = a.sds[k], b.sds[k]
    if sa is None or sb is None:
        return 0.0
    return t95(a.n + b.n - 2) * math.sqrt(sa * sa / a.n + sb * sb / b.n)


def dominates(a: Point, b: Point, objectives: Sequence[Objective]) -> bool:
    """Whether ``a`` dominates ``b`` beyond the noise (see the module's docstring)."""
    sa, sb = a.signed(objectives), b.signed(objectives)
    if any(x < y for x, y in zip(sa, sb, strict=True)):
        return False
    return any(sa[k] - sb[k] > margin(a, b, k) for k in range(len(objectives)))


def front(
    records: list[dict[str, Any]], objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
) -> Front:
    """The Pareto front of ``records``: the feasible configurations no other feasible one dominates.

    The front is ordered by the first objective, best first.
    """
    found, missing = points(records, objectives, constraints)
    feasible = [p for p in found if p.feasible]
    best = [p for p in feasible if not any(dominates(q, p, objectives) for q in feasible if q is not p)]
    best.sort(key=lambda p: (-p.signed(objectives)[0], p.label))
    return Front(tuple(objectives), tuple(constraints), found, best, missing)


def reference_point(*fronts: Front) -> tuple[float, ...] | None:
    """A reference point for the hypervolume of ``fronts`` ("larger is better" space): per objective,
    10% of the range below the worst feasible configuration of them all."""
    objectives = fronts[0].objectives
    pts = [p.signed(objectives) for f in fronts for p in f.points if p.feasible]
    if not pts:
        return None
    ref = []
    for k in range(len(objectives)):
        lo, hi = min(p[k] for p in pts), max(p[k] for p in pts)
        span = hi - lo if hi > lo else max(abs(lo) * 0.1, 1e-6) * 10
        ref.append(lo - 0.1 * span)
    return tuple(ref)


def hypervolume(pts: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume dominated by ``pts`` and bounded by ``ref``, every objective to be maximised.

    Exact, by slicing: sweep along the last objective and add up the slabs' (d-1)-dimensional
    volumes; points not better than ``ref`` on every objective add nothing.
    """
    inside = [tuple(p) for p in pts if all(x > r for x, r in zip(p, ref, strict=True))]
    if not inside:
        return 0.0
    d = len(ref)
    if d == 1:
        return max(p[0] for p in inside) - ref[0]
    if d == 2:
        area = 0.0
        best_y = ref[1]
        for x, y in sorted(inside, key=lambda p: (-p[0], -p[1])):
            if y > best_y:
                area += (x - ref[0]) * (y - best_y)
                best_y = y
        return area
    order = sorted(inside, key=lambda p: -p[-1])  # best on the last objective first
    volume = 0.0
    for i, p in enumerate(order):
        below = order[i + 1][-1] if i + 1 < len(order) else ref[-1]
        height = p[-1] - below
        if height > 0:
            volume += height * hypervolume([q[:-1] for q in order[: i + 1]], ref[:-1])
    return volume
