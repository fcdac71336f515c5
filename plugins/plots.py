"""Plots of a finished sweep: PNG files in the sweep folder's ``plots/`` (matplotlib, Agg).

- ``test_acc_vs_<parameter>.png`` per swept parameter: one point per passed trial, the per-value
  mean as a line, failed trials (red x) and skipped or not-run trials (grey triangles) along the
  bottom;
- ``learning_curves.png``: test accuracy per epoch of the top 5 and the worst passed trials
  (dashed), and of failed trials that trained for an epoch or more (dotted red);
- ``test_acc_vs_sparsity.png``: test accuracy against final sparsity;
- ``parallel_coordinates.png``: every trial across the swept parameters and its accuracy,
  coloured by accuracy; failed and skipped trials grey and dashed.

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
from pytest_sweep.matrix.records import SweepResult, ranked
from pytest_sweep.matrix.trial import short_key
from pytest_sweep.plugins.analysis import labeller
from pytest_sweep.plugins.importance import focus, swept_keys, value_of, value_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOTS_DIR = "plots"
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
        path = storage.sweep_path(sweep_dir, folder, "training_metrics.json")
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
    specs = [PlotSpec(f"test_acc_vs_{short_key(k).lower()}.png", "param", key=k, reason=few) for k in keys]
    top, worst = curve_trials(scoped)
    chosen = [*top, *([worst] if worst else [])]
    curves_reason = few or (None if any(history(sweep_dir, r) for r in chosen) else "no per-epoch history found")
    specs.append(PlotSpec("learning_curves.png", "curves", reason=curves_reason))
    with_sparsity = [r for r in passed if r.get("final_sparsity") is not None]
    sparsity_reason = None
    if len(with_sparsity) < 2:
        sparsity_reason = few or f"fewer than two passed trials with a final sparsity ({len(with_sparsity)})"
    specs.append(PlotSpec("test_acc_vs_sparsity.png", "sparsity", reason=sparsity_reason))
    parallel_reason = "nothing was swept" if not keys else few
    specs.append(
        PlotSpec(
            "parallel_coordinates.png", "parallel", reason=parallel_reason, width_in=max(6.4, 1.8 * (len(keys) + 1))
        )
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


def _bottom(passed: list[dict[str, Any]]) -> float:
    accs = [float(r["test_acc"]) for r in passed] or [0.0]
    return min(accs) - max(1.0, 0.1 * (max(accs) - min(accs)))


def param_figure(records: list[dict[str, Any]], key: str) -> Figure:
    spec = PlotSpec(f"test_acc_vs_{short_key(key).lower()}.png", "param", key=key)
    fig = _new_figure(spec)
    ax = fig.add_subplot()
    values = value_order([value_of(r, key) for r in records])
    pos, numeric, log = _positions(values)
    passed = [r for r in records if _passed(r)]
    ax.scatter(
        [pos[value_of(r, key)] for r in passed],
        [float(r["test_acc"]) for r in passed],
        color="tab:blue",
        alpha=0.7,
        label="passed trials",
    )
    means = []
    for v in values:
        accs = [float(r["test_acc"]) for r in passed if value_of(r, key) == v]
        if accs:
            means.append((pos[v], sum(accs) / len(accs)))
    ax.plot([x for x, _ in means], [m for _, m in means], "-o", color="tab:orange", label="mean per value")
    bottom = _bottom(passed)
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
    if not numeric:
        ax.set_xticks(list(pos.values()), list(pos))
    ax.set_xlabel(short_key(key))
    ax.set_ylabel("test accuracy [%]")
    ax.set_title(f"test accuracy vs {short_key(key)}")
    ax.legend(fontsize="small")
    return fig


def curves_figure(records: list[dict[str, Any]], sweep_dir: Path) -> Figure:
    fig = _new_figure(PlotSpec("learning_curves.png", "curves"))
    ax = fig.add_subplot()
    label = labeller(records)
    top, worst = curve_trials(records)
    for rec, style in [*((r, "-") for r in top), *([(worst, "--")] if worst else [])]:
        accs = history(sweep_dir, rec)
        if accs:
            ax.plot(
                range(1, len(accs) + 1), accs, style, marker=".", label=f"{label(rec)} ({float(rec['test_acc']):.2f}%)"
            )
    failed = [r for r in records if r["status"] == "failed"][:TOP_CURVES]
    for rec in failed:
        accs = history(sweep_dir, rec)
        if accs:
            ax.plot(range(1, len(accs) + 1), accs, ":", color="tab:red", label=f"{label(rec)} (failed)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy [%]")
    ax.set_title(f"learning curves: top {len(top)}" + (" and the worst" if worst else ""))
    ax.legend(fontsize="small")
    return fig


def sparsity_figure(records: list[dict[str, Any]]) -> Figure:
    fig = _new_figure(PlotSpec("test_acc_vs_sparsity.png", "sparsity"))
    ax = fig.add_subplot()
    done = [r for r in records if _passed(r) and r.get("final_sparsity") is not None]
    ax.scatter([float(r["final_sparsity"]) * 100 for r in done], [float(r["test_acc"]) for r in done], color="tab:blue")
    ax.set_xlabel("final sparsity [%]")
    ax.set_ylabel("test accuracy [%]")
    ax.set_title("test accuracy vs final sparsity")
    return fig


def parallel_figure(records: list[dict[str, Any]]) -> Figure:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    keys = swept_keys(records)
    spec = PlotSpec("parallel_coordinates.png", "parallel", width_in=max(6.4, 1.8 * (len(keys) + 1)))
    fig = _new_figure(spec)
    ax = fig.add_subplot()
    scales = []
    for k in keys:
        values = value_order([value_of(r, k) for r in records])
        pos, _, log = _positions(values)
        xs = {v: math.log10(x) if log else x for v, x in pos.items()}
        low, high = min(xs.values()), max(xs.values())
        scales.append({v: (x - low) / (high - low) if high > low else 0.5 for v, x in xs.items()})
    passed = [r for r in records if _passed(r)]
    accs = [float(r["test_acc"]) for r in passed]
    norm = Normalize(min(accs), max(accs) if max(accs) > min(accs) else min(accs) + 1)
    cmap = colormaps["viridis"]
    n = len(keys)
    for rec in records:
        ys = [scale[value_of(rec, k)] for k, scale in zip(keys, scales, strict=True)]
        if _passed(rec):
            acc = float(rec["test_acc"])
            ax.plot(range(n + 1), [*ys, norm(acc)], color=cmap(norm(acc)), alpha=0.8)
        else:
            ax.plot(range(n), ys, "--", color="tab:gray", alpha=0.6)
    ax.vlines(range(n + 1), 0, 1, colors="black", linewidth=0.8)
    for i, scale in enumerate(scales):
        for v, y in scale.items():
            ax.annotate(v, (i, y), xytext=(3, 0), textcoords="offset points", fontsize="x-small", va="center")
    ax.set_xticks(range(n + 1), [short_key(k) for k in keys] + ["test_acc"], fontsize="small")
    ax.set_yticks([])
    ax.set_xlim(-0.2, n + 0.4)
    ax.set_title("every trial (grey dashed: failed, skipped or not run)")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="test accuracy [%]")
    return fig


def build(spec: PlotSpec, records: list[dict[str, Any]], sweep_dir: Path) -> Figure:
    """The figure of ``spec`` (records of the analysed source)."""
    scoped, _ = focus(records)
    if spec.kind == "param":
        assert spec.key is not None
        return param_figure(scoped, spec.key)
    if spec.kind == "curves":
        return curves_figure(scoped, sweep_dir)
    if spec.kind == "sparsity":
        return sparsity_figure(scoped)
    return parallel_figure(scoped)


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


def write(sweep_dir: Path, records: list[dict[str, Any]]) -> list[PlotSpec]:
    """Draw every plot that can be drawn into ``sweep_dir/plots``; the outcome of each (reason: left out).

    A plot that cannot be drawn is left out with the reason; a plot that cannot be written (a
    full disk, a read-only folder, a symbolic link in its place) raises the ``OSError`` once every
    other plot is written, so the write failure is reported, never taken for a drawing problem.
    """
    out = []
    folder = storage.sweep_path(sweep_dir, PLOTS_DIR)  # never through a link to elsewhere
    failed: OSError | None = None
    for spec in plan(records, sweep_dir):
        if spec.reason is None:
            try:
                fig = build(spec, records, sweep_dir)
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
    config.stash[_OUTCOME] = write(sweep.dir, sweep.records)


def outcome(config: pytest.Config, sweep: SweepResult) -> list[PlotSpec]:
    """What this run drew and left out (the plan, when the plots plugin did not run)."""
    specs = config.stash.get(_OUTCOME, None)
    return specs if specs is not None else plan(sweep.records, sweep.dir)


@pytest.hookimpl(trylast=True)
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    if sweep.running:
        return None
    return render_section(outcome(config, sweep))
