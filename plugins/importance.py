"""Parameter importance: which swept parameters matter (the guide's "Fix Less Important Parameters").

For each swept parameter: per value, the passed trials, the mean, best, worst and standard
deviation of ``test_acc``; the parameter's main-effect share of the variance of ``test_acc``; the
parameters ranked by that share.  On a full grid (every combination passed, equally often) the
main effects of a functional ANOVA over the grid are exact: the share of parameter ``p`` is
``sum_v n_v (mean_v - mean)^2 / sum_i (y_i - mean)^2``, and what the shares leave is the
interactions' share.  On an incomplete grid (failed, skipped or not-run trials) the same formula
is computed on the trials that are there, and the section says so.

A parameter whose effect (best value mean minus worst value mean) is below the noise is reported
as unimportant, with the value to fix it at (its best mean).  The noise is the seed-replicate
spread (the pooled standard deviation over seeds) when ``CONFIG_SEED`` is swept, otherwise
``--sweep-importance-threshold`` (default 0.5 percentage points); the option, when given, wins.

Writes ``sweep_importance.json`` at the end of a sweep and adds its section to
``sweep_analysis.txt`` (also in interim summaries).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from tabulate import tabulate

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.records import SweepResult, ranked
from pytest_sweep.plugins.options import DEFAULT_IMPORTANCE_THRESHOLD
from pytest_sweep.plugins.replicates import (
    SEED_KEY,
    configurations,
    origin,
    pooled_sd,
    ranked_configurations,
    seed_swept,
)

IMPORTANCE_JSON = "sweep_importance.json"
SCHEMA_VERSION = 1
DEFAULT_THRESHOLD = DEFAULT_IMPORTANCE_THRESHOLD  # its option is defined in plugins/options.py
NOT_SET = "(not set)"
THIN = "-" * 40


@dataclass(frozen=True)
class ValueStats:
    """``test_acc`` of the passed trials with one value of a parameter [%]."""

    value: str
    passed: int
    mean: float | None
    best: float | None
    worst: float | None
    sd: float | None


@dataclass(frozen=True)
class Parameter:
    """One swept parameter: its values, main-effect share and verdict.

    :ivar share: main-effect share of the variance of ``test_acc`` (0..1); None: not computable.
    :ivar effect: best value mean minus worst value mean [pp]; None with fewer than two values passed.
    :ivar best_value: the value with the best mean (what to fix it at).
    :ivar important: effect at or above the noise; None: unknown (or the replicate seed).
    :ivar replicate: this is ``CONFIG_SEED``, swept for replicates (never fixed).
    :ivar tied: several values share the best mean (``best_value`` is the first of them).
    """

    name: str
    values: tuple[ValueStats, ...]
    share: float | None
    effect: float | None
    best_value: str | None
    important: bool | None
    replicate: bool = False
    tied: bool = False


@dataclass(frozen=True)
class Importance:
    """The importance of every swept parameter of a sweep (``sweep_importance.json``)."""

    metric: str
    passed: int
    combinations: int
    combinations_passed: int
    complete_grid: bool
    noise: float
    noise_source: str  # "seed" | "threshold" | "option"
    variance: float | None
    parameters: tuple[Parameter, ...]
    scope: str | None = None  # the origin the records came from when a sweep had several
    reason: str | None = None  # why shares could not be computed

    @property
    def interactions(self) -> float | None:
        """The share the main effects leave (exact on a full grid only)."""
        shares = [p.share for p in self.parameters]
        if not self.complete_grid or not shares or any(s is None for s in shares) or not self.variance:
            return None
        return max(0.0, 1.0 - sum(s for s in shares if s is not None))

    def to_json(self) -> dict[str, Any]:
        doc = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        doc["interactions"] = self.interactions
        return doc


def focus(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The records to analyse: all of them, or those of the best trial's origin when a run swept several files."""
    origins = list(dict.fromkeys(origin(r) for r in records))
    if len(origins) <= 1:
        return records, None
    top = ranked(records)
    keep = origin(top[0]) if top else origins[0]
    return [r for r in records if origin(r) == keep], keep


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def value_order(values: list[str]) -> list[str]:
    """Distinct values: numerically sorted when every one is a number, else in first-seen order."""
    distinct = list(dict.fromkeys(values))
    numbers = [_decimal(v) for v in distinct]
    if all(n is not None for n in numbers):
        return [v for _, v in sorted(zip(numbers, distinct, strict=True), key=lambda p: p[0])]  # type: ignore[arg-type,return-value]
    return distinct


def value_of(record: dict[str, Any], key: str) -> str:
    config = record.get("config") or {}
    return str(config[key]) if key in config else NOT_SET


def swept_keys(records: list[dict[str, Any]]) -> list[str]:
    """Keys swept in the records that really took two or more values (an override makes one)."""
    keys = sorted({k for r in records for k in (r.get("swept") or [])})
    return [k for k in keys if len({value_of(r, k) for r in records}) > 1]


def _passed(record: dict[str, Any]) -> bool:
    return record["status"] == "passed" and record.get("test_acc") is not None


def compute(records: list[dict[str, Any]], threshold: float | None = None) -> Importance:
    """The importance of each swept parameter; ``threshold`` is the user's noise option (None: not given)."""
    scoped, scope = focus(records)
    keys = swept_keys(scoped)
    done = [r for r in scoped if _passed(r)]
    ys = [float(r["test_acc"]) for r in done]
    grid = {k: value_order([value_of(r, k) for r in scoped]) for k in keys}
    combos = math.prod(len(v) for v in grid.values()) if keys else 1
    cells: dict[tuple[str, ...], int] = {}
    for r in done:
        cell = tuple(value_of(r, k) for k in keys)
        cells[cell] = cells.get(cell, 0) + 1
    complete = len(cells) == combos and len(set(cells.values())) <= 1 and bool(done)
    seed_sd = pooled_sd(configurations(scoped)) if seed_swept(scoped) else None
    if threshold is not None:
        noise, source = threshold, "option"
    elif seed_sd is not None:
        noise, source = seed_sd, "seed"
    else:
        noise, source = DEFAULT_THRESHOLD, "threshold"
    reason = None
    variance = None
    if not keys:
        reason = "nothing was swept"
    elif len(done) < 2:
        reason = f"importance needs at least two passed trials ({len(done)} passed)"
    else:
        mean = statistics.fmean(ys)
        variance = sum((y - mean) ** 2 for y in ys) / len(ys)
    params = [_parameter(k, grid[k], done, variance, noise) for k in keys]
    params.sort(key=lambda p: (-(p.share if p.share is not None else -1.0), p.name))
    return Importance(
        metric="test_acc",
        passed=len(done),
        combinations=combos,
        combinations_passed=len(cells),
        complete_grid=complete,
        noise=noise,
        noise_source=source,
        variance=variance,
        parameters=tuple(params),
        scope=scope,
        reason=reason,
    )


def _parameter(
    key: str, values: list[str], done: list[dict[str, Any]], variance: float | None, noise: float
) -> Parameter:
    by_value: dict[str, list[float]] = {v: [] for v in values}
    for r in done:
        by_value[value_of(r, key)].append(float(r["test_acc"]))
    stats = tuple(
        ValueStats(
            value=v,
            passed=len(accs),
            mean=statistics.fmean(accs) if accs else None,
            best=max(accs) if accs else None,
            worst=min(accs) if accs else None,
            sd=statistics.stdev(accs) if len(accs) >= 2 else None,
        )
        for v, accs in by_value.items()
    )
    means = [(s.mean, s.value) for s in stats if s.mean is not None]
    effect = max(m for m, _ in means) - min(m for m, _ in means) if len(means) >= 2 else None
    tops = [v for m, v in means if m == max(mm for mm, _ in means)]  # fmean is exact: equal data, equal means
    best_value = tops[0] if tops else None  # of equal means, the first value
    share = None
    if variance is not None:
        grand = statistics.fmean(float(r["test_acc"]) for r in done)
        between = sum(s.passed * (s.mean - grand) ** 2 for s in stats if s.mean is not None) / len(done)
        share = between / variance if variance > 0 else 0.0
    replicate = key == SEED_KEY
    important = None if replicate or effect is None or variance is None else effect >= noise
    return Parameter(key, stats, share, effect, best_value, important, replicate, tied=len(tops) > 1)


def best_configuration(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best trial (or, with replicates, the first trial of the best configuration) of the focus records."""
    scoped, _ = focus(records)
    if seed_swept(scoped):
        top = ranked_configurations(configurations(scoped))
        return top[0].first if top else None
    top_trials = ranked(scoped)
    return top_trials[0] if top_trials else None


# -- the analysis section ---------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _noise_line(imp: Importance) -> str:
    if imp.noise_source == "seed":
        return f"Noise: {imp.noise:.2f} pp (the seed noise: pooled standard deviation over seeds)"
    if imp.noise_source == "option":
        return f"Noise: {imp.noise:.2f} pp (--sweep-importance-threshold)"
    return (
        f"Noise: {imp.noise:.2f} pp (the default threshold; --sweep-importance-threshold sets it, "
        f"or sweep {SEED_KEY}=1|2|3 to measure the seed noise)"
    )


def render_section(imp: Importance) -> str:
    """The ``PARAMETER IMPORTANCE`` section of ``sweep_analysis.txt``."""
    out = ["PARAMETER IMPORTANCE (test accuracy):", THIN]
    if imp.scope:
        out.append(f"Trials of {imp.scope} only (the source of the best trial; the run had several).")
    if imp.reason == "nothing was swept":
        out.append("Nothing was swept: no parameter to rank.")
        return "\n".join(out) + "\n"
    if imp.complete_grid:
        out.append(
            f"Full grid: all {imp.combinations} combinations passed; the main-effect shares are exact "
            "(functional ANOVA)."
        )
    else:
        out.append(
            f"Incomplete grid: {imp.combinations_passed} of {imp.combinations} combinations passed; the shares are "
            f"computed on the {imp.passed} passed trials and are not an exact decomposition."
        )
    if imp.reason:
        out.append(f"No shares: {imp.reason}.")
    elif not imp.variance:
        out.append("Every passed trial has the same test accuracy: there is no variance to explain.")
    out.append(_noise_line(imp))
    for rank, p in enumerate(imp.parameters, 1):
        name = f"{p.name} (replicates)" if p.replicate else p.name
        share = "n/a" if p.share is None else f"{p.share * 100:.1f}%"
        span = "n/a" if p.effect is None else f"{p.effect:.2f} pp"
        out += ["", f"{rank}. {name}: {share} of the variance; value means span {span}"]
        rows = [
            [s.value, s.passed, _pct(s.mean), _pct(s.best), _pct(s.worst), "n/a" if s.sd is None else f"{s.sd:.2f}"]
            for s in p.values
        ]
        table = tabulate(
            rows, headers=["value", "passed", "mean", "best", "worst", "sd"], tablefmt="simple", disable_numparse=True
        )
        out += ["   " + line for line in table.splitlines()]
    rest = imp.interactions
    if rest is not None:
        out += ["", f"Interactions: {rest * 100:.1f}% of the variance (what the main effects leave)."]
    fix = [p for p in imp.parameters if p.important is False]
    out.append("")
    if fix:
        out.append(f"FIX THESE (effect below the noise of {imp.noise:.2f} pp):")
        for p in fix:
            best = "equal means: the first value" if p.tied else f"best mean at {p.best_value}"
            out.append(f"  {p.name}={p.best_value}  (value means span {p.effect:.2f} pp; {best})")
    elif imp.reason is None:
        out.append(f"FIX THESE: none (every swept parameter's effect reaches the noise of {imp.noise:.2f} pp).")
    return "\n".join(out) + "\n"


# -- the plugin ----------------------------------------------------------------------------------


def parse_threshold(text: str, flag: str = "--sweep-importance-threshold") -> float:
    """A non-negative finite number of percentage points; else a one-line ``pytest.UsageError``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise pytest.UsageError(f"{flag}={shown(text)}: use a number of percentage points, 0 or more (e.g. {flag}=0.5)")
    return value


def shown(text: str, limit: int = 40) -> str:
    """A user's value in an error line: escaped (no raw control characters) and at most ``limit`` long."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def threshold(config: pytest.Config) -> float | None:
    """The user's noise threshold (option, else ini), or None when neither is set."""
    opt = config.getoption("sweep_importance_threshold", None)
    if opt is not None:
        return parse_threshold(str(opt))
    try:
        raw = str(config.getini("sweep_importance_threshold")).strip()
    except ValueError:  # the option's plugin is not loaded
        return None
    return parse_threshold(raw, "ini value sweep_importance_threshold") if raw else None


def pytest_configure(config: pytest.Config) -> None:
    threshold(config)  # a bad value is a usage error before anything runs


def for_sweep(config: pytest.Config, sweep: SweepResult) -> Importance:
    """The sweep's importance with the user's threshold (cheap: other reporters compute it again)."""
    return compute(sweep.records, threshold(config))


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_json_atomic(sweep.dir / IMPORTANCE_JSON, for_sweep(config, sweep).to_json())


@pytest.hookimpl(tryfirst=True)
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    return render_section(for_sweep(config, sweep))
