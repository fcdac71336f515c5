"""The Pareto front in the reports (entry point ``sweep.pareto``).

Active when ``--sweep-objective`` or ``--sweep-constraint`` is given (or their ini values differ
from the default ``test_acc:max``); otherwise nothing here runs.  At the end of the sweep it
writes ``sweep_pareto.json`` (the front, the rule that decided it, its hypervolume) and
``sweep_pareto.png`` (two objectives: a scatter with the front drawn as a staircase; three: the
three pairs side by side), adds a PARETO FRONT section to ``sweep_analysis.txt`` (through
``pytest_sweep_analysis_sections``) and to the terminal, and the HTML report shows both
(:func:`html_section`).  With ``--sweep-constraint``, every trial's record gets ``feasible``.
The front itself is computed by :func:`pytest_sweep.plugins.pareto.front`.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.files import PARETO_JSON
from pytest_sweep.matrix.objectives import Constraint, metric_value
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.records import SweepResult
from pytest_sweep.matrix.search_options import SearchSettings
from pytest_sweep.matrix.trial import Trial
from pytest_sweep.plugins.pareto import Front, front

PARETO_PNG = "sweep_pareto.png"
_FRONT = pytest.StashKey[Front]()


def _settings(config: pytest.Config) -> SearchSettings | None:
    s = sweep_options(config).search
    return s if s.explicit else None


class ConstraintMarker:
    """Registered with ``--sweep-constraint``: each record says whether its trial meets them."""

    def __init__(self, constraints: tuple[Constraint, ...]) -> None:
        self.constraints = constraints

    @pytest.hookimpl
    def pytest_sweep_trial_finished(self, trial: Trial, record: dict[str, Any]) -> None:
        if record.get("status") in ("passed", "stopped"):
            record["feasible"] = all(c.holds(metric_value(record, c.metric)) for c in self.constraints)


def pytest_configure(config: pytest.Config) -> None:
    if not sweep_options(config).active:
        return  # no sweep: nothing to do
    s = _settings(config)
    if s is not None and s.constraints:
        config.pluginmanager.register(ConstraintMarker(s.constraints), "sweep-constraints")


def compute(config: pytest.Config, sweep: SweepResult) -> Front | None:
    s = _settings(config)
    if s is None:
        return None
    return front(sweep.records, s.objectives, s.constraints)


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    found = compute(config, sweep)
    if found is None:
        return
    config.stash[_FRONT] = found
    storage.write_json_atomic(storage.sweep_path(sweep.dir, PARETO_JSON), found.to_json())
    png = storage.sweep_path(sweep.dir, PARETO_PNG)
    if len(found.objectives) >= 2 and found.points:
        try:
            storage_png(png, figure_bytes(found))
        except Exception as exc:  # a plot never fails the sweep
            _note(config, f"sweep: {PARETO_PNG} could not be drawn: {type(exc).__name__}: {exc}")
    else:
        png.unlink(missing_ok=True)


def _note(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(text, yellow=True)


def storage_png(path: Path, data: bytes) -> None:
    from pytest_sweep.plugins.plots import _write_bytes_atomic

    _write_bytes_atomic(path, data)


def figure_bytes(found: Front) -> bytes:
    """The plot: objective against objective, every configuration, the front drawn and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    objs = found.objectives
    pairs = [(0, 1)] if len(objs) == 2 else [(0, 1), (0, 2), (1, 2)]
    fig = Figure(figsize=(6.4 * len(pairs), 4.8), layout="constrained")
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    on_front = {p.label for p in found.front}
    for ax, (i, j) in zip(axes, pairs, strict=True):
        rest = [p for p in found.points if p.label not in on_front and p.feasible]
        bad = [p for p in found.points if not p.feasible]
        ax.scatter([p.means[i] for p in rest], [p.means[j] for p in rest], c="#9aa5b1", s=18, label="dominated")
        if bad:
            ax.scatter(
                [p.means[i] for p in bad], [p.means[j] for p in bad], marker="x", c="#c0392b", s=22, label="infeasible"
            )
        pts = sorted(found.front, key=lambda p: objs[i].sign * p.means[i], reverse=True)
        ax.scatter(
            [p.means[i] for p in pts], [p.means[j] for p in pts], c="#1f77b4", s=34, label="Pareto front", zorder=3
        )
        if len(objs) == 2 and pts:
            ax.step([p.means[i] for p in pts], [p.means[j] for p in pts], where="post", c="#1f77b4", lw=1.2)
        for p in pts[:12]:
            ax.annotate(p.label, (p.means[i], p.means[j]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(str(objs[i]))
        ax.set_ylabel(str(objs[j]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Pareto front: {len(found.front)} of {len(found.points)} configurations")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def render(found: Front) -> list[str]:
    """The front as text lines (the analysis section and the terminal)."""
    objs = ", ".join(map(str, found.objectives))
    lines = [
        f"PARETO FRONT ({objs}"
        + (f"; constraints {', '.join(map(str, found.constraints))}" if found.constraints else "")
        + ")"
    ]
    lines.append(
        f"{len(found.front)} of {len(found.points)} configurations are not dominated"
        + (f"; {len(found.infeasible)} infeasible" if found.constraints else "")
    )
    for p in found.front:
        vals = []
        for k, o in enumerate(found.objectives):
            sd = p.sds[k]
            vals.append(f"{o.metric} {_fmt(p.means[k])}" + (f" ± {_fmt(sd)}" if sd is not None else ""))
        swept = " ".join(f"{k.removeprefix('CONFIG_')}={v}" for k, v in p.swept.items())
        seeds = f" (n={p.n})" if p.n > 1 else ""
        lines.append(f"  {p.label}: {', '.join(vals)}{seeds}  [{swept}]")
    hv = found.hypervolume()
    if hv is not None:
        lines.append(f"hypervolume {hv:.4g} (reference point: 10% of the range below the worst configuration)")
    for metric, count in found.missing.items():
        lines.append(f"{count} configuration{'s' if count != 1 else ''} left out: no {metric} in the record")
    if any(p.n > 1 for p in found.points):
        lines.append("with swept seeds a configuration leaves the front only when another is better beyond the noise")
    return lines


@pytest.hookimpl
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    if sweep.running:
        return None
    found = config.stash.get(_FRONT, None) or compute(config, sweep)
    return None if found is None else "\n".join(render(found)) + "\n"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    found = config.stash.get(_FRONT, None)
    if found is None:
        return
    terminalreporter.write_sep("=", "sweep pareto front")
    for line in render(found):
        terminalreporter.write_line(line)


def html_section(sweep_dir: Path) -> list[str]:
    """The front in the HTML report, from ``sweep_pareto.json`` (nothing when the sweep has none, or
    when the file is not one this plugin wrote: ``pytest-sweep report`` reads whatever a folder holds)."""
    try:
        data = json.loads(storage.sweep_path(sweep_dir, PARETO_JSON).read_text(encoding="utf-8"))
        return _html_rows(sweep_dir, data) if isinstance(data, dict) else []
    except (OSError, ValueError, RecursionError, TypeError, AttributeError, KeyError):
        return []


def _html_rows(sweep_dir: Path, data: dict[str, Any]) -> list[str]:
    def e(value: Any) -> str:
        return html.escape(str(value), quote=True)

    def number(value: Any) -> str:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return _fmt(float(value)) if ok else "n/a"

    objectives = [str(o) for o in data.get("objectives", [])]
    out = [f"<h2>Pareto front ({e(', '.join(objectives))})</h2>"]
    out.append(
        f"<p>{len(data.get('front', []))} of {e(data.get('configurations', 0))} configurations are not dominated"
        + (
            f"; {e(data.get('infeasible'))} infeasible ({e(', '.join(map(str, data.get('constraints', []))))})"
            if data.get("constraints")
            else ""
        )
        + f". Rule: {e(data.get('noise_rule', ''))}.</p>"
    )
    metrics = [o.split(":")[0] for o in objectives]
    rows = ["<tr><th>config</th>" + "".join(f"<th>{e(m)}</th>" for m in metrics) + "<th>n</th><th>swept</th></tr>"]
    for p in data.get("front", []):
        cells = "".join(f"<td>{number(p['values'].get(m))}</td>" for m in metrics)
        swept = " ".join(f"{str(k).removeprefix('CONFIG_')}={v}" for k, v in (p.get("swept") or {}).items())
        rows.append(f"<tr><td>{e(p.get('config'))}</td>{cells}<td>{e(p.get('n'))}</td><td>{e(swept)}</td></tr>")
    out.append("<table>" + "".join(rows) + "</table>")
    try:
        drawn = storage.sweep_path(sweep_dir, PARETO_PNG).is_file()
    except OSError:
        drawn = False
    if drawn:
        out.append(f'<p><img src="{PARETO_PNG}" alt="Pareto front" style="max-width:100%"></p>')
    return out
