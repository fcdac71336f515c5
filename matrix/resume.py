"""``--sweep-resume``: reuse the trials an earlier sweep already finished.

A trial is reused when its folder in the resumed sweep has a ``training_metrics.json``
with status ``passed``, the same config name, the same config (every key, overrides
included) and the same seed.  A changed config under the same name runs again.
The resumed sweep continues in its own folder, so its summary covers every trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.trial import Trial


def resume_dir(root: Path, arg: str, invocation_dir: Path) -> Path:
    if arg == "latest":
        found = storage.sweep_dirs(root)
        if not found:
            raise pytest.UsageError(
                f"--sweep-resume: no sweep folder under {root} to resume; run a sweep first or pass --sweep-resume=DIR"
            )
        return found[-1]
    path = (invocation_dir / arg).resolve()
    if not path.is_dir():
        raise pytest.UsageError(f"--sweep-resume={arg}: no such sweep folder; pass a sweep_YYYYMMDD_HHMMSS folder")
    return path


def finished_trials(folder: Path) -> dict[str, dict[str, Any]]:
    """``trial folder name -> training_metrics.json`` of every passed trial in ``folder``."""
    found: dict[str, dict[str, Any]] = {}
    for metrics in sorted(folder.glob("*/training_metrics.json")):
        try:
            doc = json.loads(metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a trial killed while writing leaves no usable file: it runs again
        if isinstance(doc, dict) and doc.get("status") == "passed" and doc.get("config_file"):
            doc["_folder"] = metrics.parent.name
            found[metrics.parent.name] = doc
    return found


def reusable(trial: Trial, done: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    doc = done.get(trial.folder)
    if doc is None or doc.get("config_file") != trial.name:
        return None
    if doc.get("config") != trial.raw or doc.get("seed") != trial.seed:
        return None
    return doc
