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
interim              true in an interim summary, written while the sweep still ran (its ``not_run``
                     trials had not finished yet); false in the final summary
search, study_trial  a sampled sweep (``--sweep-search``) only: the sampler and the number of the
                     study's trial that proposed this configuration
duplicate_of         a sampled item whose sampler kept proposing a finished configuration: the
                     item whose result it reused (the item is ``skipped``)
feasible             with ``--sweep-constraint``: whether the trial met every constraint
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

#: The record's numeric result metrics (what an objective, a constraint or a reused result names).
RESULT_METRICS = (
    "test_acc",
    "best_acc",
    "final_sparsity",
    "training_time",
    "epochs_run",
    "images_per_s",
    "peak_memory_mb",
)
#: Keys a trainer's ``run()`` may return and that the record copies.
METRIC_KEYS = (*RESULT_METRICS, "torch_threads", "device", "trainer", "test_samples")

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
    "interim": False,
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
    """JSON cannot hold NaN or infinity, and no reader's float holds an integer such as ``10**400``
    (it reads back as infinity): such a number becomes None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return None
    return value


#: Record fields that hold a finite number or None.
NUMBER_FIELDS = (*RESULT_METRICS, "torch_threads", "rank", "rung", "seed", "resumed_from_epoch")
#: Record fields that hold text or None.
TEXT_FIELDS = ("status", "config_file", "error", "nodeid", "worker", "trial_dir", "device", "trainer", "source")


def _number_problem(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {_shown(value)}, not a number"
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    return None if finite else f"is {_shown(value)}, not a finite number"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=repr) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def record_problem(record: Any) -> str | None:
    """Why ``record`` (read from a file) is not a record this tool could have written; None when it is.

    A field may be missing (:func:`normalize` fills it in); one that is there must have its type:
    the metrics finite numbers, ``config`` an object of text (or number) values, ``swept`` a list of
    its keys.  Readers refuse such a file with one line instead of failing deep in a report.
    """
    if not isinstance(record, dict):
        return f"is {type(record).__name__}, not an object"
    broken = _broken_text(record)
    if broken is not None:
        return f"{broken} is not valid Unicode text (a lone surrogate); no file can hold it"
    for key in NUMBER_FIELDS:
        problem = _number_problem(record.get(key))
        if problem:
            return f"{key} {problem}"
    for key in TEXT_FIELDS:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} is {_shown(value)}, not text"
    config = record.get("config", {})
    if config is not None and not isinstance(config, dict):
        return f"config is {_shown(config)}, not an object"
    for key, value in (config or {}).items():
        if not _is_value(value):
            return f"config[{_shown(key)}] is {_shown(value)}, not a value"
    swept = record.get("swept", [])
    if swept is not None and (not isinstance(swept, list) or not all(isinstance(k, str) for k in swept)):
        return f"swept is {_shown(swept)}, not a list of keys"
    for key in swept or []:
        if not _is_value(record.get(key)):
            return f"{key} is {_shown(record.get(key))}, not a value"
    return None


def _broken_text(value: Any, where: str = "") -> str | None:
    r"""Where in ``value`` (a record read from JSON) a text holds a lone surrogate, which JSON's
    ``\ud800`` can spell but no UTF-8 file can hold; None when nowhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "a text"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _broken_text(key, "a key") or _broken_text(item, f"{where}[{_shown(key)}]" if where else str(key))
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _broken_text(item, f"{where}[{i}]")
            if found:
                return found
    return None


def _is_value(value: Any) -> bool:
    """A config value as a record holds it: text, a finite number, a bool, or nothing."""
    if value is None or isinstance(value, str | bool):
        return True
    return isinstance(value, int | float) and _number_problem(value) is None


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


class SummaryError(ValueError):
    """A ``sweep_summary.json`` that is not one this tool could have written; the message says where."""


def load_summary(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``sweep_summary.json``, normalized; :class:`SummaryError` (a ``ValueError``)
    names the record and field when the file is not a list of records (:func:`record_problem`)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except UnicodeDecodeError as exc:
        raise SummaryError(f"not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise SummaryError("nested too deeply to be a list of records") from None
    except ValueError as exc:
        raise SummaryError(f"not JSON ({exc})") from None
    if not isinstance(data, list):
        raise SummaryError(f"holds {type(data).__name__}, not a list of records")
    for i, record in enumerate(data, start=1):
        problem = record_problem(record)
        if problem is not None:
            name = record.get("config_file") if isinstance(record, dict) else None
            which = f"record {i}" + (f" ({_shown(name)[1:-1]})" if isinstance(name, str) and name else "")
            raise SummaryError(f"{which}: {problem}")
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
    #: The records were read back from the folder's ``sweep_summary.json`` by ``pytest-sweep report
    #: DIR`` (no pytest session ran): reporters write their outputs, never that summary, their input.
    from_summary: bool = False

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
