"""The runtime estimate shown after collection: combinations x minutes per trial."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import options, storage

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_sweep.matrix.collect import SweepItem
    from pytest_sweep.matrix.sources import Sources

#: How many earlier sweep folders are read for measured trial times.
HISTORY_DEPTH = 20


def measured_minutes(root: Any, trainers: set[str]) -> tuple[float, int, str] | None:
    """Mean minutes per passed trial of the same trainer in the newest earlier sweeps."""
    times: list[float] = []
    where = ""
    for folder in reversed(storage.sweep_dirs(root)[-HISTORY_DEPTH:]):
        path = folder / "sweep_summary.json"
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = [
            float(r["training_time"])
            for r in records
            if isinstance(r, dict)
            and r.get("status") == "passed"
            and not r.get("reused")
            and r.get("trainer") in trainers
            and isinstance(r.get("training_time"), (int, float))
        ]
        if found:
            times.extend(found)
            where = where or folder.name
    if not times:
        return None
    return sum(times) / len(times) / 60.0, len(times), where


def format_minutes(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def describe(config: pytest.Config, sources: Sources, sweep_dir: Path, items: list[SweepItem]) -> list[str]:
    runnable = [i for i in items if not i.skip_reason]
    skipped = len(items) - len(runnable)
    trainers = {sources.describe(i.trial) or "" for i in runnable}
    per_trial = options.minutes_per_trial(config)
    basis = "--sweep-minutes-per-trial"
    if per_trial is None:
        measured = measured_minutes(options.output_root(config), trainers)
        if measured is not None:
            per_trial, n, where = measured
            basis = f"measured: mean of {n} earlier trials, newest in {where}"
        else:
            per_trial = options.DEFAULT_MINUTES_PER_TRIAL
            basis = "the guide's figure; set --sweep-minutes-per-trial or run a sweep to measure it"
    total = len(runnable) * per_trial
    kinds = Counter(t for t in trainers if t)
    lines = [
        f"sweep: {len(items)} combination{'s' if len(items) != 1 else ''}"
        + (f" ({skipped} skipped by plugins)" if skipped else "")
        + (f"; trainer: {', '.join(sorted(kinds))}" if kinds else ""),
        f"sweep: estimated runtime {len(runnable)} x {format_minutes(per_trial)} = {format_minutes(total)} ({basis})",
    ]
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1:
        lines.append(f"sweep: with {workers} workers about {format_minutes(total / workers)}")
    if not config.option.collectonly:
        lines.append(f"sweep: results go to {sweep_dir}")
    return lines
