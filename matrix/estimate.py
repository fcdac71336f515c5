"""The runtime estimate shown after collection: combinations x minutes per trial."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_sweep.matrix import options, storage
from pytest_sweep.matrix.errors import clip

if TYPE_CHECKING:
    from pytest_sweep.matrix.collect import SweepItem
    from pytest_sweep.matrix.sources import Sources

#: How many earlier sweep folders are read for measured trial times.
HISTORY_DEPTH = 20


def _history_times(path: Path, trainers: set[str]) -> list[float]:
    """Training times of passed trials of these trainers in one earlier summary.

    Raises ``ValueError`` naming what is wrong with a file that is not a list of records.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    if not isinstance(data, list):
        raise ValueError(f"holds {type(data).__name__}, not a list of records")
    times: list[float] = []
    for r in data:
        if not isinstance(r, dict) or r.get("status") != "passed" or r.get("reused"):
            continue
        trainer, seconds = r.get("trainer"), r.get("training_time")
        if not isinstance(trainer, str) or trainer not in trainers:
            continue
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            continue
        try:
            value = float(seconds)
        except OverflowError:
            continue
        if math.isfinite(value) and value >= 0:
            times.append(value)
    return times


def measured_minutes(root: Path, trainers: set[str], skipped: list[str] | None = None) -> tuple[float, int, str] | None:
    """Mean minutes per passed trial of the same trainer in the newest earlier sweeps.

    A summary that cannot be read is left out; its path and why go to ``skipped``.
    """
    times: list[float] = []
    where = ""
    for folder in reversed(storage.sweep_dirs(root)[-HISTORY_DEPTH:]):
        path = folder / "sweep_summary.json"
        if not path.is_file():
            continue
        try:
            found = _history_times(path, trainers)
        except (OSError, ValueError) as exc:
            if skipped is not None:
                skipped.append(f"{path} ({clip(str(exc))[:120]})")
            continue
        if found:
            times.extend(found)
            where = where or folder.name
    if not times:
        return None
    return sum(times) / len(times) / 60.0, len(times), where


def timed_minutes(config: pytest.Config, sources: Sources, runnable: list[SweepItem]) -> float | None:
    """Mean minutes per trial from ``pytest_sweep_estimate_trial``, asked once per trainer description.

    None unless every trainer of the sweep answered (a partial answer would mislead).
    """
    seconds: dict[str | None, float | None] = {}
    total = 0.0
    for item in runnable:
        key = sources.describe(item.trial)
        if key not in seconds:
            try:
                answer = config.hook.pytest_sweep_estimate_trial(trial=item.trial, config=config)
            except Exception:  # an estimate never breaks collection
                answer = None
            ok = isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer)
            seconds[key] = float(answer) if ok and answer >= 0 else None
        value = seconds[key]
        if value is None:
            return None
        total += value
    return total / len(runnable) / 60.0 if runnable else None


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
    skipped_history: list[str] = []
    if per_trial is None:
        measured = measured_minutes(options.output_root(config), trainers, skipped_history)
        if measured is not None:
            per_trial, n, where = measured
            basis = f"measured: mean of {n} earlier trials, newest in {where}"
        else:
            timed = timed_minutes(config, sources, runnable)
            if timed is not None:
                per_trial = timed
                basis = "timed: a few optimizer steps of each trainer on its device, scaled to the whole run"
            else:
                per_trial = options.DEFAULT_MINUTES_PER_TRIAL
                basis = "the guide's figure; set --sweep-minutes-per-trial or run a sweep to measure it"
    total = len(runnable) * per_trial
    history_lines = [f"sweep: history left out of the estimate, unreadable: {p}" for p in skipped_history]
    kinds = Counter(t for t in trainers if t)
    lines = [
        f"sweep: {len(items)} combination{'s' if len(items) != 1 else ''}"
        + (f" ({skipped} skipped by plugins)" if skipped else "")
        + (f"; trainer: {', '.join(sorted(kinds))}" if kinds else ""),
        f"sweep: estimated runtime {len(runnable)} x {format_minutes(per_trial)} = {format_minutes(total)} ({basis})",
    ]
    lines[:0] = history_lines
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1:
        lines.append(f"sweep: with {workers} workers about {format_minutes(total / workers)}")
    if not config.option.collectonly:
        lines.append(f"sweep: results go to {sweep_dir}")
    return lines
