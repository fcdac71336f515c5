"""Plots of a finished sweep: PNG files in the sweep folder's ``plots/`` (matplotlib, Agg).

- ``test_acc_vs_<parameter>.png`` per swept parameter: one point per passed trial, the per-value
  mean as a line, failed trials (red x) and skipped or not-run trials (grey triangles) along the
  bottom; the noise drawn with it: with seeds swept, each mean's 95% interval from the seed
  spread as error bars; without, the band within the resolution of the best mean;
- ``learning_curves.png``: test accuracy per epoch of the top 5 and the worst passed trials
  (dashed; with seeds swept, each configuration's mean over its seeds with its range shaded), and
  of failed trials that trained for an epoch or more (dotted red); identical curves are drawn
  once, with every name in the legend entry;
- ``test_acc_vs_sparsity.png``: test accuracy against final sparsity;
- ``parallel_coordinates.png``: every trial (with seeds swept: every configuration's mean) across
  the swept parameters and its accuracy, coloured by accuracy; failed and skipped trials grey and
  dashed.

No plot stretches a spread below the noise over its whole axis: the accuracy axis spans at least
four times the noise (the resolution, or two seed standard deviations).

Written once, at the end of the sweep (never in interim summaries).  matplotlib is imported only
here, when the plots are drawn.  A plot that cannot be drawn (fewer than two passed trials,
nothing swept, no history) is left out with one line in the analysis, never an error.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.files import PLOTS_DIR, TRAINING_METRICS
from pytest_sweep.matrix.records import SweepResult, ranked
from pytest_sweep.matrix.trial import short_key
from pytest_sweep.plugins import stats
from pytest_sweep.plugins.analysis import labeller
from pytest_sweep.plugins.importance import focus, swept_keys, threshold, value_of, value_order
from pytest_sweep.plugins.noise import Noise, model
from pytest_sweep.plugins.replicates import SEED_KEY, configurations, ranked_configurations, seed_swept

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
HEIGHT = 4.8
THIN = "-" * 40
TOP_CURVES = 5


@dataclass(frozen=True)
class PlotSpec:
    """One plot of the sweep: its file name, what it shows, and why it is left out (None: drawn)."""

    name: str
    kind: str  # "param" | "curves" | "sparsity" | "parallel"
    key: str | None = None
    reason: str | None = None
    width_in: float = 6.4

    @property
    def size_px(self) -> tuple[int, int]:
        return round(self.width_in * DPI), round(HEIGHT * DPI)


def _passed(record: dict[str, Any]) -> bool:
    return record["status"] == "passed" and record.get("test_acc") is not None


def history(sweep_dir: Path, record: dict[str, Any]) -> list[float]:
    """The test accuracy per epoch of a trial (its ``training_metrics.json``); empty when there is none."""
    folder = record.get("trial_dir")
    if not folder:
        return []
    try:
        # the record names the folder: read it only inside the sweep folder (never ../../x or /etc)
        path = storage.sweep_path(sweep_dir, folder, TRAINING_METRICS)
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    epochs = doc.get("epochs") if isinstance(doc, dict) else None
    accs = [e.get("test_acc") for e in epochs or [] if isinstance(e, dict)]
    return [float(a) for a in accs if isinstance(a, int | float) and math.isfinite(a)]


def curve_trials(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The top 5 passed trials and the worst one (None when it is among the top)."""
    top = ranked(records)
    worst = top[-1] if len(top) > TOP_CURVES else None
    return top[:TOP_CURVES], worst


def plan(records: list[dict[str, Any]], sweep_dir: Path) -> list[PlotSpec]:
    """Every plot of the sweep, each with the reason it is left out (or None)."""
    scoped, _ = focus(records)
    keys = swept_keys(scoped)
    passed = [r for r in scoped if _passed(r)]
    few = f"fewer than two passed trials ({len(passed)})" if len(passed) < 2 else None
    # the replicate seed gets no plot of its own: its spread is the error bars of the others
    specs = [
        PlotSpec(f"test_acc_vs_{short_key(k).lower()}.png", "param", key=k, reason=few) for k in keys if k != SEED_KEY
    ]
    top, worst = curve_trials(scoped)
    chosen = [*top, *([worst] if worst else [])]
    curves_reason = few or (None if any(history(sweep_dir, r) for r in chosen) else "no per-epoch history found")
    specs.append(PlotSpec("learning_curves.png", "curves", reason=curves_reason))
    with_sparsity = [r for r in passed if r.get("final_sparsity") is not None]
    sparsity_reason = None
    if len(with_sparsity) < 2:
        sparsity_reason = few or f"fewer than two passed trials with a final sparsity ({len(with_sparsity)})"
    specs.append(PlotSpec("test_acc_vs_sparsity.png", "sparsity", reason=sparsity_reason))
    axes = [k for k in keys if k != SEED_KEY]
    parallel_reason = (
        "nothing but the seed was swept" if keys and not axes else ("nothing was swept" if not keys else few)
    )
    specs.append(
        PlotSpec("parallel_coordinates.png", "parallel", reason=parallel_reason, width_in=parallel_width(len(axes)))
    )
    return specs


# -- the figures (built, not saved: tests inspect their data) -------------------------------------


def _new_figure(spec: PlotSpec) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(spec.width_in, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _positions(values: list[str]) -> tuple[dict[str, float], bool, bool]:
    """The x position per value; whether numeric; whether a log axis suits it."""
    try:
        numbers = {v: float(v) for v in values}
    except ValueError:
        return {v: float(i) for i, v in enumerate(values)}, False, False
    if any(not math.isfinite(x) for x in numbers.values()):
        return {v: float(i) for i, v in enumerate(values)}, False, False
    low, high = min(numbers.values()), max(numbers.values())
    return numbers, True, low > 0 and high / low >= 100


def noise_width(noise: Noise) -> float:
    """The spread the noise alone makes [pp]: the resolution, or two seed standard deviations."""
    if noise.kind == "seeds" and noise.seed_sd is not None:
        return 2 * noise.seed_sd
    return noise.resolution


def y_limits(values: list[float], noise: Noise, room_below: bool = False) -> tuple[float, float]:
    """Accuracy axis limits: the data with a margin, and at least four times the noise, so a spread
    below the noise fills at most a quarter of the axis.  ``room_below``: space for markers under the data."""
    low, high = (min(values), max(values)) if values else (0.0, 100.0)
    span = max(high - low, 4 * noise_width(noise), 1e-6)
    centre = (low + high) / 2
    margin = 0.08 * span
    bottom, top = centre - span / 2 - margin, centre + span / 2 + margin
    if room_below:
        bottom -= 0.1 * span
    return bottom, top


def param_figure(records: list[dict[str, Any]], key: str, noise: Noise | None = None) -> Figure:
    noise = noise or model(records)
    spec = PlotSpec(f"test_acc_vs_{short_key(key).lower()}.png", "param", key=key)
    fig = _new_figure(spec)
    ax = fig.add_subplot()
    values = value_order([value_of(r, key) for r in records])
    pos, numeric, log = _positions(values)
    passed = [r for r in records if _passed(r)]
    accs_all = [float(r["test_acc"]) for r in passed]
    ax.scatter(
        [pos[value_of(r, key)] for r in passed],
        accs_all,
        color="tab:blue",
        alpha=0.45,
        label="passed trials",
        zorder=2,
    )
    means = []
    for v in values:
        accs = [float(r["test_acc"]) for r in passed if value_of(r, key) == v]
        if accs:
            means.append((pos[v], sum(accs) / len(accs), len(accs)))
    xs, ms = [x for x, _, _ in means], [m for _, m, _ in means]
    extent = list(accs_all)
    if noise.kind == "seeds" and noise.seed_sd is not None:
        errs = [stats.t_half_width(noise.seed_sd, n) or 0.0 for _, _, n in means]
        ax.errorbar(xs, ms, yerr=errs, fmt="-o", color="tab:orange", capsize=4, zorder=3,
                    label=f"mean per value, 95% interval (seed sd {noise.seed_sd:.2f} pp)")  # fmt: skip
        extent += [m - e for m, e in zip(ms, errs, strict=True)] + [m + e for m, e in zip(ms, errs, strict=True)]
    else:
        ax.plot(xs, ms, "-o", color="tab:orange", label="mean per value", zorder=3)
        if ms:
            top = max(ms)
            ax.axhspan(top - noise.resolution, top, color="tab:green", alpha=0.15, zorder=1,
                       label=f"within the resolution ({noise.resolution:.2f} pp) of the best mean")  # fmt: skip
            extent.append(top - noise.resolution)
    others = [r for r in records if r["status"] in ("failed", "skipped", "not_run")]
    bottom_limit, top_limit = y_limits(extent, noise, room_below=bool(others))
    ax.set_ylim(bottom_limit, top_limit)
    bottom = bottom_limit + 0.04 * (top_limit - bottom_limit)
    for statuses, marker, color, label in (
        (("failed",), "x", "tab:red", "failed (no accuracy)"),
        (("skipped", "not_run"), "v", "tab:gray", "skipped / not run"),
    ):
        others = [r for r in records if r["status"] in statuses]
        if others:
            ax.scatter(
                [pos[value_of(r, key)] for r in others], [bottom] * len(others), marker=marker, color=color, label=label
            )
    if log:
        ax.set_xscale("log")
    if not numeric or (not log and len(pos) <= 10):  # the swept values themselves, not 0.525, 0.55, ...
        ax.set_xticks(list(pos.values()), list(pos))
    ax.set_xlabel(short_key(key))
    ax.set_ylabel("test accuracy [%]")
    ax.set_title(f"test accuracy vs {short_key(key)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _curves(records: list[dict[str, Any]], sweep_dir: Path) -> list[tuple[str, list[float], list[float] | None, str]]:
    """The curves to draw: (legend label, accuracies per epoch, the seeds' range or None, style).

    With seeds swept: the top 5 configurations and the worst, each the mean over its seeds with
    the range of its seeds; without, the top 5 trials and the worst.  Identical curves are merged
    into one, named by all of them.
    """
    label = labeller(records)
    out: list[tuple[str, list[float], list[float] | None, str]] = []
    if seed_swept(records):
        ranked = ranked_configurations(configurations(records, label))
        chosen = ranked[:TOP_CURVES] + (ranked[-1:] if len(ranked) > TOP_CURVES else [])
        for i, c in enumerate(chosen):
            histories = [h for h in (history(sweep_dir, r) for r in c.passed) if h]
            if not histories:
                continue
            n = min(len(h) for h in histories)
            mean = [sum(h[e] for h in histories) / len(histories) for e in range(n)]
            spread = [max(h[e] for h in histories) - min(h[e] for h in histories) for e in range(n)]
            name = f"{c.label} (mean of {len(histories)} seeds, {c.mean:.2f}%)"
            out.append((name, mean, spread if len(histories) > 1 else None, "--" if i >= TOP_CURVES else "-"))
        return out
    top, worst = curve_trials(records)
    merged: dict[tuple[float, ...], list[str]] = {}
    styles: dict[tuple[float, ...], str] = {}
    for rec, style in [*((r, "-") for r in top), *([(worst, "--")] if worst else [])]:
        accs = history(sweep_dir, rec)
        if accs:
            key = tuple(accs)
            merged.setdefault(key, []).append(f"{label(rec)} ({float(rec['test_acc']):.2f}%)")
            styles.setdefault(key, style)
    for key, names in merged.items():
        name = names[0] if len(names) == 1 else " = ".join(names) + " (identical)"
        out.append((name, list(key), None, styles[key]))
    return out


MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def curves_figure(records: list[dict[str, Any]], sweep_dir: Path) -> Figure:
    fig = _new_figure(PlotSpec("learning_curves.png", "curves"))
    ax = fig.add_subplot()
    label = labeller(records)
    curves = _curves(records, sweep_dir)
    for i, (name, accs, spread, style) in enumerate(curves):
        epochs = range(1, len(accs) + 1)
        # each later curve over the earlier ones with smaller markers: equal curves still both show
        (line,) = ax.plot(epochs, accs, style, marker=MARKERS[i % len(MARKERS)], markersize=8 - min(i, 5),
                          linewidth=2.2 - 0.25 * min(i, 5), alpha=0.85, label=name, zorder=3 + i)  # fmt: skip
        if spread is not None:
            half = [s / 2 for s in spread]
            ax.fill_between(epochs, [a - h for a, h in zip(accs, half, strict=True)],
                            [a + h for a, h in zip(accs, half, strict=True)], color=line.get_color(), alpha=0.15)  # fmt: skip
    failed = [r for r in records if r["status"] == "failed"][:TOP_CURVES]
    for rec in failed:
        accs = history(sweep_dir, rec)
        if accs:
            ax.plot(range(1, len(accs) + 1), accs, ":", color="tab:red", label=f"{label(rec)} (failed)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy [%]")
    what = " (mean over seeds, range shaded)" if seed_swept(records) else ""
    ax.set_title(f"learning curves: the best and the worst (dashed){what}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return fig


def sparsity_figure(records: list[dict[str, Any]], noise: Noise | None = None) -> Figure:
    noise = noise or model(records)
    fig = _new_figure(PlotSpec("test_acc_vs_sparsity.png", "sparsity"))
    ax = fig.add_subplot()
    done = [r for r in records if _passed(r) and r.get("final_sparsity") is not None]
    accs = [float(r["test_acc"]) for r in done]
    ax.scatter([float(r["final_sparsity"]) * 100 for r in done], accs, color="tab:blue", alpha=0.6)
    ax.set_ylim(*y_limits(accs, noise))
    ax.grid(alpha=0.3)
    ax.set_xlabel("final sparsity [%]")
    ax.set_ylabel("test accuracy [%]")
    ax.set_title("test accuracy vs final sparsity")
    return fig


def parallel_figure(records: list[dict[str, Any]], noise: Noise | None = None) -> Figure:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    noise = noise or model(records)
    keys = [k for k in swept_keys(records) if k != SEED_KEY]
    spec = PlotSpec("parallel_coordinates.png", "parallel", width_in=parallel_width(len(keys)))
    fig = _new_figure(spec)
    ax = fig.add_subplot()
    scales = []
    for k in keys:
        values = value_order([value_of(r, k) for r in records])
        pos, _, log = _positions(values)
        xs = {v: math.log10(x) if log else x for v, x in pos.items()}
        low, high = min(xs.values()), max(xs.values())
        scales.append({v: (x - low) / (high - low) if high > low else 0.5 for v, x in xs.items()})
    if seed_swept(records):  # one line per configuration: its mean over seeds
        rows = [(c.first, c.mean) for c in configurations(records) if c.n]
        rows += [(c.first, None) for c in configurations(records) if not c.n]
    else:
        rows = [(r, float(r["test_acc"]) if _passed(r) else None) for r in records]
    accs = [a for _, a in rows if a is not None]
    low_acc, high_acc = min(accs), max(accs)
    if high_acc - low_acc < noise_width(noise):  # a spread below the noise gets no colour range of its own
        centre = (high_acc + low_acc) / 2
        low_acc, high_acc = centre - noise_width(noise) / 2, centre + noise_width(noise) / 2
    norm = Normalize(low_acc, high_acc if high_acc > low_acc else low_acc + 1)
    cmap = colormaps["viridis"]
    n = len(keys)
    for rec, acc in sorted(rows, key=lambda row: -1e9 if row[1] is None else row[1]):  # the best drawn last, on top
        ys = [scale[value_of(rec, k)] for k, scale in zip(keys, scales, strict=True)]
        if acc is not None:
            ax.plot(range(n + 1), [*ys, float(norm(acc))], color=cmap(norm(acc)), alpha=0.85, linewidth=2)
        else:
            ax.plot(range(n), ys, "--", color="tab:gray", alpha=0.6, linewidth=1.5)
    ax.vlines(range(n + 1), 0, 1, colors="black", linewidth=0.8)
    for i, scale in enumerate(scales):
        for v, y in scale.items():
            ax.annotate(v, (i, y), xytext=(5, 0), textcoords="offset points", fontsize=9, va="center",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip
    for y, acc in ((0.0, norm.vmin), (1.0, norm.vmax)):  # the accuracy axis' own scale
        ax.annotate(f"{acc:.2f}%", (n, y), xytext=(5, 0), textcoords="offset points", fontsize=9, va="center",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip
    ax.set_xticks(range(n + 1), [short_key(k) for k in keys] + ["test_acc"], fontsize=10)
    ax.set_yticks([])
    ax.set_xlim(-0.15, n + 0.5)
    ax.set_ylim(-0.05, 1.05)
    what = "every configuration (mean over seeds)" if seed_swept(records) else "every trial"
    ax.set_title(f"{what}; grey dashed: failed, skipped or not run", fontsize="medium")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="test accuracy [%]")
    return fig


def parallel_width(axes: int) -> float:
    """Inches for ``axes`` parameter axes plus the accuracy axis (readable at the report's width)."""
    return max(6.4, 2.2 * (axes + 1) + 1.5)


def build(
    spec: PlotSpec, records: list[dict[str, Any]], sweep_dir: Path, noise_threshold: float | None = None
) -> Figure:
    """The figure of ``spec`` (records of the analysed source)."""
    scoped, _ = focus(records)
    noise = model(scoped, noise_threshold)
    if spec.kind == "param":
        assert spec.key is not None
        return param_figure(scoped, spec.key, noise)
    if spec.kind == "curves":
        return curves_figure(scoped, sweep_dir)
    if spec.kind == "sparsity":
        return sparsity_figure(scoped, noise)
    return parallel_figure(scoped, noise)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(sweep_dir: Path, records: list[dict[str, Any]], noise_threshold: float | None = None) -> list[PlotSpec]:
    """Draw every plot that can be drawn into ``sweep_dir/plots``; the outcome of each (reason: left out).

    A plot that cannot be drawn is left out with the reason; a plot that cannot be written (a
    full disk, a read-only folder, a symbolic link in its place) raises the ``OSError`` once every
    other plot is written, so the write failure is reported, never taken for a drawing problem.

    :param noise_threshold: ``--sweep-importance-threshold`` (None: not given), for the noise band.
    """
    out = []
    folder = storage.sweep_path(sweep_dir, PLOTS_DIR)  # never through a link to elsewhere
    failed: OSError | None = None
    for spec in plan(records, sweep_dir):
        if spec.reason is None:
            try:
                fig = build(spec, records, sweep_dir, noise_threshold)
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=DPI)
            except Exception as exc:  # a plot must never fail the sweep
                spec = PlotSpec(spec.name, spec.kind, spec.key, f"could not be drawn: {type(exc).__name__}: {exc}")
            else:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    _write_bytes_atomic(storage.sweep_path(sweep_dir, PLOTS_DIR, spec.name), buf.getvalue())
                except OSError as exc:
                    failed = failed or exc
                    spec = PlotSpec(spec.name, spec.kind, spec.key, f"not written: {exc.strerror or exc}")
        out.append(spec)
    drawn = {s.name for s in out if s.reason is None}
    for stale in folder.glob("*.png") if folder.is_dir() else ():
        if stale.name not in drawn and not stale.is_symlink():  # drawn by an earlier run into this folder
            stale.unlink(missing_ok=True)
    if failed is not None:
        raise failed
    return out


def render_section(specs: list[PlotSpec]) -> str:
    out = [f"PLOTS ({PLOTS_DIR}/):", THIN]
    out += [s.name for s in specs if s.reason is None]
    out += [f"{s.name} left out: {s.reason}" for s in specs if s.reason is not None]
    return "\n".join(out) + "\n"


_OUTCOME = pytest.StashKey[list[PlotSpec]]()


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    # not trylast: the analysis (reporters) and the HTML report (trylast) come after and use the files
    config.stash[_OUTCOME] = write(sweep.dir, sweep.records, threshold(config))


def outcome(config: pytest.Config, sweep: SweepResult) -> list[PlotSpec]:
    """What this run drew and left out (the plan, when the plots plugin did not run)."""
    specs = config.stash.get(_OUTCOME, None)
    return specs if specs is not None else plan(sweep.records, sweep.dir)


@pytest.hookimpl(trylast=True)
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    if sweep.running:
        return None
    return render_section(outcome(config, sweep))
