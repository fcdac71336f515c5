"""Trial records: the rows of ``sweep_summary.json``, and :class:`TrialRecord`, their schema.

``sweep_summary.json`` is a JSON list of flat records, so ``pandas.DataFrame(records)`` reads it
as is.  :class:`TrialRecord` is the one place that knows a record's schema: its fields (type,
default and meaning), the checks a record read from a file must pass, its JSON form
(:meth:`TrialRecord.to_json` / :meth:`TrialRecord.from_json`, as pytest's ``BaseReport`` has
``_to_json``/``_from_json``), the upgrade of an older schema version (:meth:`TrialRecord.normalize`)
and the key under which a record travels in a test report (:attr:`TrialRecord.WIRE_KEY`).
Everything else reads records as the flat dicts :meth:`TrialRecord.to_json` returns, the rows of
the file (which is what reporters receive, :class:`SweepResult`).

Schema version 2; version 1 had no ``stopped`` status, ``rung`` or ``stop_reason``
(:meth:`TrialRecord.normalize` fills them in).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pytest_sweep.matrix.errors import clip

SCHEMA_VERSION = 2
STATUSES = ("passed", "stopped", "failed", "skipped", "not_run")


def _meta(
    kind: str, doc: str, *, returned: int = 0, result: bool = False, percent: bool = False, decimals: int | None = None
) -> dict[str, Any]:
    """What :class:`TrialRecord` knows about one of its fields.

    :param kind: ``version``, ``text`` (text or None), ``number`` (a finite number or None),
        ``whole`` (a whole number or None), ``flag`` (a bool), ``config`` (an object of values)
        or ``keys`` (a list of config keys).
    :param doc: its meaning, for the generated reference (units in brackets).
    :param returned: a trainer's ``run()`` may return it and the record copies it: its place in
        :data:`METRIC_KEYS` (1 first; 0: not returned).
    :param result: one of the numeric result metrics (:data:`RESULT_METRICS`).
    :param percent: an accuracy in percent (:data:`PERCENT_METRICS`): a drop is in percentage points.
    :param decimals: the decimal places its measurement is worth (:data:`DECIMALS`; the CSV rounds to them).
    """
    return {"kind": kind, "doc": doc, "returned": returned, "result": result, "percent": percent, "decimals": decimals}


def _field(default: str | int | bool | None, kind: str, doc: str, **meta: Any) -> Any:
    """One field of :class:`TrialRecord` with an immutable default (:func:`_meta`)."""
    return field(default=default, metadata=_meta(kind, doc, **meta))


@dataclass(frozen=True)
class TrialRecord:
    """One trial's record: its fields (in the order a summary writes them), their types and meaning.

    A field this class does not declare (the swept parameters' ``CONFIG_...`` columns, and the
    fields of :attr:`OCCASIONAL` that only some sweeps write) is kept in :attr:`extra`, in order.
    """

    #: The ``user_properties`` key under which a trial's record (its JSON) travels in a test report.
    WIRE_KEY: ClassVar[str] = "sweep_record"
    #: Fields only some records have (in :attr:`extra`), and what they mean.
    OCCASIONAL: ClassVar[dict[str, str]] = {
        "CONFIG_...": "one column per swept parameter (numbers as numbers)",
        "node": "``--sweep-backend=ray`` only: the Ray node's IP (``worker`` is ``ray1``...)",
        "node_id": "``--sweep-backend=ray`` only: the Ray node's id",
        "requeued": "Ray only, when its node was lost: why it ran again (one line per time)",
        "search": "a sampled sweep (``--sweep-search``) only: the sampler",
        "study_trial": "a sampled sweep (``--sweep-search``) only: the number of the study's trial "
        "that proposed this configuration",
        "duplicate_of": "a sampled item whose sampler kept proposing a finished configuration: the "
        "item whose result it reused (the item is ``skipped``)",
        "feasible": "with ``--sweep-constraint``: whether the trial met every constraint",
    }

    schema_version: int = _field(SCHEMA_VERSION, "version", "the version of this schema")
    config_file: str = _field("", "text", "``config_017``")
    status: str = _field(
        "not_run",
        "text",
        "``passed`` | ``stopped`` | ``failed`` | ``skipped`` | ``not_run``; ``stopped``: a scheduler "
        "(``--sweep-scheduler``) stopped it early",
    )
    reused: bool = _field(False, "flag", "true when ``--sweep-resume`` took the result from an earlier sweep")
    test_acc: float | None = _field(None, "number", "final test accuracy [%]", returned=1, result=True, percent=True)
    best_acc: float | None = _field(
        None, "number", "best test accuracy over the epochs [%]", returned=2, result=True, percent=True
    )
    final_sparsity: float | None = _field(
        None, "number", "fraction of exact zeros in Conv/Linear weights [0..1]", returned=3, result=True, decimals=4
    )
    training_time: float | None = _field(
        None, "number", "wall time of the trial's training [s]", returned=4, result=True, decimals=1
    )
    error: str | None = _field(None, "text", "one line: why the trial failed, was skipped or did not run")
    config: Mapping[str, Any] | None = field(
        default_factory=dict, metadata=_meta("config", "every ``KEY: value`` of the trial's config, as written")
    )
    swept: list[str] | None = field(default_factory=list, metadata=_meta("keys", "the swept keys"))
    nodeid: str = _field("", "text", "pytest node id")
    worker: str | None = _field(None, "text", "``main``, the xdist worker id (``gw0``) or the Ray actor's (``ray1``)")
    trial_dir: str | None = _field(None, "text", "the trial's folder, relative to the sweep folder")
    seed: int | None = _field(None, "whole", "the seed it trained with (``CONFIG_SEED``)")
    device: str | None = _field(None, "text", "``cpu`` / ``cuda:0``", returned=9)
    epochs_run: int | None = _field(None, "number", "epochs actually trained", returned=5, result=True)
    images_per_s: float | None = _field(None, "number", "mean training throughput", returned=6, result=True, decimals=1)
    peak_memory_mb: float | None = _field(
        None, "number", "peak GPU memory (CUDA only)", returned=7, result=True, decimals=1
    )
    torch_threads: int | None = _field(
        None, "number", "torch's intra-op CPU threads during the trial (CPU results depend on it)", returned=8
    )
    trainer: str | None = _field(None, "text", "what trained it, e.g. ``resnet18/cifar10/adamwprune``", returned=10)
    test_samples: int | None = _field(
        None,
        "number",
        "the test set's size (one image is 100 / test_samples pp of ``test_acc``); None when the trainer "
        "does not say (the analysis then knows no granularity)",
        returned=11,
    )
    source: str | None = _field(None, "text", "the range file (or generated config) the trial came from")
    rank: int | None = _field(
        None,
        "number",
        "1 for the best completed (``passed``) trial by ``test_acc``, then the rest of them; the ``stopped`` "
        "trials follow (best last accuracy first); None otherwise",
    )
    rung: int | None = _field(None, "whole", "``stopped`` only: the epoch (rung) at which it was stopped")
    stop_reason: str | None = _field(None, "text", "``stopped`` only: one line, why")
    paused: bool = _field(
        False,
        "flag",
        "``stopped`` only: true while it waits at its rung for a promotion (``--sweep-asha-mode=promotion``) "
        "that has not run (yet)",
    )
    resumed_from_epoch: int | None = _field(
        None, "number", "the epochs done in the checkpoint it continued from (None: trained from scratch)"
    )
    interim: bool = _field(
        False,
        "flag",
        "true in an interim summary, written while the sweep still ran (its ``not_run`` trials had not "
        "finished yet); false in the final summary",
    )
    #: Every other key of the record (the ``CONFIG_...`` columns, :attr:`OCCASIONAL`), in order.
    extra: Mapping[str, Any] = field(default_factory=dict, metadata={"kind": "extra"})

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def new(cls, name: str, raw: Mapping[str, str], swept: Mapping[str, str], **fields: Any) -> TrialRecord:
        """A trial's record: every schema field, the swept parameters as columns, then ``fields``."""
        out: dict[str, Any] = {"config_file": name, "config": dict(raw), "swept": list(swept)}
        out.update((key, json_value(value)) for key, value in swept.items())
        out.update(fields)
        return cls._of(out)

    @classmethod
    def _of(cls, data: Mapping[str, Any]) -> TrialRecord:
        declared = {k: v for k, v in data.items() if k in _DECLARED}
        extra = {k: v for k, v in data.items() if k not in _DECLARED}
        return cls(**declared, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The record as a flat JSON object (a row of ``sweep_summary.json``): the declared fields
        in their order, then :attr:`extra`."""
        out = {name: getattr(self, name) for name in _DECLARED}
        for name in ("config", "swept"):  # fresh containers: a record never shares another's
            value = out[name]
            out[name] = None if value is None else type(value)(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Any) -> TrialRecord:
        """A record read from a file (its JSON object), checked and upgraded to this schema;
        :class:`RecordError` (a ``ValueError``) says which field is wrong (:meth:`problem`)."""
        problem = cls.problem(data)
        if problem is not None:
            raise RecordError(problem)
        return cls._of(cls.normalize(data))

    @classmethod
    def normalize(cls, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` with the fields an older schema version lacks filled in (pytest-benchmark's
        ``normalize_stats`` habit): every older version upgrades by filling in defaults; a status
        this schema does not know becomes ``failed``."""
        out = cls().to_json()
        out.update(record)
        out["schema_version"] = SCHEMA_VERSION
        if out["status"] not in STATUSES:
            out["status"] = "failed"
        for key in out.get("swept") or []:
            out.setdefault(key, json_value(str((out["config"] or {}).get(key, ""))))
        return out

    @classmethod
    def meaning(cls, name: str) -> str:
        """What field ``name`` means (the generated reference's column; "" for one this class does not declare)."""
        found = _META.get(name)
        return str(found["doc"]) if found is not None and name != "extra" else ""

    # -- the wire ---------------------------------------------------------------------------
    @classmethod
    def wire(cls, record: Mapping[str, Any]) -> tuple[str, str]:
        """The ``user_properties`` entry that carries ``record`` in a test report."""
        return cls.WIRE_KEY, json.dumps(record)

    @classmethod
    def from_wire(cls, user_properties: Iterable[tuple[str, object]]) -> dict[str, Any] | None:
        """The last record a test report carries (None: it carries none)."""
        shipped = [value for key, value in user_properties if key == cls.WIRE_KEY]
        return cls.normalize(json.loads(str(shipped[-1]))) if shipped else None

    # -- checks -----------------------------------------------------------------------------
    @classmethod
    def problem(cls, record: Any) -> str | None:
        """Why ``record`` (read from a file) is not a record this tool could have written; None when it is.

        A field may be missing (:meth:`normalize` fills it in); one that is there must have its type:
        the metrics finite numbers, ``config`` an object of text (or number) values, ``swept`` a list of
        its keys.  Readers refuse such a file with one line instead of failing deep in a report.
        """
        if not isinstance(record, dict):
            return f"is {type(record).__name__}, not an object"
        broken = _broken_text(record)
        if broken is not None:
            return f"{broken} is not valid Unicode text (a lone surrogate); no file can hold it"
        for key in _NUMBER_FIELDS:
            problem = _number_problem(record.get(key))
            if problem:
                return f"{key} {problem}"
        for key in _TEXT_FIELDS:
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

    @classmethod
    def resume_problem(cls, record: Mapping[str, Any]) -> str | None:
        """Why a summary record cannot be resumed (the field and what it holds, quoted), or None."""
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
        if record.get("status") not in ("passed", "stopped"):
            for key in _REUSED_NUMBERS:
                if record.get(key) is not None and _metric_problem(key, record[key]) is not None:
                    return f"'{key}' is {_kind(record[key])}, not a finite number"
        return None

    @classmethod
    def metrics_problem(cls, doc: Mapping[str, Any]) -> str | None:
        """Why a finished trial's metrics (its ``training_metrics.json``, or its record) cannot be
        reused, or None when they can: ``test_acc`` a finite number, the other numbers a trainer
        returns finite or absent, its text fields text or absent."""
        for key in _REUSED_NUMBERS:
            value = doc.get(key)
            if value is not None or key == "test_acc":
                problem = _metric_problem(key, value)
                if problem:
                    return problem
        for key in TEXT_METRICS:
            if doc.get(key) is not None and not isinstance(doc[key], str):
                return f"{key} is not text"
        return None


class RecordError(ValueError):
    """A record read from a file is not one this tool could have written (the message names the field)."""


def _names(keep: Callable[[Mapping[str, Any]], bool]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrialRecord) if f.name != "extra" and keep(f.metadata))


#: The fields a record always has, in the order a summary writes them.
_DECLARED = _names(lambda m: True)
#: The record's numeric result metrics (what an objective, a constraint or a reused result names).
RESULT_METRICS = _names(lambda m: bool(m.get("result")))
_META = {f.name: f.metadata for f in dataclasses.fields(TrialRecord)}
#: Keys a trainer's ``run()`` may return and that the record copies.
METRIC_KEYS = tuple(sorted(_names(lambda m: m["returned"] > 0), key=lambda k: int(_META[k]["returned"])))
#: Accuracies in percent: one test image is 100 / test_samples pp; a drop is in percentage points.
PERCENT_METRICS = _names(lambda m: bool(m.get("percent")))
#: Decimal places of measured numbers whose precision does not depend on the trial.
DECIMALS = {k: int(_META[k]["decimals"]) for k in _names(lambda m: m.get("decimals") is not None)}
#: Of :data:`METRIC_KEYS`: the ones that must be numbers (finite, or the trial fails).
NUMERIC_METRICS = tuple(k for k in METRIC_KEYS if _META[k]["kind"] == "number")
#: Of :data:`METRIC_KEYS`: the ones that must be text (or null).
TEXT_METRICS = tuple(k for k in METRIC_KEYS if _META[k]["kind"] == "text")
_NUMBER_FIELDS = _names(lambda m: m["kind"] in ("number", "whole"))
_TEXT_FIELDS = _names(lambda m: m["kind"] == "text")
_WHOLE_FIELDS = _names(lambda m: m["kind"] == "whole")
#: What a reused result must hold as finite numbers (``test_acc``) or may leave out (the rest).
_REUSED_NUMBERS = NUMERIC_METRICS
_SCALARS = (str, int, float, bool, type(None))


def new_record(name: str, raw: Mapping[str, str], swept: Mapping[str, str], **fields: Any) -> dict[str, Any]:
    """A new trial's record as JSON (:meth:`TrialRecord.new`)."""
    return TrialRecord.new(name, raw, swept, **fields).to_json()


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


def _metric_problem(key: str, value: Any) -> str | None:
    """Why a metric of a reused result is not a finite number (``test_acc is NaN``), or None."""
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
    names the record and field when the file is not a list of records (:meth:`TrialRecord.problem`)."""
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
    out = []
    for i, record in enumerate(data, start=1):
        try:
            out.append(TrialRecord.from_json(record).to_json())
        except RecordError as exc:
            name = record.get("config_file") if isinstance(record, dict) else None
            which = f"record {i}" + (f" ({_shown(name)[1:-1]})" if isinstance(name, str) and name else "")
            raise SummaryError(f"{which}: {exc}") from None
    return out


@dataclass
class SweepResult:
    """What reporters get when the sweep ends (``pytest_sweep_finished``) or, while it still runs,
    in an interim summary (``pytest_sweep_progress``, ``running`` true).

    ``records`` are the rows of ``sweep_summary.json``: each a :meth:`TrialRecord.to_json` object.
    """

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
