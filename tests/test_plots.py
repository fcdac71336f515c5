"""Plots: each figure's data before it is saved (points and lines per axes), valid PNGs of the expected size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from synthetic import grid_records, png_size

from pytest_sweep.matrix.records import new_record
from pytest_sweep.plugins import plots

if TYPE_CHECKING:
    from matplotlib.axes import Axes

AXES = {"CONFIG_LEARNING_RATE": ["0.001", "0.01", "0.1"], "CONFIG_OPTIMIZER": ["sgd", "adamw"]}
ACC = {"0.001": 80.0, "0.01": 90.0, "0.1": 85.0}


def _points(offsets: Any) -> list[list[float]]:
    """A collection's offsets (matplotlib types them as any array-like) as ``[[x, y], ...]``."""
    points: list[list[float]] = np.asarray(offsets, dtype=float).tolist()
    return points


def _values(data: Any) -> list[float]:
    """A line's x or y data (typed as any array-like) as a list of numbers."""
    values: list[float] = np.asarray(data, dtype=float).tolist()
    return values


def _legend(ax: Axes) -> list[str]:
    """The texts of an axis' legend; the axis must have one."""
    legend = ax.get_legend()
    assert legend is not None, "no legend"
    return [t.get_text() for t in legend.get_texts()]


def _records(failed: set[int] | None = None) -> list[dict[str, Any]]:
    """6 trials: config_006 (lr 0.1, adamw) failed unless told otherwise; one more skipped trial."""
    records = grid_records(
        AXES,
        lambda v: ACC[v["CONFIG_LEARNING_RATE"]] + (1.0 if v["CONFIG_OPTIMIZER"] == "adamw" else 0.0),
        failed={6} if failed is None else failed,
    )
    skipped = new_record(
        "config_007",
        {"CONFIG_LEARNING_RATE": "0.1", "CONFIG_OPTIMIZER": "sgd"},
        {"CONFIG_LEARNING_RATE": "0.1", "CONFIG_OPTIMIZER": "sgd"},
        status="skipped",
        error="not today",
        source="/w/grid.rc",
    )
    return [*records, skipped]


def _with_history(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    """training_metrics.json per trial: the passed ones 3 epochs ending at their accuracy."""
    for rec in records:
        if rec["status"] == "skipped":
            continue
        acc = rec["test_acc"]
        epochs = [{"epoch": e, "test_acc": acc - 3 + e} for e in (1, 2, 3)] if acc is not None else [{"test_acc": 40.0}]
        folder = tmp_path / rec["trial_dir"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "training_metrics.json").write_text(json.dumps({"epochs": epochs}))


def test_accuracy_against_a_parameter_shows_every_trial(tmp_path: Path) -> None:
    records = _records()
    fig = plots.param_figure(records, "CONFIG_LEARNING_RATE")
    (ax,) = fig.axes
    passed, failed, skipped = ax.collections
    assert _points(passed.get_offsets()) == [[0.001, 80.0], [0.001, 81.0], [0.01, 90.0], [0.01, 91.0], [0.1, 85.0]]
    assert passed.get_label() == "passed trials"
    (mean,) = ax.lines
    assert _values(mean.get_xdata()) == [0.001, 0.01, 0.1] and _values(mean.get_ydata()) == [80.5, 90.5, 85.0]
    # failed trials along the bottom: under every accuracy, inside the axis
    bottom, _ = ax.get_ylim()
    ((x, y),) = _points(failed.get_offsets())
    assert failed.get_label() == "failed (no accuracy)" and x == 0.1 and bottom < y < 80.0
    # no seeds swept: the band within the resolution (0.5 pp, the default) of the best mean is drawn
    (band,) = ax.patches
    assert band.get_label() == "within the resolution (0.50 pp) of the best mean"
    assert sorted(_legend(ax)) == [
        "failed (no accuracy)",
        "mean per value",
        "passed trials",
        "skipped / not run",
        "within the resolution (0.50 pp) of the best mean",
    ]
    assert skipped.get_label() == "skipped / not run" and len(_points(skipped.get_offsets())) == 1
    assert ax.get_xscale() == "log"  # 0.001 to 0.1
    # a string parameter: categorical positions, labelled
    ax = plots.param_figure(records, "CONFIG_OPTIMIZER").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sgd", "adamw"]
    assert _values(ax.lines[0].get_ydata()) == [85.0, 86.0]  # sgd 80/90/85, adamw 81/91 (its 0.1 failed)


def test_learning_curves_show_the_top_five_and_the_worst(tmp_path: Path) -> None:
    records = _records(failed=set())
    records += grid_records({"CONFIG_LEARNING_RATE": ["0.5"], "CONFIG_OPTIMIZER": ["sgd"]}, lambda v: 50.0)
    records[-1].update(config_file="config_008", trial_dir="config_008")
    records += [dict(records[0], config_file="config_009", trial_dir="config_009", status="failed", test_acc=None)]
    _with_history(tmp_path, records)
    ax = plots.curves_figure(records, tmp_path).axes[0]
    assert [line.get_label() for line in ax.lines] == [
        "config_004 (91.00%)",
        "config_003 (90.00%)",
        "config_006 (86.00%)",
        "config_005 (85.00%)",
        "config_002 (81.00%)",
        "config_008 (50.00%)",
        "config_009 (failed)",
    ]
    assert len(ax.lines) == 5 + 1 + 1  # top 5, the worst (dashed), the failed trial (dotted)
    assert [line.get_linestyle() for line in ax.lines] == ["-"] * 5 + ["--", ":"]
    assert ax.lines[5].get_label() == "config_008 (50.00%)"
    assert _values(ax.lines[0].get_ydata()) == [89.0, 90.0, 91.0]  # the best: config_004, 91%


def test_sparsity_and_parallel_coordinates() -> None:
    records = _records()
    ax = plots.sparsity_figure(records).axes[0]
    assert _points(ax.collections[0].get_offsets()) == [[70.0, a] for a in (80.0, 81.0, 90.0, 91.0, 85.0)]
    fig = plots.parallel_figure(records)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the plot and its colour bar
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(solid) == 5 and len(dashed) == 2  # one line per trial; failed and skipped distinct
    assert all(len(_values(line.get_xdata())) == 3 for line in solid)  # two parameters and the accuracy
    assert all(len(_values(line.get_xdata())) == 2 for line in dashed)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LEARNING_RATE", "OPTIMIZER", "test_acc"]


def test_write_draws_valid_pngs_of_the_expected_size(tmp_path: Path) -> None:
    records = _records()
    _with_history(tmp_path, records)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "test_acc_vs_old_parameter.png").write_bytes(b"stale")
    specs = plots.write(tmp_path, records)
    assert [(s.name, s.reason) for s in specs] == [
        ("test_acc_vs_learning_rate.png", None),
        ("test_acc_vs_optimizer.png", None),
        ("learning_curves.png", None),
        ("test_acc_vs_sparsity.png", None),
        ("parallel_coordinates.png", None),
    ]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(s.name for s in specs)  # stale one gone
    for spec in specs:
        assert png_size(tmp_path / "plots" / spec.name) == spec.size_px
    assert specs[0].size_px == (640, 480)
    # the parallel coordinates widen with the parameters: 2.2 in per axis, 1.5 in for the colour bar
    wide = grid_records({f"CONFIG_P{i}": ["1", "2"] for i in range(5)}, lambda v: float(v["CONFIG_P0"]))
    assert plots.plan(wide, tmp_path)[-1].size_px == (1470, 480)


def test_a_plot_that_cannot_be_drawn_is_left_out_with_one_line(tmp_path: Path) -> None:
    one = _records(failed={1, 2, 3, 4, 6})  # one passed trial
    specs = plots.write(tmp_path, one)
    assert all(s.reason == "fewer than two passed trials (1)" for s in specs)
    assert not (tmp_path / "plots").exists()
    text = plots.render_section(specs)
    assert text.splitlines()[2:] == [f"{s.name} left out: fewer than two passed trials (1)" for s in specs]
    # no history files: the learning curves are left out, the rest drawn
    specs = plots.write(tmp_path, _records())
    assert [s.name for s in specs if s.reason] == ["learning_curves.png"]
    assert specs[2].reason == "no per-epoch history found"


def test_matplotlib_is_imported_only_when_plots_are_drawn() -> None:
    # every built-in plugin, as pytest loads them at start-up (collection never draws)
    code = (
        "import importlib, sys; from pytest_sweep import BUILTIN_PLUGINS;"
        "[importlib.import_module(m) for m in BUILTIN_PLUGINS.values()];"
        "assert 'pytest_sweep.plugins.plots' in sys.modules; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture(autouse=True)
def _no_pyplot() -> Any:
    """The reporters never touch pyplot's global state (figures are built on the Agg canvas directly)."""
    yield
    assert "matplotlib.pyplot" not in sys.modules


def test_a_spread_below_the_noise_is_not_stretched_over_the_axis() -> None:
    """Four trials 0.28 pp apart (one digits test image) under a 0.5 pp resolution: the axis spans at
    least four times the noise, so the spread fills at most a quarter of it."""
    accs = {"0.85": 99.17, "0.9": 99.44}
    records = grid_records({"CONFIG_ADAMWPRUNE_BETA1": ["0.85", "0.9"], "CONFIG_TARGET_SPARSITY": ["0.5", "0.7"]},
                           lambda v: accs[v["CONFIG_ADAMWPRUNE_BETA1"]])  # fmt: skip
    for r in records:
        r["test_samples"] = 360
    ax = plots.param_figure(records, "CONFIG_ADAMWPRUNE_BETA1").axes[0]
    bottom, top = ax.get_ylim()
    assert top - bottom >= 4 * 0.5 and bottom < 99.17 and top > 99.44
    ax = plots.sparsity_figure(records).axes[0]
    assert ax.get_ylim()[1] - ax.get_ylim()[0] >= 2.0


def test_with_seeds_the_means_carry_their_interval_and_curves_their_range(tmp_path: Path) -> None:
    noise = {"1": -0.5, "2": 0.0, "3": 0.5}
    records = grid_records({"CONFIG_LEARNING_RATE": ["0.001", "0.01"], "CONFIG_SEED": ["1", "2", "3"]},
                           lambda v: ACC[v["CONFIG_LEARNING_RATE"]] + noise[v["CONFIG_SEED"]])  # fmt: skip
    _with_history(tmp_path, records)
    ax = plots.param_figure(records, "CONFIG_LEARNING_RATE").axes[0]
    (bars,) = ax.containers  # the error bars of the means
    assert bars.get_label() == "mean per value, 95% interval (seed sd 0.50 pp)"
    assert not ax.patches  # no resolution band: the noise is measured
    ax = plots.curves_figure(records, tmp_path).axes[0]
    assert [line.get_label() for line in ax.lines] == [
        "config_004 (mean of 3 seeds, 90.00%)",
        "config_001 (mean of 3 seeds, 80.00%)",
    ]
    assert _values(ax.lines[0].get_ydata()) == [88.0, 89.0, 90.0]
    assert len(ax.collections) == 2  # each configuration's range over its seeds, shaded
    fig = plots.parallel_figure(records)
    assert len([line for line in fig.axes[0].lines if line.get_linestyle() == "-"]) == 2  # one per configuration


def test_identical_learning_curves_are_drawn_once_and_named_together(tmp_path: Path) -> None:
    records = grid_records({"CONFIG_TARGET_SPARSITY": ["0.5", "0.7"]}, lambda v: 99.44)
    _with_history(tmp_path, records)
    ax = plots.curves_figure(records, tmp_path).axes[0]
    assert [line.get_label() for line in ax.lines] == ["config_001 (99.44%) = config_002 (99.44%) (identical)"]
    assert _legend(ax) == [ax.lines[0].get_label()]
