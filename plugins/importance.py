"""Parameter importance: which swept parameters matter (the guide's "Fix Less Important Parameters").

For each swept parameter: per value, the passed trials, the mean, best, worst and standard
deviation of ``test_acc``; the parameter's main-effect share of the variance of ``test_acc``; the
parameters ranked by that share.  On a full grid (every combination passed, equally often) the
main effects of a functional ANOVA over the grid are exact: the share of parameter ``p`` is
``sum_v n_v (mean_v - mean)^2 / sum_i (y_i - mean)^2``, and what the shares leave is the
interactions' share.  On an incomplete grid (failed, skipped or not-run trials) the same formula
is computed on the trials that are there, and the section says so.

Whether a parameter's effect is real is judged against the sweep's one noise model
(:mod:`~pytest_sweep.plugins.noise`):

- seeds swept: an F-test of the parameter's main effect against the seed-to-seed variance
  (alpha 0.05, Holm's correction across the parameters); with ``--sweep-importance-threshold``
  an effect (best value mean minus worst) must also reach the threshold;
- no seeds swept: the effect must reach the resolution (one test image, or the threshold).

A parameter whose effect is below the noise is reported as such, with the value to fix it at (its
best mean), and no share: a share of a spread that is all noise means nothing.  When no two
configurations differ beyond the noise, the section says so instead of ranking.

Writes ``sweep_importance.json`` at the end of a sweep and adds its section to
``sweep_analysis.txt`` (also in interim summaries).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any

import pytest
from tabulate import tabulate

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import printable
from pytest_sweep.matrix.files import IMPORTANCE_JSON
from pytest_sweep.matrix.records import SweepResult, ranked
from pytest_sweep.matrix.symbols import finite_decimal
from pytest_sweep.plugins import stats
from pytest_sweep.plugins.noise import DEFAULT_THRESHOLD, Noise, configurations_differ, focus, model
from pytest_sweep.plugins.options import importance_threshold
from pytest_sweep.plugins.options import parse_threshold as parse_threshold  # the CLI's --importance-threshold
from pytest_sweep.plugins.replicates import (
    SEED_KEY,
    configurations,
    ranked_configurations,
    seed_swept,
)

SCHEMA_VERSION = 2
__all__ = ["DEFAULT_THRESHOLD", "IMPORTANCE_JSON", "Importance", "Parameter", "compute", "focus"]
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
    :ivar important: the effect is beyond the noise; False: below it; None: unknown (or the
        replicate seed).
    :ivar replicate: this is ``CONFIG_SEED``, swept for replicates (never fixed).
    :ivar tied: several values share the best mean (``best_value`` is the first of them).
    :ivar p: seeds swept: the F-test's p-value of the main effect; ``p_holm`` after Holm.
    """

    name: str
    values: tuple[ValueStats, ...]
    share: float | None
    effect: float | None
    best_value: str | None
    important: bool | None
    replicate: bool = False
    tied: bool = False
    p: float | None = None
    p_holm: float | None = None

    @property
    def below_noise(self) -> bool:
        return self.important is False


@dataclass(frozen=True)
class Importance:
    """The importance of every swept parameter of a sweep (``sweep_importance.json``)."""

    metric: str
    passed: int
    combinations: int
    combinations_passed: int
    complete_grid: bool
    noise: float  # the noise as one number [pp]: the seed spread, or the resolution
    noise_source: str  # "seed" | "resolution"
    variance: float | None
    parameters: tuple[Parameter, ...]
    scope: str | None = None  # the origin the records came from when a sweep had several
    reason: str | None = None  # why shares could not be computed
    model: Noise | None = None
    #: whether any two configurations differ beyond the noise (False: the whole spread is noise)
    beyond_noise: bool = True
    p_configurations: float | None = None  # seeds: the F-test of the configurations' means

    @property
    def interactions(self) -> float | None:
        """The share the main effects leave (exact on a full grid only)."""
        shares = [p.share for p in self.parameters]
        if not self.complete_grid or not shares or any(s is None for s in shares) or not self.variance:
            return None
        return max(0.0, 1.0 - sum(s for s in shares if s is not None))

    def to_json(self) -> dict[str, Any]:
        doc = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        doc["model"] = self.model.to_json() if self.model is not None else None
        doc["interactions"] = self.interactions
        for param in doc["parameters"]:
            param["below_noise"] = param["important"] is False
        return doc


def value_order(values: list[str]) -> list[str]:
    """Distinct values: numerically sorted when every one is a number, else in first-seen order."""
    distinct = list(dict.fromkeys(values))
    numbers = [finite_decimal(v) for v in distinct]
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
    noise = model(scoped, threshold)
    reason = None
    variance = None
    if not keys:
        reason = "nothing was swept"
    elif len(done) < 2:
        reason = f"importance needs at least two passed trials ({len(done)} passed)"
    else:
        mean = statistics.fmean(ys)
        variance = sum((y - mean) ** 2 for y in ys) / len(ys)
    beyond, p_configs = configurations_differ(scoped, noise) if reason is None else (True, None)
    within = _within(scoped, noise)
    params = [_parameter(k, grid[k], done, variance, noise, within, beyond) for k in keys]
    params = _holm(params, noise, threshold)
    params.sort(key=lambda p: (-(p.share if p.share is not None else -1.0), p.name))
    return Importance(
        metric="test_acc",
        passed=len(done),
        combinations=combos,
        combinations_passed=len(cells),
        complete_grid=complete,
        noise=noise.value,
        noise_source="seed" if noise.kind == "seeds" else "resolution",
        variance=variance,
        parameters=tuple(params),
        scope=scope,
        reason=reason,
        model=noise,
        beyond_noise=beyond,
        p_configurations=p_configs,
    )


def _within(records: list[dict[str, Any]], noise: Noise) -> tuple[float, int]:
    """The seed-to-seed sum of squares within configurations and its degrees of freedom (seeds only)."""
    if noise.kind != "seeds":
        return 0.0, 0
    ss, df = 0.0, 0
    for c in configurations(records):
        accs = [float(r["test_acc"]) for r in c.passed]
        if len(accs) >= 2:
            m = statistics.fmean(accs)
            ss += sum((a - m) ** 2 for a in accs)
            df += len(accs) - 1
    return max(ss, noise.floor**2 / 2 * df), df


def _holm(params: list[Parameter], noise: Noise, threshold: float | None) -> list[Parameter]:
    """Seeds: Holm's correction across the parameters' F-tests decides which effects are real."""
    if noise.kind != "seeds":
        return params
    tested = [i for i, p in enumerate(params) if p.p is not None and not p.replicate]
    adjusted = stats.holm([params[i].p for i in tested])  # type: ignore[misc]
    out = list(params)
    for i, p_holm in zip(tested, adjusted, strict=True):
        p = params[i]
        real = p_holm < stats.ALPHA and (threshold is None or (p.effect or 0.0) >= threshold)
        important = real if p.important is not False else False  # the whole spread may be noise
        out[i] = replace(p, p_holm=p_holm, important=important)
    return out


def _parameter(
    key: str,
    values: list[str],
    done: list[dict[str, Any]],
    variance: float | None,
    noise: Noise,
    within: tuple[float, int],
    beyond: bool,
) -> Parameter:
    by_value: dict[str, list[float]] = {v: [] for v in values}
    for r in done:
        by_value[value_of(r, key)].append(float(r["test_acc"]))
    per_value = tuple(
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
    means = [(s.mean, s.value) for s in per_value if s.mean is not None]
    effect = max(m for m, _ in means) - min(m for m, _ in means) if len(means) >= 2 else None
    tops = [v for m, v in means if m == max(mm for mm, _ in means)]  # fmean is exact: equal data, equal means
    best_value = tops[0] if tops else None  # of equal means, the first value
    share = None
    p_value = None
    replicate = key == SEED_KEY
    if variance is not None:
        grand = statistics.fmean(float(r["test_acc"]) for r in done)
        between_ss = sum(s.passed * (s.mean - grand) ** 2 for s in per_value if s.mean is not None)
        share = between_ss / len(done) / variance if variance > 0 else 0.0
        if noise.kind == "seeds" and not replicate:
            p_value = stats.f_test(between_ss, len(means) - 1, within[0], within[1])
    important: bool | None = None
    if not replicate and effect is not None and variance is not None:
        if not beyond:
            important = False  # no two configurations differ beyond the noise
        elif noise.kind == "seeds":
            important = None if p_value is None else True  # decided with the others (Holm)
        else:
            important = effect >= noise.resolution - 1e-9
    return Parameter(key, per_value, share, effect, best_value, important, replicate, len(tops) > 1, p_value)


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


def verdict(imp: Importance, p: Parameter) -> str:
    """A parameter's verdict in words: beyond the noise, below it, or unknown (and why)."""
    if p.replicate:
        return "the replicate seeds"
    noise = imp.model
    if p.important is None:
        return "importance unknown" + (f" ({imp.reason})" if imp.reason else " (fewer than two of its values passed)")
    if noise is not None and noise.kind == "seeds":
        test = f"F-test p {stats.p_is(p.p)}, Holm p {stats.p_is(p.p_holm)}" if p.p is not None else "no F-test"
        if p.important:
            return f"beyond the seed noise ({test})"
        if not imp.beyond_noise:
            return f"below the noise (no two configurations differ beyond the seed noise; {test})"
        if p.p_holm is not None and p.p_holm < stats.ALPHA and noise.threshold_given:
            return f"below the threshold of {noise.threshold:.2f} pp ({test})"
        return f"below the seed noise ({test})"
    width = noise.resolution if noise is not None else imp.noise
    if p.important:
        return f"beyond the noise (the resolution of {width:.2f} pp)"
    return f"below the noise (the resolution of {width:.2f} pp)"


def _whole_spread(imp: Importance) -> str:
    noise = imp.model
    if noise is not None and noise.kind == "seeds":
        return (
            f"Below the noise: no two configurations differ beyond the seed noise (F-test of the configurations' "
            f"means p {stats.p_is(imp.p_configurations)}); no parameter can be ranked, every one is below the noise."
        )
    width = noise.resolution if noise is not None else imp.noise
    return (
        f"Below the noise: the configurations' means all lie within the resolution of {width:.2f} pp; no "
        "parameter can be ranked, every one is below the noise."
    )


def render_section(imp: Importance) -> str:
    """The ``PARAMETER IMPORTANCE`` section of ``sweep_analysis.txt``."""
    out = ["PARAMETER IMPORTANCE (test accuracy):", THIN]
    if imp.scope:
        out.append(f"Trials of {printable(imp.scope)} only (the source of the best trial; the run had several).")
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
    if imp.model is not None:
        out.append(imp.model.describe())
    if imp.reason is None and not imp.beyond_noise:
        out.append(_whole_spread(imp))
    for rank, p in enumerate(imp.parameters, 1):
        name = printable(f"{p.name} (replicates)" if p.replicate else p.name)
        span = "n/a" if p.effect is None else f"{p.effect:.2f} pp"
        if p.important is False or p.share is None:
            head = f"{rank}. {name}: value means span {span}; {verdict(imp, p)}"
        else:
            head = f"{rank}. {name}: {p.share * 100:.1f}% of the variance; value means span {span}; {verdict(imp, p)}"
        out += ["", head]
        rows = [
            [
                printable(s.value),
                s.passed,
                _pct(s.mean),
                _pct(s.best),
                _pct(s.worst),
                "n/a" if s.sd is None else f"{s.sd:.2f}",
            ]
            for s in p.values
        ]
        table = tabulate(
            rows, headers=["value", "passed", "mean", "best", "worst", "sd"], tablefmt="simple", disable_numparse=True
        )
        out += ["   " + line for line in table.splitlines()]
    rest = imp.interactions
    if rest is not None and imp.beyond_noise:
        out += ["", f"Interactions: {rest * 100:.1f}% of the variance (what the main effects leave)."]
    fix = [p for p in imp.parameters if p.important is False]
    out.append("")
    if fix:
        out.append("FIX THESE (effect below the noise):")
        for p in fix:
            best = "equal means: the first value" if p.tied else f"best mean at {printable(str(p.best_value))}"
            out.append(
                f"  {printable(p.name)}={printable(str(p.best_value))}  (value means span {p.effect:.2f} pp; {best})"
            )
    elif imp.reason is None:
        out.append("FIX THESE: none (every swept parameter's effect is beyond the noise).")
    return "\n".join(out) + "\n"


# -- the plugin ----------------------------------------------------------------------------------


def threshold(config: pytest.Config) -> float | None:
    """The user's noise threshold (option, else ini; resolved once), or None when neither is set."""
    return importance_threshold(config)


def pytest_configure(config: pytest.Config) -> None:
    threshold(config)  # a bad value is a usage error before anything runs


def for_sweep(config: pytest.Config, sweep: SweepResult) -> Importance:
    """The sweep's importance with the user's threshold (cheap: other reporters compute it again)."""
    return compute(sweep.records, threshold(config))


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_json_atomic(storage.sweep_path(sweep.dir, IMPORTANCE_JSON), for_sweep(config, sweep).to_json())


@pytest.hookimpl(tryfirst=True)
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    return render_section(for_sweep(config, sweep))
