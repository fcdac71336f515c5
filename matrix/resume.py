"""``--sweep-resume``: reuse the trials an earlier sweep already finished.

A trial is reused when its folder in the resumed sweep has a ``training_metrics.json``
with status ``passed`` or ``stopped`` (a scheduler's decision stands), the same config name,
the same config (every key, overrides included), the same seed, and metrics that are valid
numbers.  A changed config under the same
name runs again, and so does a trial whose file holds NaN, text or a number no float holds.
The resumed sweep continues in its own folder, so its summary covers every trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.files import SUMMARY_JSON, TRAINING_METRICS
from pytest_sweep.matrix.records import TrialRecord
from pytest_sweep.matrix.trial import Trial


def resume_dir(root: Path, arg: str, invocation_dir: Path) -> Path:
    """The folder ``--sweep-resume[=DIR]`` names; a usage error unless it is a sweep folder."""
    if arg == "latest":
        found = storage.sweep_dirs(root)
        if not found:
            raise pytest.UsageError(
                f"--sweep-resume: no sweep folder under {root} to resume; run a sweep first or pass --sweep-resume=DIR"
            )
        return found[-1]
    if not arg.strip():
        raise pytest.UsageError("--sweep-resume=: empty folder name; pass --sweep-resume=DIR or --sweep-resume alone")
    try:
        path = (invocation_dir / arg).resolve()
        is_dir = path.is_dir()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise pytest.UsageError(f"--sweep-resume={clip(arg)}: cannot open it ({exc}); pass a sweep folder") from None
    if not is_dir:
        raise pytest.UsageError(
            f"--sweep-resume={clip(arg)}: no such sweep folder; pass a sweep_YYYYMMDD_HHMMSS folder"
        )
    if not storage.is_sweep_dir(path):
        raise pytest.UsageError(
            f"--sweep-resume={clip(arg)}: not a sweep folder (no sweep_summary.json, no trial results); "
            "pass a folder that pytest-sweep created"
        )
    return path


def finished_trials(folder: Path) -> dict[str, dict[str, Any]]:
    """``trial folder name -> training_metrics.json`` of every passed or stopped trial in ``folder``.

    A trial paused at a rung (ASHA's promotion mode: ``"paused": true``) has not finished: it is
    left out, so a resume continues it from its checkpoint.
    """
    found: dict[str, dict[str, Any]] = {}
    for metrics in sorted(folder.glob(f"*/{TRAINING_METRICS}")):
        try:
            # a trial folder (or file) that is a symbolic link is not this sweep's: it runs again
            path = storage.sweep_path(folder, metrics.parent.name, metrics.name)
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # unreadable, not JSON, nested too deep
            continue  # a trial killed while writing leaves no usable file: it runs again
        if isinstance(doc, dict) and doc.get("status") in ("passed", "stopped") and doc.get("config_file"):
            if doc.get("paused") is True:
                continue
            doc["_folder"] = metrics.parent.name
            found[metrics.parent.name] = doc
    return found


def invalid_metrics(doc: dict[str, Any]) -> str | None:
    """Why a finished trial's metrics cannot be reused, or None when they can
    (:meth:`TrialRecord.metrics_problem <pytest_sweep.matrix.records.TrialRecord.metrics_problem>`)."""
    return TrialRecord.metrics_problem(doc)


def reusable(trial: Trial, done: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """``(result, None)`` to reuse ``trial``'s finished result; else ``(None, why)``, ``why`` None
    when there is simply nothing to reuse (it trains again either way)."""
    doc = done.get(trial.folder)
    if doc is None or doc.get("config_file") != trial.name:
        return None, None
    if doc.get("config") != trial.raw or doc.get("seed") != trial.seed:
        return None, None
    problem = invalid_metrics(doc)
    if problem is not None:
        return None, f"not reused: its training_metrics.json is invalid ({problem}); it trains again"
    return doc, None


class ResumeError(ValueError):
    """The resumed sweep's ``sweep_summary.json`` holds a record this run cannot use (one line)."""


def previous_records(folder: Path) -> list[dict[str, Any]] | None:
    """The records of the resumed sweep's ``sweep_summary.json`` (None: none readable).

    A record whose fields have the wrong types raises :class:`ResumeError`; a trial that appears
    twice is kept once (a finished record over an unfinished one, else the later).
    """
    path = folder / SUMMARY_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON, nested too deep
        return None
    if not isinstance(data, list):
        return None
    kept: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(data, 1):
        if not (isinstance(r, dict) and isinstance(r.get("trial_dir"), str)):
            continue
        if r.get("status") in ("passed", "stopped") and invalid_metrics(r) is not None:
            continue  # its trial runs again
        problem = TrialRecord.resume_problem(r)
        if problem is not None:
            name = r.get("config_file")
            shown = f" ({clip(name)[:60]})" if isinstance(name, str) else ""
            raise ResumeError(f"{path}: record {i}{shown}: {problem}")
        r = {**r, "config": r.get("config") or {}, "swept": r.get("swept") or []}  # null: none
        earlier = kept.pop(r["trial_dir"], None)
        finished = ("passed", "stopped")
        if earlier is not None and earlier.get("status") in finished and r.get("status") not in finished:
            r = earlier
        kept[r["trial_dir"]] = r
    found = [TrialRecord.normalize(r) for r in kept.values()]
    return found or None


def grid_change(previous: list[dict[str, Any]], folders: list[str]) -> str | None:
    """How this run's grid (its trial folders) differs from the resumed sweep's, or None.

    The resumed sweep may have run part of the grid (``-k``); it differs when it holds trials
    this grid does not have (another range file, other swept values).
    """
    before = {str(r["trial_dir"]) for r in previous}
    gone = before - set(folders)
    if not gone:
        return None
    example = sorted(gone)[0]
    return f"{len(gone)} of its {len(before)} trials are not in this run's grid (e.g. {example})"
