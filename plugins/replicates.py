"""Replicates: trials that differ only in ``CONFIG_SEED`` are one configuration.

Every trial trains with ``CONFIG_SEED`` itself, so a sweep that does not sweep the seed compares
configurations on common random numbers, and each trial is its own configuration.  A sweep of
``CONFIG_SEED=1|2|3`` trains every configuration once per seed: here those trials are grouped,
summarised by the mean and standard deviation over their seeds, and the best configuration is
compared with the second in a paired comparison over the seeds both passed with.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

SEED_KEY = "CONFIG_SEED"

#: Two-sided 95% quantiles of Student's t by degrees of freedom (larger df use the next lower entry).
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t95(df: int) -> float:
    """The two-sided 95% quantile of Student's t for ``df`` degrees of freedom (conservative between entries)."""
    return T95[max(k for k in T95 if k <= df)]


def seed_swept(records: list[dict[str, Any]]) -> bool:
    """Whether ``CONFIG_SEED`` is one of the swept parameters (trials are then replicates)."""
    return any(SEED_KEY in (r.get("swept") or []) for r in records)


def origin(record: dict[str, Any]) -> str:
    """Where a record came from: its range file, or the folder of a generated config."""
    source = PurePath(str(record.get("source") or ""))
    return str(source.parent if source.name == record.get("config_file") else source)


def _passed(record: dict[str, Any]) -> bool:
    return record["status"] == "passed" and record.get("test_acc") is not None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


@dataclass
class Configuration:
    """The trials of one configuration (one per seed when the seed is swept, else one)."""

    trials: list[dict[str, Any]]
    label: str = ""
    passed: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.passed = [r for r in self.trials if _passed(r)]

    @property
    def first(self) -> dict[str, Any]:
        return self.trials[0]

    @property
    def n(self) -> int:
        return len(self.passed)

    @property
    def mean(self) -> float | None:
        return _mean([float(r["test_acc"]) for r in self.passed])

    @property
    def sd(self) -> float | None:
        accs = [float(r["test_acc"]) for r in self.passed]
        return statistics.stdev(accs) if len(accs) >= 2 else None

    def mean_of(self, key: str) -> float | None:
        return _mean([float(r[key]) for r in self.passed if r.get(key) is not None])

    @property
    def seeds(self) -> list[str]:
        return [str((r.get("config") or {}).get(SEED_KEY, "")) for r in self.trials]

    def by_seed(self) -> dict[str, float]:
        """``seed -> test_acc`` of the passed trials."""
        return {str((r.get("config") or {}).get(SEED_KEY, "")): float(r["test_acc"]) for r in self.passed}

    @property
    def names(self) -> list[str]:
        return [str(r["config_file"]) for r in self.trials]


def configurations(
    records: list[dict[str, Any]], label: Callable[[dict[str, Any]], str] | None = None
) -> list[Configuration]:
    """The records grouped by their config without ``CONFIG_SEED`` (and their origin), in first-seen order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for rec in records:
        config = rec.get("config") or {}
        key = (origin(rec), tuple(sorted((k, str(v)) for k, v in config.items() if k != SEED_KEY)))
        groups.setdefault(key, []).append(rec)
    name = label or (lambda r: str(r["config_file"]))
    return [Configuration(trials, label=name(trials[0])) for trials in groups.values()]


def ranked_configurations(configs: list[Configuration]) -> list[Configuration]:
    """Configurations with a passed trial, best mean first (ties: lower first config name first)."""
    done = [c for c in configs if c.n]
    return sorted(done, key=lambda c: (-(c.mean or 0.0), c.first["config_file"]))


def pooled_sd(configs: list[Configuration]) -> float | None:
    """The seed noise: the pooled standard deviation of ``test_acc`` over seeds, within configurations."""
    num = 0.0
    df = 0
    for c in configs:
        accs = [float(r["test_acc"]) for r in c.passed]
        if len(accs) >= 2:
            m = statistics.fmean(accs)
            num += sum((a - m) ** 2 for a in accs)
            df += len(accs) - 1
    return math.sqrt(num / df) if df else None


@dataclass(frozen=True)
class Paired:
    """The best configuration against the second, seed by seed (a paired t-test over shared seeds)."""

    seeds: tuple[str, ...]
    differences: tuple[float, ...]
    mean: float
    sd: float | None
    t: float | None
    critical: float | None

    @property
    def exceeds_noise(self) -> bool | None:
        """True: the lead exceeds the seed noise (95%); None: too few shared seeds to tell."""
        if len(self.differences) < 2:
            return None
        if self.sd == 0:
            return self.mean > 0
        assert self.t is not None and self.critical is not None
        return self.t > self.critical


def paired(best: Configuration, second: Configuration) -> Paired:
    a, b = best.by_seed(), second.by_seed()
    shared = tuple(s for s in a if s in b)
    diffs = tuple(a[s] - b[s] for s in shared)
    mean = statistics.fmean(diffs) if diffs else 0.0
    sd = statistics.stdev(diffs) if len(diffs) >= 2 else None
    t = crit = None
    if sd is not None:
        crit = t95(len(diffs) - 1)
        if sd > 0:
            t = mean / (sd / math.sqrt(len(diffs)))
    return Paired(shared, diffs, mean, sd, t, crit)


def describe_paired(best: Configuration, second: Configuration, result: Paired) -> list[str]:
    """The analysis lines that say whether the best configuration's lead exceeds the seed noise."""
    lead = (best.mean or 0.0) - (second.mean or 0.0)
    lines = [f"{best.label} leads {second.label} by {lead:.2f} pp (means over their seeds)."]
    n = len(result.differences)
    if n < 2:
        lines.append(
            f"Paired over {n} shared seed{'s' if n != 1 else ''}: too few to tell the lead from seed noise "
            "(sweep more seeds, e.g. CONFIG_SEED=1|2|3)."
        )
        return lines
    diffs = ", ".join(f"{d:+.2f}" for d in result.differences)
    lines.append(
        f"Paired over {n} shared seeds ({', '.join(result.seeds)}): differences {diffs} pp, "
        f"mean {result.mean:+.2f}, sd {result.sd:.2f}."
    )
    if result.sd == 0:
        verdict = "exceeds the seed noise" if result.mean > 0 else "does not exceed the seed noise"
        lines.append(f"Every shared seed gives the same difference: the lead {verdict}.")
    else:
        verdict = "exceeds the seed noise" if result.exceeds_noise else "is within the seed noise"
        lines.append(
            f"t = {result.t:.2f} with {n - 1} degree{'s' if n > 2 else ''} of freedom; 95% needs more than "
            f"{result.critical:.2f}: the lead {verdict}."
        )
    return lines
