"""Built-in reporters: ``sweep_summary.json``, ``sweep_analysis.txt`` and the terminal table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import printable
from pytest_sweep.matrix.records import SweepResult, ranked
from pytest_sweep.plugins.analysis import labeller, render_analysis, render_table, stopped_lines
from pytest_sweep.plugins.replicates import configurations, ranked_configurations, seed_swept

SUMMARY_JSON = "sweep_summary.json"
ANALYSIS_TXT = "sweep_analysis.txt"
_RESULT = pytest.StashKey[SweepResult]()
#: The final summary could not be written (the controller has said why).
_NOT_WRITTEN = pytest.StashKey[bool]()


def _best_line(records: list[dict[str, Any]], label: Callable[[dict[str, Any]], str]) -> str:
    if seed_swept(records):
        best = ranked_configurations(configurations(records, label))[0]
        spread = f" ± {best.sd:.2f}" if best.sd is not None else ""
        return f"best: {best.label} at {best.mean:.2f}{spread}% test accuracy (mean over {best.n} of {len(best.trials)} seeds)"
    top = ranked(records)[0]
    return f"best: {label(top)} at {float(top['test_acc']):.2f}% test accuracy"


def _write_files(config: pytest.Config, sweep: SweepResult) -> None:
    storage.write_json_atomic(storage.sweep_path(sweep.dir, SUMMARY_JSON), sweep.records)
    sections = [s for s in config.hook.pytest_sweep_analysis_sections(config=config, sweep=sweep) if s]
    storage.write_text_atomic(
        storage.sweep_path(sweep.dir, ANALYSIS_TXT),
        render_analysis(sweep.records, sweep.interrupted, sweep.running, sections),
    )


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
        tr.write_line(_best_line(sweep.records, label))
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
    tr.write_line(f"summary: {printable(str(sweep.dir / SUMMARY_JSON))}")
    tr.write_line(f"analysis: {printable(str(sweep.dir / ANALYSIS_TXT))}")
