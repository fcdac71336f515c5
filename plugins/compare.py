"""Compare a sweep with a baseline sweep, and fail CI on a regression or a lost result.

``pytest --range-config=FILE --sweep-compare=BASELINE_DIR`` prints, after the run, the trials
present in both sweeps (the same config name and the identical config) with their test accuracy
then and now and the change.  ``--sweep-compare-fail=test_acc:1.0`` makes the run exit non-zero
(pytest's "tests failed", 1) and names each cause (pytest-benchmark's ``--benchmark-compare-fail``
habit):

- **a regression**: with ``CONFIG_SEED`` swept in both sweeps, a configuration's mean over its
  seeds dropped by more than the threshold by a one-sided t-test paired over the seeds (the
  trials match by their whole config, seed included), with Holm's correction across the
  configurations, so comparing a
  sweep with itself raises a false alarm in at most 5% of runs (alpha 0.05); without swept seeds,
  a trial's single number dropped by more than the threshold (the rule has no noise model, and
  says so);
- **a lost result**: a configuration that passed in the baseline and is now failed, stopped,
  skipped, not run, or passed without the metric; a trial stopped in both sweeps by the same
  scheduler is compared at its rung instead (stopped at an earlier rung now is lost);
- **nothing in common**: no trial of this sweep is in the baseline;
- **the front** (``hypervolume:PCT``): the Pareto front's hypervolume lost more than PCT percent.

Sampled sweeps (``--sweep-search``) share few configurations: their row is the best configuration
found then and now.

A baseline folder without a readable ``sweep_summary.json`` and a threshold that does not parse
are usage errors before anything trains.  ``pytest-sweep compare A B`` does the same without
training.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tabulate import tabulate

from pytest_sweep.matrix.files import SUMMARY_JSON
from pytest_sweep.matrix.objectives import Objective
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.records import PERCENT_METRICS, SummaryError, SweepResult, load_summary, ranked
from pytest_sweep.plugins import pareto, stats
from pytest_sweep.plugins.analysis import labeller
from pytest_sweep.plugins.options import compare_options, shown
from pytest_sweep.plugins.replicates import SEED_KEY, configurations, seed_swept

#: Metrics a threshold may name: percentages, so a drop is in percentage points.
METRICS = PERCENT_METRICS
#: The front's threshold: ``hypervolume:5`` fails when the front's hypervolume lost more than 5%.
HYPERVOLUME = "hypervolume"


@dataclass(frozen=True)
class Threshold:
    metric: str
    points: float

    def __str__(self) -> str:
        return f"{self.metric}:{self.points:g}"


def parse_threshold(text: str, flag: str = "--sweep-compare-fail") -> Threshold:
    """``test_acc:1.0`` -> Threshold; anything else raises ``ValueError`` with the fix."""
    metric, sep, points = text.strip().partition(":")
    value_text = shown(text)
    example = f"use METRIC:POINTS with METRIC one of {', '.join((*METRICS, HYPERVOLUME))}, e.g. {flag}=test_acc:1.0"
    if not sep or metric not in (*METRICS, HYPERVOLUME):
        raise ValueError(f"{flag}={value_text}: {example}")
    try:
        value = float(points)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{flag}={value_text}: the points must be a number, 0 or more; {example}")
    return Threshold(metric, value)


def load_baseline(folder: Path, flag: str = "--sweep-compare", given: str | None = None) -> list[dict[str, Any]]:
    """The records of a sweep folder; ``ValueError`` names the fix when there is no readable summary.

    :param given: the folder as the user wrote it (for the message).
    """
    path = folder / SUMMARY_JSON
    try:
        os.stat(folder)
    except OSError as exc:
        why = "a loop of symbolic links" if exc.errno == errno.ELOOP else "no such folder"
    else:
        if not folder.is_dir():
            why = "not a folder"
        else:
            try:
                return load_summary(path)
            except FileNotFoundError:
                why = f"no {SUMMARY_JSON} in it"
            except SummaryError as exc:
                why = f"{SUMMARY_JSON} is not readable: {shown(str(exc), 160)}"
            except IsADirectoryError:
                why = f"{SUMMARY_JSON} is a folder"
            except OSError as exc:
                why = f"cannot read {SUMMARY_JSON} ({exc.strerror or type(exc).__name__})"
    name = shown(given if given is not None else str(folder), 200)
    raise ValueError(f"{flag}={name}: {why}; pass the sweep_YYYYMMDD_HHMMSS folder of a finished sweep")


@dataclass(frozen=True)
class Row:
    """One trial found in both sweeps."""

    label: str
    status_then: str
    status_now: str
    then: dict[str, float | None]
    now: dict[str, float | None]
    then_record: dict[str, Any] = field(default_factory=dict, repr=False)
    now_record: dict[str, Any] = field(default_factory=dict, repr=False)

    def drop(self, metric: str) -> float | None:
        a, b = self.then.get(metric), self.now.get(metric)
        return None if a is None or b is None else a - b


@dataclass(frozen=True)
class Finding:
    """A cause that fails the gate: ``kind`` is ``regression``, ``lost`` or ``nothing``."""

    kind: str
    label: str
    why: str

    @property
    def line(self) -> str:
        if self.kind == "nothing":
            return f"NOTHING IN COMMON: {self.why}"
        return f"{'LOST' if self.kind == 'lost' else 'REGRESSION'} {self.label}: {self.why}"


@dataclass(frozen=True)
class FrontChange:
    """Two sweeps' Pareto fronts, measured from one reference point."""

    objectives: tuple[Objective, ...]
    then: float | None
    now: float | None
    size_then: int
    size_now: int

    def loss_pct(self) -> float | None:
        """How much of the baseline's hypervolume the front lost, in percent (negative: gained)."""
        if not self.then or self.now is None:
            return None
        return 100.0 * (self.then - self.now) / self.then


@dataclass
class Comparison:
    baseline: str
    rows: list[Row]
    only_now: int
    only_then: int
    thresholds: list[Threshold] = field(default_factory=list)
    #: how each metric was gated, in words (filled by :func:`compare`)
    bases: dict[str, str] = field(default_factory=dict)
    found: list[Finding] = field(default_factory=list)
    #: sampled sweeps: the rows compare the best found, not configuration by configuration
    sampled: bool = False
    front: FrontChange | None = None

    def regressions(self) -> list[Finding]:
        """Every cause that fails the gate (empty without thresholds)."""
        return list(self.found)


def _key(record: dict[str, Any]) -> tuple[str, str]:
    return str(record["config_file"]), json.dumps(record.get("config") or {}, sort_keys=True)


def _metric(record: dict[str, Any], metric: str) -> float | None:
    value = record.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _metrics(record: dict[str, Any]) -> dict[str, float | None]:
    ok = record["status"] == "passed"
    return {m: _metric(record, m) if ok else None for m in METRICS}


# -- lost results -------------------------------------------------------------------------------------

#: How the built-in schedulers word a stop (the rest of a reason is numbers).
SCHEDULERS = (("the rung's top-", "ASHA"), ("the median ", "median rule"))


def scheduler_of(reason: str | None) -> str:
    """Which scheduler stopped a trial, from its ``stop_reason`` (another's: the reason without numbers)."""
    text = str(reason or "")
    for words, name in SCHEDULERS:
        if words in text:
            return name
    return re.sub(r"[-+]?\d[\d.,]*(e[-+]?\d+)?%?", "#", text.partition(": ")[2] or text).strip() or "unknown"


def _now_words(rec: dict[str, Any], metric: str) -> str:
    status = rec["status"]
    error = rec.get("error")
    if status == "stopped":
        return f"stopped early now (at epoch {rec.get('rung')})"
    if status == "passed":
        return f"passed now without {metric}"
    what = {"failed": "failed now", "skipped": "skipped now", "not_run": "not run now"}.get(status, f"{status} now")
    return f"{what} ({error})" if error else what


def lost(row: Row, metric: str) -> str | None:
    """Why ``row`` lost its result (None: it did not)."""
    then, now = row.then_record, row.now_record
    if row.status_then == "passed" and _metric(then, metric) is not None:
        if row.status_now == "passed" and _metric(now, metric) is not None:
            return None
        return f"passed in the baseline ({_metric(then, metric):.2f}%), {_now_words(now, metric)}"
    if row.status_then == "stopped":
        if row.status_now in ("passed",) and _metric(now, metric) is not None:
            return None
        if row.status_now != "stopped":
            return f"stopped at epoch {then.get('rung')} in the baseline, {_now_words(now, metric)}"
        a, b = scheduler_of(then.get("stop_reason")), scheduler_of(now.get("stop_reason"))
        if a != b:
            return f"stopped by another scheduler now ({b}; the baseline's: {a})"
        rung_then, rung_now = then.get("rung"), now.get("rung")
        if isinstance(rung_then, int) and isinstance(rung_now, int) and rung_now < rung_then:
            return f"stopped at epoch {rung_then} in the baseline, at epoch {rung_now} now"
    return None


def _at_rung(row: Row) -> bool:
    """Stopped in both sweeps at the same rung by the same scheduler: compared there."""
    then, now = row.then_record, row.now_record
    return (
        row.status_then == "stopped"
        and row.status_now == "stopped"
        and then.get("rung") == now.get("rung")
        and scheduler_of(then.get("stop_reason")) == scheduler_of(now.get("stop_reason"))
    )


# -- regressions ----------------------------------------------------------------------------------------


def _rule(rows: list[Row], t: Threshold) -> list[Finding]:
    """The threshold rule on single numbers (no noise model)."""
    found = []
    for row in rows:
        at_rung = _at_rung(row)
        if not (row.status_then == row.status_now == "passed" or at_rung):
            continue
        a, b = _metric(row.then_record, t.metric), _metric(row.now_record, t.metric)
        if a is None or b is None or a - b <= t.points:
            continue
        where = f" at epoch {row.now_record.get('rung')}" if at_rung else ""
        found.append(
            Finding(
                "regression",
                row.label,
                f"{t.metric} {a:.2f}% -> {b:.2f}%{where} (-{a - b:.2f} pp, more than {t.points:g})",
            )
        )
    return found


def _seeded(records: list[dict[str, Any]]) -> bool:
    return seed_swept(records) and any(c.n >= 2 for c in configurations(records))


def _statistical(rows: list[Row], t: Threshold) -> tuple[list[Finding], str]:
    """Seeds swept in both: per configuration, a one-sided test that its mean dropped by more than the threshold."""
    groups: dict[str, tuple[list[Row], str]] = {}
    for row in rows:
        if row.status_then == row.status_now == "passed":
            config = {k: v for k, v in (row.now_record.get("config") or {}).items() if k != SEED_KEY}
            key = json.dumps([row.now_record.get("source"), config], sort_keys=True)
            groups.setdefault(key, ([], row.label))[0].append(row)
    floor = stats.rounding_sd(_granularity([r.then_record for r in rows] + [r.now_record for r in rows]))
    table: list[tuple[str, list[tuple[float, float]]]] = []
    for members, label in groups.values():
        pairs: list[tuple[float, float]] = []
        for r in members:
            x, y = _metric(r.then_record, t.metric), _metric(r.now_record, t.metric)
            if x is not None and y is not None:
                pairs.append((x, y))
        if pairs:
            table.append((label, pairs))
    results = stats.paired_tests([[a - b for a, b in pairs] for _, pairs in table], t.points, "greater", floor)
    tests: list[tuple[str, float, float, int, float | None, str]] = []  # label, then, now, n, p, how
    for (label, pairs), result in zip(table, results, strict=True):
        mean_then = statistics.fmean(a for a, _ in pairs)
        mean_now = statistics.fmean(b for _, b in pairs)
        how = f"paired over {len(pairs)} seeds" if result is not None else "1 seed in both: the threshold rule"
        tests.append((label, mean_then, mean_now, len(pairs), None if result is None else result.p, how))
    adjusted = iter(stats.holm([p for *_, p, _ in tests if p is not None]))
    found = []
    for label, a, b, n, p, how in tests:
        if p is None:
            if a - b > t.points:
                found.append(Finding("regression", label, f"{t.metric} {a:.2f}% -> {b:.2f}% (-{a - b:.2f} pp, more "
                                     f"than {t.points:g}; {how}, no noise model)"))  # fmt: skip
            continue
        p_holm = next(adjusted)
        if p_holm < stats.ALPHA:
            found.append(
                Finding(
                    "regression",
                    label,
                    f"{t.metric} {a:.2f}% -> {b:.2f}% (mean over {n} seeds; -{a - b:.2f} pp, more than "
                    f"{t.points:g} at p {stats.p_is(p)}, Holm p {stats.p_is(p_holm)})",
                )
            )
    n_tests = sum(1 for *_, p, _ in tests if p is not None)
    basis = (
        f"per-configuration means over seeds: a one-sided paired t-test that the drop exceeds {t.points:g} pp "
        f"(the seed noise pooled over the configurations), Holm across {n_tests} "
        f"configuration{'s' if n_tests != 1 else ''} (alpha {stats.ALPHA:g})"
    )
    return found, basis


def _granularity(records: list[dict[str, Any]]) -> float | None:
    sizes = [n for n in (r.get("test_samples") for r in records) if isinstance(n, int) and not isinstance(n, bool)]
    sizes = [n for n in sizes if n > 0]
    return 100.0 / min(sizes) if sizes else None


def _sampled(records: list[dict[str, Any]]) -> bool:
    return any(r.get("search") for r in records)


def _best_found(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[Row]:
    """Sampled sweeps share few configurations: one row, the best found then and now."""
    then, now = ranked(baseline), ranked(current)
    if not then or not now:
        return []
    label = f"best found ({then[0]['config_file']} then, {now[0]['config_file']} now)"
    return [Row(label, "passed", "passed", _metrics(then[0]), _metrics(now[0]), then[0], now[0])]


def front_change(
    baseline: list[dict[str, Any]], current: list[dict[str, Any]], objectives: tuple[Objective, ...]
) -> FrontChange:
    """Both fronts' hypervolumes from one reference point (computed over both sweeps)."""
    a, b = pareto.front(baseline, objectives), pareto.front(current, objectives)
    ref = pareto.reference_point(a, b)
    return FrontChange(objectives, a.hypervolume(ref), b.hypervolume(ref), len(a.front), len(b.front))


def _front_findings(comp: Comparison) -> list[Finding]:
    loss = comp.front.loss_pct() if comp.front is not None else None
    found = []
    for t in comp.thresholds:
        if t.metric == HYPERVOLUME and loss is not None and loss > t.points and comp.front is not None:
            f = comp.front
            why = f"hypervolume {f.then:.4g} -> {f.now:.4g} (-{loss:.1f}%, more than {t.points:g}%)"
            found.append(Finding("regression", "Pareto front", why))
    return found


def compare(
    baseline: list[dict[str, Any]],
    current: list[dict[str, Any]],
    thresholds: list[Threshold],
    name: str = "",
    objectives: tuple[Objective, ...] = (),
) -> Comparison:
    change = None
    if len(objectives) > 1 or any(t.metric == HYPERVOLUME for t in thresholds):
        change = front_change(baseline, current, objectives or (Objective("test_acc", "max"),))
    metric_thresholds = [t for t in thresholds if t.metric != HYPERVOLUME]
    if _sampled(baseline) or _sampled(current):
        rows = _best_found(baseline, current)
        comp = Comparison(name, rows, 0, 0, list(thresholds), sampled=True, front=change)
        comp.found += _front_findings(comp)
        for t in metric_thresholds:
            if not rows and ranked(baseline):
                comp.found.append(Finding("lost", "best found", "the baseline had a passed trial; no trial passed now"))
                break
            comp.found += _rule(rows, t)
            comp.bases[str(t)] = "sampled sweeps: the best found then and now against the threshold (no noise model)"
        return comp
    then: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in baseline:
        then.setdefault(_key(rec), rec)
    label = labeller(current)
    rows = []
    matched = set()
    for rec in current:
        key = _key(rec)
        old = then.get(key)
        if old is None or key in matched:
            continue
        matched.add(key)
        rows.append(Row(label(rec), old["status"], rec["status"], _metrics(old), _metrics(rec), old, rec))
    comp = Comparison(name, rows, len(current) - len(rows), len(then) - len(matched), list(thresholds), front=change)
    comp.found += _front_findings(comp)
    if not metric_thresholds:
        return comp
    if not rows:
        comp.found.append(
            Finding(
                "nothing",
                "",
                "no configuration of this sweep is in the baseline (same config name and config); "
                "the gate has nothing to compare",
            )
        )
        return comp
    seeded = _seeded(baseline) and _seeded(current)
    reported: set[str] = set()
    for t in metric_thresholds:
        for row in rows:
            why = lost(row, t.metric)
            if why is not None and row.label not in reported:
                reported.add(row.label)
                comp.found.append(Finding("lost", row.label, why))
        if seeded:
            found, basis = _statistical(rows, t)
            found += [f for f in _rule([r for r in rows if _at_rung(r)], t)]
        else:
            found = _rule(rows, t)
            basis = (
                "no seeds swept in both sweeps: each trial's single number against the threshold "
                "(no noise model: sweep CONFIG_SEED=1|2|3 in both for a statistical gate)"
            )
        comp.found += found
        comp.bases[str(t)] = basis
    return comp


def render(comp: Comparison) -> list[str]:
    """The comparison as terminal lines: the table, how the gate decided, then one line per finding."""
    if comp.sampled:
        lines = [f"baseline: {comp.baseline}; sampled sweeps: the best configuration found then and now"]
    else:
        lines = [
            f"baseline: {comp.baseline}; {len(comp.rows)} configuration{'s' if len(comp.rows) != 1 else ''} in both "
            f"(same config name and config); only now: {comp.only_now}; only in the baseline: {comp.only_then}"
        ]
    if comp.front is not None:
        f = comp.front
        hv = "n/a" if f.then is None or f.now is None else f"{f.then:.4g} -> {f.now:.4g}"
        lines.append(
            f"Pareto front ({', '.join(map(str, f.objectives))}): {f.size_then} -> {f.size_now} configurations, "
            f"hypervolume {hv} (one reference point for both)"
        )
    metrics = list(dict.fromkeys(["test_acc", *(t.metric for t in comp.thresholds if t.metric != HYPERVOLUME)]))
    rows = []
    for row in comp.rows:
        cells: list[str] = [row.label]
        for m in metrics:
            a, b = _shown(row.then_record, m), _shown(row.now_record, m)
            cells += [
                row.status_then if a is None else f"{a:.2f}",
                row.status_now if b is None else f"{b:.2f}",
                "" if a is None or b is None else f"{b - a:+.2f}",
            ]
        rows.append(cells)
    headers = ["config"] + [h for m in metrics for h in (f"{m} then %", f"{m} now %", "change pp")]
    if rows:
        lines += tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True).splitlines()
    if comp.thresholds:
        for t, basis in comp.bases.items():
            lines.append(f"gate {t}: {basis}")
        found = comp.regressions()
        limits = ", ".join(map(str, comp.thresholds))
        if found:
            lines.append(f"regressions ({limits}): {len(found)}")
            lines += [f.line for f in found]
        else:
            lines.append(f"no regression ({limits})")
    return lines


def _shown(record: dict[str, Any], metric: str) -> float | None:
    """A metric in the table: a passed trial's, or a stopped trial's at its rung."""
    return _metric(record, metric) if record.get("status") in ("passed", "stopped") else None


# -- the plugin ----------------------------------------------------------------------------------


@dataclass
class _State:
    baseline: list[dict[str, Any]]
    folder: Path
    thresholds: list[Threshold]
    result: Comparison | None = None
    current: Path | None = None


_STATE = pytest.StashKey[_State]()


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # only the controller compares
    given = compare_options(config)
    raw = given.baseline
    try:
        thresholds = [parse_threshold(text) for text in given.fails]
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not raw:
        if thresholds:
            raise pytest.UsageError(
                "--sweep-compare-fail needs a baseline: add --sweep-compare=BASELINE_DIR (a finished sweep folder)"
            )
        return
    try:
        folder = (given.base / Path(raw).expanduser()).resolve()
    except (OSError, RuntimeError) as exc:  # a loop of symbolic links, ~user unknown
        raise pytest.UsageError(
            f"--sweep-compare={shown(raw, 200)}: cannot resolve the path ({shown(str(exc), 120)}); "
            "pass the sweep_YYYYMMDD_HHMMSS folder of a finished sweep"
        ) from None
    try:
        baseline = load_baseline(folder, given=raw)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_STATE] = _State(baseline, folder, thresholds)


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        s = sweep_options(config).search
        objectives = s.objectives if s.explicit else ()
        state.result = compare(state.baseline, sweep.records, state.thresholds, str(state.folder), objectives)
        state.current = sweep.dir


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # trylast: after the controller's sessionfinish, which ends the sweep (pytest_sweep_finished)
    state = session.config.stash.get(_STATE, None)
    if state is None or state.result is None or not state.result.regressions():
        return
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.result is None:
        return
    tr = terminalreporter
    tr.write_sep("=", "sweep comparison")
    for line in render(state.result):
        tr.write_line(line, red=line.startswith(("REGRESSION ", "LOST ", "NOTHING IN COMMON")))
    if state.current is not None:
        from pytest_sweep.plugins.environment import compare_lines

        for line in compare_lines(state.folder, state.current):
            tr.write_line(line, yellow=True)
