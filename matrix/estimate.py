"""The runtime estimate: an interval per trial, from times measured on this machine.

After collection the sweep prints ``sweep: estimated runtime about 3-5 min (4 trials x about
40-70 s; basis)``.  The figure per trial comes from the first of these that answers, per trainer
description:

1. ``--sweep-minutes-per-trial`` (the user's own figure: a number, not an interval);
2. pytest's cache (``config.cache``): the wall times of earlier passed trials with the same trainer
   description, device, host and versions (Python, pytest-sweep, torch's distribution);
3. earlier sweep folders under ``--sweep-output``: the training times of passed trials of the same
   trainer description;
4. ``pytest_sweep_estimate_trial``: a plugin's answer; the built-in trainer answers only with
   ``--sweep-estimate`` (it times a few optimizer steps in a child process, seconds of work);
5. nothing: the line says so, and the progress line gives the time left after the first trial passes.

Collection never waits for a child process unless ``--sweep-estimate`` asks for it.  While the
sweep runs, :class:`Clock` re-estimates the time left after every finished trial from this run's
passed and stopped trials (a failed trial's time never enters it), and keeps each passed trial's
wall time in the cache for the next run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.files import SUMMARY_JSON

if TYPE_CHECKING:
    from pytest_sweep.matrix.collect import SweepItem
    from pytest_sweep.matrix.sources import Sources
    from pytest_sweep.matrix.trial import Trial

#: How many earlier sweep folders are read for measured trial times.
HISTORY_DEPTH = 20
#: How many wall times per key pytest's cache keeps (the newest).
CACHE_SAMPLES = 10
CACHE_PREFIX = "sweep/timings/"
#: One measured time is widened to this interval (load on a shared machine swings both ways).
ONE_SAMPLE_SPAN = (0.7, 1.5)
#: Several measured times: from their minimum x LOW to their maximum x HIGH.
SAMPLES_SPAN = (0.9, 1.1)

_ESTIMATE_KEY = pytest.StashKey["Estimate"]()
_TRIAL_KEY = pytest.StashKey[str]()


# -- intervals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Seconds per trial: a low and a high figure (equal for a user's own number)."""

    low: float
    high: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Span:
        """The interval a list of measured wall times stands for (at least one time)."""
        if len(seconds) == 1:
            return cls(seconds[0] * ONE_SAMPLE_SPAN[0], seconds[0] * ONE_SAMPLE_SPAN[1])
        return cls(min(seconds) * SAMPLES_SPAN[0], max(seconds) * SAMPLES_SPAN[1])


def format_minutes(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def _unit(high_s: float) -> tuple[float, str]:
    if high_s < 100:
        return 1.0, "s"
    if high_s < 120 * 60:
        return 60.0, "min"
    return 3600.0, "h"


def _nice(value: float, up: bool) -> float:
    """Rounded outward (``up``: towards larger): whole numbers, two significant figures from 100 up,
    tenths below 1."""
    if value <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(value)) - 1) if value >= 100 else (1.0 if value >= 1 else 0.1)
    scaled = value / step
    return (math.ceil(scaled - 1e-9) if up else math.floor(scaled + 1e-9)) * step


def format_span(span: Span) -> str:
    """``about 3-5 min``, ``about 40-70 s``, ``about 2-3 h``; a user's own figure as ``2.0 min``."""
    if span.low == span.high:
        return format_minutes(span.low / 60)
    if span.high < 1:
        return "under 1 s"
    scale, unit = _unit(span.high)
    low, high = _nice(span.low / scale, up=False), _nice(span.high / scale, up=True)
    if high <= low:
        high = _nice(low * 1.1 + 1e-9, up=True)
    return f"about {_num(low)}-{_num(high)} {unit}"


def _num(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


# -- the cache -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _versions() -> tuple[str, ...]:
    """What a trial's speed depends on besides its config (the distribution's version, no import)."""
    from pytest_sweep import __version__

    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = ""
    return (platform.node(), platform.machine(), str(os.cpu_count()), platform.python_version(), __version__, torch)


def timing_key(description: str | None, device: str | None) -> str:
    """The cache key of a trainer description on a device, on this host, with these versions."""
    text = json.dumps([description or "", device or "", *_versions()])
    return CACHE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:20]


def trial_key(sources: Sources, trial: Trial) -> str:
    """The timing key of a trial (its trainer description and ``CONFIG_DEVICE``), kept in its stash."""
    key = trial.stash.get(_TRIAL_KEY, None)
    if key is None:
        device = trial.values.get("CONFIG_DEVICE")
        key = trial.stash[_TRIAL_KEY] = timing_key(sources.describe(trial), None if device is None else str(device))
    return key


def _cache(config: pytest.Config) -> Any:
    """The run's pytest cache, or None (``-p no:cacheprovider``)."""
    return getattr(config, "cache", None)


def cached_seconds(config: pytest.Config, key: str) -> list[float]:
    """The wall times kept under ``key`` (empty when none, or the entry is not a list of numbers)."""
    cache = _cache(config)
    if cache is None:
        return []
    try:
        entry = cache.get(key, None)
    except Exception:  # a broken cache file never breaks a run
        return []
    values = entry.get("seconds") if isinstance(entry, dict) else None
    if not isinstance(values, list):
        return []
    out = []
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
            out.append(float(v))
    return out[-CACHE_SAMPLES:]


def remember(config: pytest.Config, key: str, seconds: float, description: str | None, device: str | None) -> None:
    """Add one passed trial's wall time to the cache (the newest ``CACHE_SAMPLES`` are kept)."""
    cache = _cache(config)
    if cache is None or not (math.isfinite(seconds) and seconds >= 0):
        return
    values = [*cached_seconds(config, key), round(seconds, 3)][-CACHE_SAMPLES:]
    try:
        cache.set(key, {"seconds": values, "description": description, "device": device})
    except Exception:  # an unwritable cache costs the next estimate, never the sweep
        pass


# -- earlier sweep folders -------------------------------------------------------------------------


def _history_times(path: Path, trainers: set[str]) -> dict[str, list[float]]:
    """Training times of passed trials of these trainers in one earlier summary, by trainer.

    Raises ``ValueError`` naming what is wrong with a file that is not a list of records.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    if not isinstance(data, list):
        raise ValueError(f"holds {type(data).__name__}, not a list of records")
    times: dict[str, list[float]] = {}
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
            times.setdefault(trainer, []).append(value)
    return times


def history(root: Path, trainers: set[str], skipped: list[str] | None = None) -> dict[str, tuple[list[float], str]]:
    """Per trainer description: the training times of passed trials in the newest earlier sweeps,
    and the newest folder they came from.  A summary that cannot be read goes to ``skipped``."""
    found: dict[str, tuple[list[float], str]] = {}
    for folder in reversed(storage.sweep_dirs(root)[-HISTORY_DEPTH:]):
        path = folder / SUMMARY_JSON
        if not path.is_file():
            continue
        try:
            times = _history_times(path, trainers)
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
            if skipped is not None:
                skipped.append(f"{path} ({clip(str(exc))[:120]})")
            continue
        for trainer, seconds in times.items():
            old, where = found.get(trainer, ([], folder.name))
            found[trainer] = ([*old, *seconds], where)
    return found


def _hook_seconds(config: pytest.Config, trial: Trial) -> float | None:
    """``pytest_sweep_estimate_trial``'s answer (None: no answer, or not a usable number)."""
    try:
        answer = config.hook.pytest_sweep_estimate_trial(trial=trial, config=config)
    except Exception:  # an estimate never breaks collection
        return None
    ok = isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer)
    return float(answer) if ok and answer >= 0 else None


# -- the estimate after collection -----------------------------------------------------------------


@dataclass
class Estimate:
    """Per timing key: the interval per trial and where it came from (None: unknown)."""

    spans: dict[str, Span | None]
    bases: dict[str, str]
    #: node id -> timing key of every runnable trial
    keys: dict[str, str]

    def total(self, workers: int = 1) -> Span | None:
        """The whole sweep's interval; None while any runnable trial's time is unknown."""
        counts = Counter(self.keys.values())
        low = high = 0.0
        for key, n in counts.items():
            span = self.spans.get(key)
            if span is None:
                return None
            low += span.low * n
            high += span.high * n
        workers = max(1, workers)
        return Span(low / workers, high / workers)


def estimate(config: pytest.Config, sources: Sources, items: list[SweepItem], skipped: list[str]) -> Estimate:
    """The figure per trainer, from the first source that answers (see the module's docstring)."""
    runnable = [i for i in items if not i.skip_reason]
    keys = {i.nodeid: trial_key(sources, i.trial) for i in runnable}
    opts = sources.options
    per_trial = opts.minutes_per_trial
    spans: dict[str, Span | None] = {}
    bases: dict[str, str] = {}
    if per_trial is not None:
        for key in keys.values():
            spans[key] = Span(per_trial * 60, per_trial * 60)
            bases[key] = "--sweep-minutes-per-trial"
        return Estimate(spans, bases, keys)
    representative = {keys[i.nodeid]: i.trial for i in reversed(runnable)}
    missing: dict[str, Trial] = {}
    for key, trial in representative.items():
        seconds = cached_seconds(config, key)
        if seconds:
            spans[key] = Span.of(seconds)
            bases[key] = f"measured: {len(seconds)} earlier trial{'s' if len(seconds) != 1 else ''} on this machine"
        else:
            missing[key] = trial
    if missing:
        described = {key: sources.describe(t) or "" for key, t in missing.items()}
        found = history(opts.output_root, set(described.values()), skipped)
        for key in list(missing):
            times, where = found.get(described[key], ([], ""))
            if times:
                spans[key] = Span.of(times)
                bases[key] = f"measured: {len(times)} earlier trial{'s' if len(times) != 1 else ''}, newest in {where}"
                del missing[key]
    for key, trial in missing.items():
        seconds_or_none = _hook_seconds(config, trial)
        if seconds_or_none is not None:
            spans[key] = Span.of([seconds_or_none])
            bases[key] = (
                "timed: a few optimizer steps on its device, scaled to the whole run"
                if opts.estimate
                else "pytest_sweep_estimate_trial's answer"
            )
        else:
            spans[key] = None
    return Estimate(spans, bases, keys)


def describe(config: pytest.Config, sources: Sources, sweep_dir: Path, items: list[SweepItem]) -> list[str]:
    """The lines printed after collection: combinations, trainers, the estimate, where results go."""
    runnable = [i for i in items if not i.skip_reason]
    skipped_n = len(items) - len(runnable)
    trainers = {sources.describe(i.trial) or "" for i in runnable}
    skipped_history: list[str] = []
    est = config.stash[_ESTIMATE_KEY] = estimate(config, sources, items, skipped_history)
    lines = [f"sweep: history left out of the estimate, unreadable: {p}" for p in skipped_history]
    kinds = Counter(t for t in trainers if t)
    lines.append(
        f"sweep: {len(items)} combination{'s' if len(items) != 1 else ''}"
        + (f" ({skipped_n} skipped by plugins)" if skipped_n else "")
        + (f"; trainer: {', '.join(sorted(kinds))}" if kinds else "")
    )
    lines.append(_estimate_line(config, est, len(runnable)))
    workers = getattr(config.option, "numprocesses", None)
    total = est.total()
    if isinstance(workers, int) and workers > 1 and total is not None:
        lines.append(f"sweep: with {workers} workers {format_span(est.total(workers) or total)}")
    if not config.option.collectonly:
        lines.append(f"sweep: results go to {sweep_dir}")
    return lines


def _estimate_line(config: pytest.Config, est: Estimate, runnable: int) -> str:
    if not runnable:
        return "sweep: estimated runtime 0 s (no trial to run)"
    bases = sorted(set(est.bases.values()))
    total = est.total()
    if total is None:
        unknown = sum(1 for key in est.keys.values() if est.spans.get(key) is None)
        what = "" if unknown == runnable else f" for {unknown} of {runnable} trials"
        whose = "this trainer" if len(set(est.keys.values())) == 1 else "its trainers"
        return (
            f"sweep: estimated runtime not known yet{what} (no timing of {whose} on this machine): "
            "the progress line gives the time left once a trial passes (--sweep-estimate times a few "
            "steps now; --sweep-minutes-per-trial=MIN sets it)"
        )
    spans = {est.spans[k] for k in est.keys.values()}
    if len(spans) == 1:
        (span,) = spans
        assert span is not None
        if span.low == span.high:  # the user's figure
            per = format_minutes(span.low / 60)
            return (
                f"sweep: estimated runtime {runnable} x {per} = {format_minutes(total.low / 60)} ({'; '.join(bases)})"
            )
        each = format_span(span).removeprefix("about ")
        return f"sweep: estimated runtime {format_span(total)} ({runnable} x {each}; {'; '.join(bases)})"
    return f"sweep: estimated runtime {format_span(total)} ({runnable} trials; {'; '.join(bases)})"


def initial(config: pytest.Config) -> Estimate | None:
    """The estimate printed after collection (None when none was made)."""
    return config.stash.get(_ESTIMATE_KEY, None)


# -- while the sweep runs ------------------------------------------------------------------------


class Clock:
    """The time left, re-estimated after each finished trial; passed trials' times go to the cache.

    A failed trial's time never enters the estimate (it failed early, or hung until a timeout); a
    reused one (``--sweep-resume``) took no time; each process' first trial, which pays the
    imports and the data loading, is left out once two other trials of its kind finished.
    """

    def __init__(self, config: pytest.Config, sources: Sources) -> None:
        self.config = config
        self.sources = sources
        #: timing key -> wall times of this run's passed and stopped trials
        self.seconds: dict[str, list[float]] = {}
        #: timing key -> trials not finished yet
        self.pending: Counter[str] = Counter()
        self.started = False
        #: a trial of each timing key (the first one seen)
        self.trials: dict[str, Trial] = {}
        #: timing key -> this run's times without each process' first trial; the processes seen
        self.later: dict[str, list[float]] = {}
        self.workers_seen: set[str] = set()

    def key(self, trial: Trial) -> str:
        return trial_key(self.sources, trial)

    def start(self, trials: Iterable[Trial]) -> None:
        """The trials the run will train (the collected ones that no plugin skipped)."""
        self.started = True
        for trial in trials:
            key = self.key(trial)
            self.pending[key] += 1
            self.trials.setdefault(key, trial)

    def gone(self, trial: Trial) -> None:
        """A trial left the run without training (skipped while it ran)."""
        key = self.key(trial)
        if self.pending[key] > 0:
            self.pending[key] -= 1

    def finished(self, trial: Trial, record: dict[str, Any], seconds: float) -> None:
        self.gone(trial)
        if record.get("reused") or record.get("status") not in ("passed", "stopped"):
            return
        key = self.key(trial)
        worker = str(record.get("worker") or "main")
        first = worker not in self.workers_seen  # it paid the process' imports and data loading
        self.workers_seen.add(worker)
        self.seconds.setdefault(key, []).append(seconds)
        self.later.setdefault(key, []).extend([] if first else [seconds])
        if record.get("status") == "passed":
            device = trial.values.get("CONFIG_DEVICE")
            remember(self.config, key, seconds, self.sources.describe(trial), None if device is None else str(device))

    def span(self, key: str) -> tuple[Span | None, str]:
        """The interval for one trial of ``key`` left, and its basis in words."""
        own = self.seconds.get(key)
        if own:
            later = self.later.get(key) or []
            # a process' first trial pays its imports: once two others finished, the rest look like them
            return Span.of((later if len(later) >= 2 else own)[-CACHE_SAMPLES:]), _from(len(own))
        est = initial(self.config)
        if est is not None and est.spans.get(key) is not None:
            return est.spans[key], "as estimated before the run"
        every = [s for values in self.seconds.values() for s in values]
        if every:
            return Span.of(every[-CACHE_SAMPLES:]), _from(len(every)) + " of another trainer"
        return None, "not known until a trial passes"

    def left(self, workers: int) -> str | None:
        """``about 3-5 min left (from 2 finished trials)``; None when no trial is left."""
        low = high = 0.0
        bases: Counter[str] = Counter()
        for key, n in self.pending.items():
            if n <= 0:
                continue
            span, basis = self.span(key)
            if span is None:
                return "time left not known until a trial passes"
            low += span.low * n
            high += span.high * n
            bases[basis] += n
        if not bases:
            return None
        workers = max(1, workers)
        total = Span(low / workers, high / workers)
        return f"{format_span(total)} left ({bases.most_common(1)[0][0]})"


def _from(n: int) -> str:
    return "from the first finished trial" if n == 1 else f"from {n} finished trials"
