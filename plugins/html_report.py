"""``sweep_report.html``: one self-contained page per sweep.

What was swept, the best configuration, a table of every trial that sorts by any column when its
header is clicked, the parameter importance, the plots (inline PNG, ``data:`` URLs), the next
sweep (``refine_range``), and the failed and skipped trials with their errors and a relative link
to each trial's ``output.log``.  No network access is needed: no CDN, no external file but the
trial logs it links to.  Written at the end of the sweep, after the plots.
"""

from __future__ import annotations

import base64
import html
import math
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import files, storage
from pytest_sweep.matrix.files import ANALYSIS_JSON, ANALYSIS_TXT, REPORT_HTML, SUMMARY_CSV, SUMMARY_JSON
from pytest_sweep.matrix.records import STATUSES, SweepResult, ranked
from pytest_sweep.matrix.trial import short_key
from pytest_sweep.plugins import importance as imp_mod
from pytest_sweep.plugins import plots, reporters, stats
from pytest_sweep.plugins.analysis import labeller
from pytest_sweep.plugins.environment import html_section as environment_section
from pytest_sweep.plugins.importance import Importance
from pytest_sweep.plugins.noise import BestSet
from pytest_sweep.plugins.replicates import SEED_KEY

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.failed td { background: #fde8e8; } tr.skipped td, tr.not_run td { background: #f0f0f0; color: #777; }
.bar { display: inline-block; height: 0.8em; background: #4a7bd0; vertical-align: middle; }
figure { display: inline-block; margin: 0.5em; } figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.fix { color: #8a5a00; } .below { color: #777; font-style: italic; }
tr.tie td { background: #eef6ee; } p.noise { color: #444; }
"""

#: Sorting: a click on a header sorts by its column, ascending first, then descending; empty cells last.
SCRIPT = """
function sortTable(th) {
  const table = th.closest("table");
  const col = Array.from(th.parentNode.children).indexOf(th);
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const numeric = th.dataset.type === "num";
  const body = table.tBodies[0];
  const key = (row) => {
    const cell = row.cells[col];
    return cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y, undefined, {numeric: true});
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}
document.querySelectorAll("table.sortable th").forEach((th) => {
  th.addEventListener("click", () => sortTable(th));
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    """A numeric cell: shown formatted, sorted by its exact value (empty for no finite number)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number) or isinstance(value, bool):
        return '<td class="num" data-value=""></td>'
    return f'<td class="num" data-value="{number!r}">{_e(fmt.format(number))}</td>'


def _link(record: dict[str, Any]) -> str:
    """A relative link to the trial's log; none unless ``trial_dir`` is one folder name (a record read
    from a file may say ``/etc`` or ``../../x``: no link leads out of the sweep folder)."""
    folder = record.get("trial_dir")
    if not storage.plain_name(folder) or record["status"] in ("skipped",):
        return ""
    href = urllib.parse.quote(f"{folder}/output.log")
    return f'<a href="{_e(href)}">output.log</a>'


def _swept_section(records: list[dict[str, Any]]) -> list[str]:
    keys = imp_mod.swept_keys(records)
    out = ["<h2>What was swept</h2>"]
    if not keys:
        out.append("<p>Nothing was swept: every trial ran the same config.</p>")
    else:
        out.append("<table><thead><tr><th>parameter</th><th>values</th></tr></thead><tbody>")
        for k in keys:
            values = imp_mod.value_order([imp_mod.value_of(r, k) for r in records])
            out.append(f"<tr><td>{_e(k)}</td><td>{_e(' | '.join(values))}</td></tr>")
        out.append("</tbody></table>")
    fixed = sorted({(k, str(v)) for r in records for k, v in (r.get("config") or {}).items() if k not in keys})
    if fixed:
        items = "".join(f"<li><code>{_e(k)}={_e(v)}</code></li>" for k, v in fixed)
        out.append(f"<details><summary>fixed keys ({len(fixed)})</summary><ul>{items}</ul></details>")
    return out


def _best_section(bests: BestSet) -> list[str]:
    out = ["<h2>Best configuration and its ties</h2>", f"<p class='noise'>{_e(bests.noise.describe())}</p>"]
    best = bests.best
    if best is None:
        return [*out, "<p>No configuration finished, so there is no best one.</p>"]
    if len(best.trials) > 1:
        sd = f" ± {best.sd:.2f}" if best.sd is not None else ""
        found = stats.bootstrap_mean([float(r["test_acc"]) for r in best.passed]) if best.n >= 2 else None
        ci = f"; 95% bootstrap interval of the mean {found[0]:.2f}-{found[1]:.2f}" if found else ""
        out.append(
            f"<p id='best'><b>{_e(best.label)}</b>: {best.mean:.2f}{_e(sd)}% test accuracy, mean over "
            f"{best.n} of {len(best.trials)} seeds ({_e(', '.join(best.names))}){_e(ci)}</p>"
        )
    else:
        out.append(f"<p id='best'><b>{_e(best.label)}</b>: {best.mean:.2f}% test accuracy</p>")
    rec = best.first
    swept = list(rec.get("swept") or [])
    config = rec.get("config") or {}
    items = [f"<li><code>{_e(k)}={_e(config.get(k))}</code></li>" for k in swept if k != SEED_KEY]
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    ties = bests.ties
    out.append(
        f"<p id='tie-basis'>Tie set ({_e(bests.basis)}): <b>{_e(', '.join(bests.names()))}</b>"
        + (" (no configuration is tied with the best)" if not ties else "")
        + "</p>"
    )
    rows = bests.contenders[:TIE_ROWS]
    if rows:
        seeds = bests.noise.kind == "seeds"
        head = ["config", "mean %", "behind the best, pp"] + (["shared seeds", "p", "p, corrected"] if seeds else [])
        out.append(
            '<table id="ties"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in head)
            + "<th>verdict</th></tr></thead><tbody>"
        )
        for c in rows:
            cells = [f"<td>{_e(c.config.label)}</td>", _num(c.config.mean), _num(c.difference)]
            if seeds:
                cells += [f'<td class="num">{c.shared}</td>', _num(c.p, "{:.3g}"), _num(c.p_adjusted, "{:.3g}")]
            verdict = "tied with the best" if c.tied else "worse"
            out.append(f'<tr class="{"tie" if c.tied else "apart"}">' + "".join(cells) + f"<td>{verdict}</td></tr>")
        out.append("</tbody></table>")
        if len(bests.contenders) > TIE_ROWS:
            out.append(f"<p>... and {len(bests.contenders) - TIE_ROWS} more (sweep_analysis.json lists every one).</p>")
    return out


#: How many configurations the tie table shows (the nearest to the best).
TIE_ROWS = 12


def _trials_section(records: list[dict[str, Any]]) -> list[str]:
    label = labeller(records)
    keys = imp_mod.swept_keys(records)
    order = ranked(records)
    rest = [r for r in records if r not in order]
    head = [("config", "text"), ("status", "text"), ("test_acc", "num"), ("best_acc", "num")]
    head += [("sparsity", "num"), ("time", "num")] + [(short_key(k), "text") for k in keys] + [("log", "text")]
    out = [
        "<h2>Every trial</h2>",
        "<p>Click a column header to sort by it (again to reverse).</p>",
        '<table class="sortable" id="trials"><thead><tr>',
        "".join(f'<th data-type="{t}" id="col-{_e(name)}">{_e(name)}</th>' for name, t in head),
        "</tr></thead><tbody>",
    ]
    for rec in [*order, *rest]:
        sparsity = rec.get("final_sparsity")
        cells = [
            f"<td>{_e(label(rec))}</td>",
            f"<td>{_e(rec['status'])}</td>",
            _num(rec.get("test_acc")),
            _num(rec.get("best_acc")),
            _num(None if sparsity is None else float(sparsity) * 100, "{:.1f}%"),
            _num(rec.get("training_time"), "{:.1f}s"),
            *[f"<td>{_e(imp_mod.value_of(rec, k))}</td>" for k in keys],
            f"<td>{_link(rec)}</td>",
        ]
        out.append(f'<tr class="{_e(rec["status"])}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def _importance_section(imp: Importance) -> list[str]:
    out = ["<h2>Parameter importance</h2>"]
    text = imp_mod.render_section(imp).splitlines()[2:]  # the analysis section, without its title
    intro = [line for line in text if line and not line.startswith((" ", "FIX", "Interactions"))]
    intro = [line for line in intro if not line[:1].isdigit()]
    out += [f"<p>{_e(line)}</p>" for line in intro]
    if not imp.parameters:
        return out
    out.append('<table id="importance"><thead><tr><th>parameter</th><th>share of the variance</th>')
    out.append("<th>value means span</th><th>per value: passed, mean</th><th>verdict</th></tr></thead><tbody>")
    for p in imp.parameters:
        span = "n/a" if p.effect is None else f"{p.effect:.2f} pp"
        values = "; ".join(f"{s.value}: {s.passed}, {'n/a' if s.mean is None else f'{s.mean:.2f}%'}" for s in p.values)
        if p.important is False:
            share_cell = '<span class="below">below the noise</span>'
        elif p.share is None or p.replicate:
            share_cell = "n/a" if p.share is None else _e(f"{p.share * 100:.1f}%")
        else:
            share_cell = f'<span class="bar" style="width:{p.share * 10:.2f}em"></span> {_e(f"{p.share * 100:.1f}%")}'
        words = imp_mod.verdict(imp, p)
        if p.important is False:
            verdict = f'<span class="fix">fix at {_e(p.best_value)}</span>: {_e(words)}'
        else:
            verdict = _e(words)
        out.append(
            f"<tr><td>{_e(p.name)}</td><td>{share_cell}</td><td>{_e(span)}</td>"
            f"<td>{_e(values)}</td><td>{verdict}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _plots_section(sweep_dir: Path, specs: list[plots.PlotSpec]) -> list[str]:
    out = ["<h2>Plots</h2>"]
    for spec in specs:
        try:
            path = storage.sweep_path(sweep_dir, files.PLOTS_DIR, spec.name)
            png = path.read_bytes() if spec.reason is None and path.is_file() else None
        except OSError:
            png = None
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            out.append(
                f'<figure><img alt="{_e(spec.name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_e(spec.name)}</figcaption></figure>"
            )
        else:
            out.append(f"<p>{_e(spec.name)} left out: {_e(spec.reason or 'not drawn')}</p>")
    return out


def _problems_section(records: list[dict[str, Any]]) -> list[str]:
    label = labeller(records)
    failed = [r for r in records if r["status"] == "failed"]
    out = [f"<h2>Failed trials: {len(failed)}</h2>"]
    if failed:
        out.append('<ul id="failed">')
        for rec in failed:
            link = _link(rec)
            out.append(
                f"<li><b>{_e(label(rec))}</b>: {_e(rec.get('error') or 'unknown error')}"
                + (f" ({link})" if link else "")
            )
        out.append("</ul>")
    others = [r for r in records if r["status"] in ("skipped", "not_run")]
    if others:
        out.append(f"<h2>Skipped or not run: {len(others)}</h2><ul>")
        out += [f"<li><b>{_e(label(r))}</b> ({_e(r['status'])}): {_e(r.get('error') or '')}</li>" for r in others]
        out.append("</ul>")
    return out


def _pareto_section(sweep_dir: Path) -> list[str]:
    # imported here: the Pareto plugin is a plugin module of its own (loaded by name after this one)
    from pytest_sweep.plugins.pareto_report import html_section

    return html_section(sweep_dir)


def render(
    sweep_dir: Path,
    records: list[dict[str, Any]],
    imp: Importance,
    refine_text: str | None,
    specs: list[plots.PlotSpec],
    sources: list[str] | None = None,
    threshold: float | None = None,
) -> str:
    """The whole page."""
    bests = reporters.bests_of(records, threshold)
    counts = {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
    summary = " | ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
    body = [
        f"<h1>Sweep report: {_e(sweep_dir.resolve().name)}</h1>",
        f"<p>{len(records)} trials ({_e(summary)})"
        + (f"; from {_e(', '.join(sources))}" if sources else "")
        + ". Files: "
        + ", ".join(f'<a href="{name}">{name}</a>' for name in (SUMMARY_JSON, SUMMARY_CSV, ANALYSIS_TXT, ANALYSIS_JSON))
        + ".</p>",
        *_swept_section(records),
        *_best_section(bests),
        *_trials_section(records),
        *_importance_section(imp),
        *_plots_section(sweep_dir, specs),
        *_pareto_section(sweep_dir),
        "<h2>Next sweep: refine_range</h2>",
        f"<pre>{_e(refine_text)}</pre>" if refine_text else "<p>refine_range not written: no trial passed.</p>",
        *_problems_section(records),
        *environment_section(sweep_dir),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Sweep report: {_e(sweep_dir.resolve().name)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write(
    sweep_dir: Path,
    records: list[dict[str, Any]],
    imp: Importance,
    specs: list[plots.PlotSpec],
    sources: list[str] | None = None,
    threshold: float | None = None,
) -> Path:
    try:
        ref_path = storage.sweep_path(sweep_dir, files.REFINE_RANGE)
        refine_text = ref_path.read_text(encoding="utf-8") if ref_path.is_file() else None
    except (OSError, ValueError):  # a link, unreadable, not UTF-8: the page says it is not written
        refine_text = None
    return storage.write_text_atomic(
        storage.sweep_path(sweep_dir, REPORT_HTML),
        render(sweep_dir, records, imp, refine_text, specs, sources, threshold),
    )


@pytest.hookimpl(trylast=True)
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    # trylast: after the plots and refine_range (plain hookimpls) are written
    specs = plots.outcome(config, sweep)
    write(sweep.dir, sweep.records, imp_mod.for_sweep(config, sweep), specs, sweep.sources, imp_mod.threshold(config))
