"""Built-in reporters: ``sweep_summary.json``, ``sweep_analysis.txt``, ``sweep_analysis.json`` and the terminal.

``sweep_analysis.json`` holds what ``sweep_analysis.txt`` says, for machines: the noise model, the
best configuration and its tie set (with the test and its p-values, or the resolution), the
parameters' importance and the failures.  The end of the run names every file a person opens.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import printable
from pytest_sweep.matrix.files import (
    ANALYSIS_JSON,
    ANALYSIS_TXT,
    PLOTS_DIR,
    REFINE_RANGE,
    REPORT_HTML,
    SUMMARY_CSV,
    SUMMARY_JSON,
)
from pytest_sweep.matrix.records import STATUSES, SweepResult
from pytest_sweep.plugins.analysis import labeller, render_analysis, render_table, stopped_lines
from pytest_sweep.plugins.noise import BestSet, best_set, focus, model

ANALYSIS_SCHEMA_VERSION = 1
#: How many tied configurations the terminal names (the files list every one).
TERMINAL_TIES = 5
_RESULT = pytest.StashKey[SweepResult]()
#: The final summary could not be written (the controller has said why).
_NOT_WRITTEN = pytest.StashKey[bool]()


def bests_of(records: list[dict[str, Any]], threshold: float | None) -> BestSet:
    """The sweep's best set, judged with the noise of the analysed source's records."""
    scoped, _ = focus(records)
    return best_set(records, model(scoped, threshold), labeller(records))


def best_line(bests: BestSet) -> str:
    """``best: config_003 at 99.44% test accuracy; tied with it (within 0.50 pp resolution, ...): config_001``."""
    best = bests.best
    assert best is not None
    if best.n > 1 or len(best.trials) > 1:
        spread = f" ± {best.sd:.2f}" if best.sd is not None else ""
        head = f"best: {best.label} at {best.mean:.2f}{spread}% test accuracy (mean over {best.n} of {len(best.trials)} seeds)"
    else:
        head = f"best: {best.label} at {best.mean:.2f}% test accuracy"
    ties = [c.config.label for c in bests.ties]
    if not ties:
        return f"{head}; no configuration is tied with it ({bests.basis})"
    shown = ", ".join(ties[:TERMINAL_TIES]) + (
        f" and {len(ties) - TERMINAL_TIES} more" if len(ties) > TERMINAL_TIES else ""
    )
    return f"{head}; tied with it ({bests.basis}): {shown}"


def analysis_doc(records: list[dict[str, Any]], threshold: float | None, running: bool = False,
                 interrupted: bool = False) -> dict[str, Any]:  # fmt: skip
    """``sweep_analysis.json``: what the analysis text says, for machines."""
    from pytest_sweep.plugins import importance  # a plugin module: imported after it is registered

    imp = importance.compute(records, threshold)
    bests = bests_of(records, threshold)
    label = labeller(records)
    counts = {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
    return {
        "schema_version": ANALYSIS_SCHEMA_VERSION,
        "metric": "test_acc",
        "running": running,
        "interrupted": interrupted,
        "counts": counts,
        "noise": bests.noise.to_json(),
        "best": bests.to_json(),
        "ranking": [{"config": c.label, "trials": c.names, "mean": c.mean, "sd": c.sd, "n": c.n} for c in bests.ranked],
        "importance": imp.to_json(),
        "failures": [
            {"config": label(r), "status": r["status"], "error": r.get("error")}
            for r in records
            if r["status"] in ("failed", "skipped", "not_run")
        ],
    }


def _threshold(config: pytest.Config) -> float | None:
    from pytest_sweep.plugins import importance  # a plugin module: imported after it is registered

    return importance.threshold(config)


def _write_files(config: pytest.Config, sweep: SweepResult) -> None:
    if not sweep.from_summary:  # pytest-sweep report: the summary is what the records were read from
        storage.write_json_atomic(storage.sweep_path(sweep.dir, SUMMARY_JSON), sweep.records)
    threshold = _threshold(config)
    sections = [s for s in config.hook.pytest_sweep_analysis_sections(config=config, sweep=sweep) if s]
    storage.write_text_atomic(
        storage.sweep_path(sweep.dir, ANALYSIS_TXT),
        render_analysis(sweep.records, sweep.interrupted, sweep.running, sections, threshold),
    )
    storage.write_json_atomic(
        storage.sweep_path(sweep.dir, ANALYSIS_JSON),
        finite(analysis_doc(sweep.records, threshold, sweep.running, sweep.interrupted)),
    )


def finite(data: Any) -> Any:
    """``data`` with every non-finite number (which JSON cannot hold) as None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


@pytest.hookimpl(trylast=True)
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    config.stash[_RESULT] = sweep  # first: the terminal shows the results even when the files fail
    try:
        _write_files(config, sweep)
    except Exception:
        config.stash[_NOT_WRITTEN] = True
        raise


@pytest.hookimpl(trylast=True)
def pytest_sweep_progress(config: pytest.Config, sweep: SweepResult) -> None:
    _write_files(config, sweep)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    sweep = config.stash.get(_RESULT, None)
    if sweep is None:
        return
    tr = terminalreporter
    tr.write_sep("=", "sweep results")
    label = labeller(sweep.records)
    if sweep.ranked:
        for line in render_table(sweep.records).splitlines():
            tr.write_line(line)
        tr.write_line(best_line(bests_of(sweep.records, _threshold(config))))
    else:
        tr.write_line("no trial finished")
    stopped = stopped_lines(sweep.records, label)
    if stopped:
        tr.write_line(f"stopped early by --sweep-scheduler: {len(stopped)}")
        for line in stopped:
            tr.write_line(f"  {line}")
    reused = sweep.count_reused()
    if reused:
        tr.write_line(f"reused: {reused} trial{'s' if reused != 1 else ''} finished in an earlier run (--sweep-resume)")
    failed = [r for r in sweep.records if r["status"] == "failed"]
    for rec in failed:
        tr.write_line(f"FAILED {label(rec)}: {printable(str(rec.get('error')))}", red=True)
    if config.stash.get(_NOT_WRITTEN, False):
        tr.write_line(
            f"summary and analysis: not written into {printable(str(sweep.dir))} (see above); the results above are complete"
        )
        return
    for name, path in files_to_open(sweep.dir):
        tr.write_line(f"{name}: {printable(path)}")


#: The files a person opens, in the order the end of the run names them (what: path).
OPEN_FILES = (
    ("report", REPORT_HTML),
    ("analysis", ANALYSIS_TXT),
    ("table", SUMMARY_CSV),
    ("plots", PLOTS_DIR),
    ("next sweep", REFINE_RANGE),
    ("summary", SUMMARY_JSON),
    ("for machines", ANALYSIS_JSON),
)


def files_to_open(sweep_dir: Path) -> list[tuple[str, str]]:
    """Every file of ``OPEN_FILES`` the sweep wrote, with its path (plots: the folder and the count)."""
    out = []
    for what, name in OPEN_FILES:
        path = sweep_dir / name
        if name == PLOTS_DIR:
            pngs = sorted(path.glob("*.png")) if path.is_dir() else []
            if pngs:
                out.append((what, f"{path}/ ({len(pngs)} PNG file{'s' if len(pngs) != 1 else ''})"))
        elif path.is_file():
            suffix = f" (run it: pytest --range-config={path})" if name == REFINE_RANGE else ""
            out.append((what, f"{path}{suffix}"))
    return out
