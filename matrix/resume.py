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
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.records import RESULT_METRICS, normalize
from pytest_sweep.matrix.trial import Trial

#: Metrics a reused result must hold as finite numbers (``test_acc``) or may leave out (the rest).
REQUIRED_NUMBERS = ("test_acc",)
OPTIONAL_NUMBERS = (*(m for m in RESULT_METRICS if m not in REQUIRED_NUMBERS), "torch_threads")
OPTIONAL_TEXT = ("device", "trainer")


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
    for metrics in sorted(folder.glob("*/training_metrics.json")):
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


def _number_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{key} is {clip(json.dumps(value))[:40]}, not a number"
    try:
        as_float = float(value)
    except OverflowError:
        return f"{key} is too large for a number"
    if math.isnan(as_float):
        return f"{key} is NaN"
    if not math.isfinite(as_float):
        return f"{key} is infinite"
    return None


def invalid_metrics(doc: dict[str, Any]) -> str | None:
    """Why a finished trial's metrics cannot be reused, or None when they can."""
    for key in REQUIRED_NUMBERS:
        problem = _number_problem(key, doc.get(key))
        if problem:
            return problem
    for key in OPTIONAL_NUMBERS:
        if doc.get(key) is not None:
            problem = _number_problem(key, doc[key])
            if problem:
                return problem
    for key in OPTIONAL_TEXT:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            return f"{key} is not text"
    return None


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


#: Record fields that hold text or null.
_TEXT_FIELDS = ("config_file", "error", "nodeid", "worker", "source", "trainer", "device", "stop_reason")
#: Record fields that hold a whole number or null.
_WHOLE_FIELDS = ("rung", "seed")
_SCALARS = (str, int, float, bool, type(None))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def record_problem(record: dict[str, Any]) -> str | None:
    """Why a summary record cannot be resumed (the field and what it holds), or None."""
    config = record.get("config") or {}
    if not isinstance(config, dict):
        return f"'config' is {_kind(config)}, not an object"
    for key, value in config.items():
        if not isinstance(value, _SCALARS):
            return f"'config' holds {_kind(value)} under {clip(key)[:40]}, not a value"
    swept = record.get("swept") or []
    if not isinstance(swept, list):
        return f"'swept' is {_kind(swept)}, not a list of config keys"
    if not all(isinstance(k, str) for k in swept):
        return "'swept' is not a list of config keys"
    for key in swept:
        if not isinstance(record.get(key), _SCALARS):
            return f"'{clip(key)[:40]}' is {_kind(record.get(key))}, not a value"
    for key in _TEXT_FIELDS:
        if not isinstance(record.get(key), (str, type(None))):
            return f"'{key}' is {_kind(record.get(key))}, not text"
    for key in _WHOLE_FIELDS:
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"'{key}' is {_kind(value)}, not a whole number"
    if not isinstance(record.get("status", "not_run"), str):
        return f"'status' is {_kind(record.get('status'))}, not text"
    if record.get("status") not in ("passed", "stopped"):
        for key in (*REQUIRED_NUMBERS, *OPTIONAL_NUMBERS):
            if record.get(key) is not None and _number_problem(key, record[key]) is not None:
                return f"'{key}' is {_kind(record[key])}, not a finite number"
    return None


def previous_records(folder: Path) -> list[dict[str, Any]] | None:
    """The records of the resumed sweep's ``sweep_summary.json`` (None: none readable).

    A record whose fields have the wrong types raises :class:`ResumeError`; a trial that appears
    twice is kept once (a finished record over an unfinished one, else the later).
    """
    path = folder / "sweep_summary.json"
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
        problem = record_problem(r)
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
    found = [normalize(r) for r in kept.values()]
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
