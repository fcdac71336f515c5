"""Compare a sweep with a baseline sweep, and fail CI on a regression.

``pytest --range-config=FILE --sweep-compare=BASELINE_DIR`` prints, after the run, the trials
present in both sweeps (the same config name and the identical config) with their test accuracy
then and now and the change.  ``--sweep-compare-fail=test_acc:1.0`` makes the run exit non-zero
(pytest's "tests failed", 1) when any of them lost more than 1.0 percentage points, or passed in
the baseline and failed now, and names each (pytest-benchmark's ``--benchmark-compare-fail``
habit).  A baseline folder without a readable ``sweep_summary.json`` and a threshold that does not
parse are usage errors before anything trains.  ``pytest-sweep compare A B`` does the same
without training.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tabulate import tabulate

from pytest_sweep.matrix.records import SweepResult, load_summary
from pytest_sweep.plugins.analysis import labeller
from pytest_sweep.plugins.importance import shown

#: Metrics a threshold may name: percentages, so a drop is in percentage points.
METRICS = ("test_acc", "best_acc")
SUMMARY_JSON = "sweep_summary.json"


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
    example = f"use METRIC:POINTS with METRIC one of {', '.join(METRICS)}, e.g. {flag}=test_acc:1.0"
    if not sep or metric not in METRICS:
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
    why = None
    if not folder.is_dir():
        why = "no such folder"
    else:
        try:
            return load_summary(path)
        except FileNotFoundError:
            why = f"no {SUMMARY_JSON} in it"
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            why = f"{SUMMARY_JSON} is not readable ({type(exc).__name__})"
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

    def drop(self, metric: str) -> float | None:
        a, b = self.then.get(metric), self.now.get(metric)
        return None if a is None or b is None else a - b


@dataclass
class Comparison:
    baseline: str
    rows: list[Row]
    only_now: int
    only_then: int
    thresholds: list[Threshold] = field(default_factory=list)

    def regressions(self) -> list[tuple[Row, Threshold, str]]:
        """Every row that breaks a threshold, with the reason in words."""
        found = []
        for row in self.rows:
            for t in self.thresholds:
                drop = row.drop(t.metric)
                if drop is not None and drop > t.points:
                    then, now = row.then[t.metric], row.now[t.metric]
                    found.append(
                        (row, t, f"{t.metric} {then:.2f}% -> {now:.2f}% (-{drop:.2f} pp, more than {t.points:g})")
                    )
                elif row.status_then == "passed" and row.status_now == "failed":
                    found.append((row, t, "passed in the baseline, failed now"))
                    break
        return found


def _key(record: dict[str, Any]) -> tuple[str, str]:
    return str(record["config_file"]), json.dumps(record.get("config") or {}, sort_keys=True)


def _metrics(record: dict[str, Any]) -> dict[str, float | None]:
    ok = record["status"] == "passed"
    return {m: float(record[m]) if ok and record.get(m) is not None else None for m in METRICS}


def compare(
    baseline: list[dict[str, Any]], current: list[dict[str, Any]], thresholds: list[Threshold], name: str = ""
) -> Comparison:
    then: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in baseline:
        then.setdefault(_key(rec), rec)
    label = labeller(current)
    rows = []
    matched = set()
    for rec in current:
        old = then.get(_key(rec))
        if old is None or _key(rec) in matched:
            continue
        matched.add(_key(rec))
        rows.append(Row(label(rec), old["status"], rec["status"], _metrics(old), _metrics(rec)))
    return Comparison(name, rows, len(current) - len(rows), len(then) - len(matched), list(thresholds))


def render(comp: Comparison) -> list[str]:
    """The comparison as terminal lines: the table, then one line per regression."""
    lines = [
        f"baseline: {comp.baseline}; {len(comp.rows)} configuration{'s' if len(comp.rows) != 1 else ''} in both "
        f"(same config name and config); only now: {comp.only_now}; only in the baseline: {comp.only_then}"
    ]
    metrics = list(dict.fromkeys(["test_acc", *(t.metric for t in comp.thresholds)]))
    rows = []
    for row in comp.rows:
        cells: list[str] = [row.label]
        for m in metrics:
            a, b = row.then[m], row.now[m]
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
        found = comp.regressions()
        limits = ", ".join(map(str, comp.thresholds))
        if found:
            lines.append(f"regressions ({limits}): {len(found)}")
            lines += [f"REGRESSION {row.label}: {why}" for row, _, why in found]
        else:
            lines.append(f"no regression ({limits})")
    return lines


# -- the plugin ----------------------------------------------------------------------------------


@dataclass
class _State:
    baseline: list[dict[str, Any]]
    folder: Path
    thresholds: list[Threshold]
    result: Comparison | None = None


_STATE = pytest.StashKey[_State]()


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # only the controller compares
    opt = config.getoption("sweep_compare", None)
    raw = opt if opt is not None else str(config.getini("sweep_compare")).strip()
    fails = list(config.getoption("sweep_compare_fail", None) or []) or list(config.getini("sweep_compare_fail"))
    try:
        thresholds = [parse_threshold(text) for text in fails]
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not raw:
        if thresholds:
            raise pytest.UsageError(
                "--sweep-compare-fail needs a baseline: add --sweep-compare=BASELINE_DIR (a finished sweep folder)"
            )
        return
    base = config.invocation_params.dir if opt is not None else config.rootpath
    folder = (base / Path(raw).expanduser()).resolve()
    try:
        baseline = load_baseline(folder, given=raw)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_STATE] = _State(baseline, folder, thresholds)


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.result = compare(state.baseline, sweep.records, state.thresholds, str(state.folder))


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
        tr.write_line(line, red=line.startswith("REGRESSION "))
