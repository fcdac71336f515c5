"""Trial records: the rows of ``sweep_summary.json``.

``sweep_summary.json`` is a JSON list of flat records, so ``pandas.DataFrame(records)``
reads it as is.  Each record carries ``schema_version``; :func:`normalize` fills in the
fields an older file lacks, so readers can rely on every key below.

Schema version 2 (units in brackets); version 1 had no ``stopped`` status, ``rung`` or
``stop_reason`` (:func:`normalize` fills them in):

===================  ==========================================================
config_file          ``config_017``
status               ``passed`` | ``stopped`` | ``failed`` | ``skipped`` | ``not_run``;
                     ``stopped``: a scheduler (``--sweep-scheduler``) stopped it early
rank                 1 for the best completed (``passed``) trial by ``test_acc``, then the rest of
                     them; the ``stopped`` trials follow (best last accuracy first); None otherwise
rung                 ``stopped`` only: the epoch (rung) at which it was stopped
stop_reason          ``stopped`` only: one line, why
paused               ``stopped`` only: true while it waits at its rung for a promotion
                     (``--sweep-asha-mode=promotion``) that has not run (yet)
resumed_from_epoch   the epochs done in the checkpoint it continued from (None: trained from scratch)
reused               true when ``--sweep-resume`` took the result from an earlier sweep
test_acc             final test accuracy [%]
best_acc             best test accuracy over the epochs [%]
final_sparsity       fraction of exact zeros in Conv/Linear weights [0..1]
training_time        wall time of the trial's training [s]
error                one line: why the trial failed, was skipped or did not run
``CONFIG_...``       one column per swept parameter (numbers as numbers)
config               every ``KEY: value`` of the trial's config, as written
swept                the swept keys
nodeid, worker       pytest node id; ``main``, the xdist worker id (``gw0``) or the Ray actor's (``ray1``)
trial_dir            the trial's folder, relative to the sweep folder
seed, device         the seed it trained with (``CONFIG_SEED``); ``cpu`` / ``cuda:0``
epochs_run           epochs actually trained
images_per_s         mean training throughput
peak_memory_mb       peak GPU memory (CUDA only)
torch_threads        torch's intra-op CPU threads during the trial (CPU results depend on it)
trainer              what trained it, e.g. ``resnet18/cifar10/adamwprune``
test_samples         the test set's size (one image is 100 / test_samples pp of ``test_acc``);
                     None when the trainer does not say (the analysis then knows no granularity)
source               the range file (or generated config) the trial came from
node, node_id        ``--sweep-backend=ray`` only: the Ray node's IP and id (``worker`` is ``ray1``...)
requeued             Ray only, when its node was lost: why it ran again (one line per time)
===================  ==========================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
STATUSES = ("passed", "stopped", "failed", "skipped", "not_run")

#: Keys a trainer's ``run()`` may return and that the record copies.
METRIC_KEYS = (
    "test_acc",
    "best_acc",
    "final_sparsity",
    "training_time",
    "epochs_run",
    "images_per_s",
    "peak_memory_mb",
    "torch_threads",
    "device",
    "trainer",
    "test_samples",
)

_DEFAULTS: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "config_file": "",
    "status": "not_run",
    "reused": False,
    "test_acc": None,
    "best_acc": None,
    "final_sparsity": None,
    "training_time": None,
    "error": None,
    "config": {},
    "swept": [],
    "nodeid": "",
    "worker": None,
    "trial_dir": None,
    "seed": None,
    "device": None,
    "epochs_run": None,
    "images_per_s": None,
    "peak_memory_mb": None,
    "torch_threads": None,
    "trainer": None,
    "test_samples": None,
    "source": None,
    "rank": None,
    "rung": None,
    "stop_reason": None,
    "paused": False,
    "resumed_from_epoch": None,
}


def json_value(raw: str) -> Any:
    """A config string as a JSON value: numbers become numbers, the rest stays text."""
    try:
        as_int = int(raw)
    except ValueError:
        pass
    else:
        return as_int
    try:
        as_float = float(raw)
    except ValueError:
        return raw
    return as_float if math.isfinite(as_float) else raw


def new_record(name: str, raw: dict[str, str], swept: dict[str, str], **fields: Any) -> dict[str, Any]:
    """A record with every schema field, the swept parameters as columns."""
    record = dict(_DEFAULTS)
    record["config_file"] = name
    record["config"] = dict(raw)
    record["swept"] = list(swept)
    for key, value in swept.items():
        record[key] = json_value(value)
    record.update(fields)
    return record


def normalize(record: dict[str, Any]) -> dict[str, Any]:
    """Fill in fields an older record lacks (pytest-benchmark's ``normalize_stats`` habit)."""
    out = dict(_DEFAULTS, config={}, swept=[])  # fresh containers: never share the defaults
    out.update(record)
    out["schema_version"] = SCHEMA_VERSION  # every older version upgrades by filling in defaults
    if out["status"] not in STATUSES:
        out["status"] = "failed"
    for key in out.get("swept") or []:
        out.setdefault(key, json_value(str(out["config"].get(key, ""))))
    return out


def clean_number(value: Any) -> Any:
    """JSON cannot hold NaN or infinity: such a number becomes None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def ranked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Passed records with an accuracy, best first (ties: lower config name first)."""
    done = [r for r in records if r["status"] == "passed" and r.get("test_acc") is not None]
    return sorted(done, key=lambda r: (-float(r["test_acc"]), r["config_file"]))


def stopped(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials a scheduler stopped early, best last metric first (ties: lower config name first)."""
    found = [r for r in records if r["status"] == "stopped"]
    return sorted(found, key=lambda r: (r.get("test_acc") is None, -float(r.get("test_acc") or 0), r["config_file"]))


def assign_ranks(records: list[dict[str, Any]]) -> None:
    """Set each record's ``rank``: completed trials first (best first), then the stopped ones."""
    for rec in records:
        rec["rank"] = None
    for rank, rec in enumerate([*ranked(records), *stopped(records)], 1):
        rec["rank"] = rank


def load_summary(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return [normalize(r) for r in data]


@dataclass
class SweepResult:
    """What reporters get when the sweep ends (``pytest_sweep_finished``) or, while it still runs,
    in an interim summary (``pytest_sweep_progress``, ``running`` true)."""

    dir: Path
    records: list[dict[str, Any]]
    interrupted: bool = False
    sources: list[str] = field(default_factory=list)
    running: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r["status"] == status)

    def count_reused(self) -> int:
        return sum(1 for r in self.records if r.get("reused"))

    @property
    def ranked(self) -> list[dict[str, Any]]:
        return ranked(self.records)

    @property
    def best(self) -> dict[str, Any] | None:
        top = self.ranked
        return top[0] if top else None
