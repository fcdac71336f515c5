"""Replicates: trials that differ only in ``CONFIG_SEED`` are one configuration.

Every trial trains with ``CONFIG_SEED`` itself, so a sweep that does not sweep the seed compares
configurations on common random numbers, and each trial is its own configuration.  A sweep of
``CONFIG_SEED=1|2|3`` trains every configuration once per seed: here those trials are grouped,
summarised by the mean and standard deviation over their seeds; :mod:`~pytest_sweep.plugins.noise`
compares them with paired tests over the seeds they share.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import Any

SEED_KEY = "CONFIG_SEED"


def seed_swept(records: list[dict[str, Any]]) -> bool:
    """Whether ``CONFIG_SEED`` is one of the swept parameters (trials are then replicates)."""
    return any(SEED_KEY in (r.get("swept") or []) for r in records)


def origin(record: dict[str, Any]) -> str:
    """Where a record came from: its range file, or the folder of a generated config."""
    return _origin(str(record.get("source") or ""), str(record.get("config_file")))


@lru_cache(maxsize=4096)
def _origin(source: str, name: str) -> str:
    path = PurePath(source)
    return str(path.parent if path.name == name else path)


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
