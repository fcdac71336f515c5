"""Rendering of a sweep: the analysis text (the guide's layout) and the ranked table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from tabulate import tabulate

from pytest_sweep.matrix.records import ranked
from pytest_sweep.matrix.trial import short_key

RULE = "=" * 60
THIN = "-" * 40
TOP_N = 10


def _pct(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}%"


def _sparsity(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def _time(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f}s"


def labeller(records: list[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """``config_file``, prefixed with where it came from when two records share a name.

    One run may sweep several range files (or generated folders) whose trials share names
    (``config_001`` in each); then ``state.rc:config_001`` tells them apart.  A generated
    config is named after its folder (``sweep_configs:config_001``).
    """
    names = [r["config_file"] for r in records]
    if len(set(names)) == len(names):
        return lambda rec: str(rec["config_file"])

    def label(rec: dict[str, Any]) -> str:
        source = PurePath(str(rec.get("source") or ""))
        origin = source.parent.name if source.name == rec["config_file"] else source.name
        return f"{origin}:{rec['config_file']}" if origin else str(rec["config_file"])

    return label


def _hyperparameters(record: dict[str, Any]) -> list[str]:
    """Swept parameters first (what the sweep chose), then the fixed ones."""
    config: dict[str, str] = record.get("config") or {}
    swept = list(record.get("swept") or [])
    fixed = [k for k in config if k not in swept]
    return [f"  {k}={config.get(k, record.get(k))}" for k in swept + fixed]


def render_analysis(records: list[dict[str, Any]], interrupted: bool = False, running: bool = False) -> str:
    counts = {s: sum(1 for r in records if r["status"] == s) for s in ("passed", "failed", "skipped", "not_run")}
    reused = sum(1 for r in records if r.get("reused"))
    tested = counts["passed"] + counts["failed"]
    label = labeller(records)
    out = ["Hyperparameter Sweep Analysis", RULE, "", f"Total configurations tested: {tested}"]
    out.append(
        f"Passed: {counts['passed']} | Failed: {counts['failed']} | Skipped: {counts['skipped']}"
        f" | Not run: {counts['not_run']}" + (f" | Reused: {reused}" if reused else "")
    )
    if interrupted:
        out.append("The sweep was interrupted: trials marked 'not run' did not finish.")
    if running:
        out.append("The sweep was still running when this file was written: trials marked 'not run' had not finished.")
    out.append("")
    top = ranked(records)
    if top:
        best = top[0]
        out += [
            "BEST CONFIGURATION:",
            THIN,
            f"Config file: {label(best)}",
            f"Test Accuracy: {_pct(best['test_acc'])}",
            f"Final Sparsity: {_sparsity(best['final_sparsity'])}",
            f"Training Time: {_time(best['training_time'])}",
            "",
            "Hyperparameters:",
            *_hyperparameters(best),
            "",
            RULE,
            f"TOP {TOP_N} CONFIGURATIONS:",
            THIN,
            "",
        ]
        for rank, rec in enumerate(top[:TOP_N], 1):
            out.append(f"{rank}. {label(rec)}")
            out.append(
                f"   Test Acc: {_pct(rec['test_acc'])} | Sparsity: {_sparsity(rec['final_sparsity'])}"
                f" | Time: {_time(rec['training_time'])}"
            )
    else:
        out.append("No configuration finished, so there is no best one.")
    failed = [r for r in records if r["status"] == "failed"]
    out += ["", RULE, f"FAILED TESTS: {len(failed)}", THIN]
    for rec in failed:
        out.append(f"{label(rec)}: {rec.get('error') or 'unknown error'}")
    skipped = [r for r in records if r["status"] in ("skipped", "not_run")]
    if skipped:
        out += ["", RULE, f"SKIPPED OR NOT RUN: {len(skipped)}", THIN]
        for rec in skipped:
            out.append(f"{label(rec)} ({rec['status']}): {rec.get('error') or ''}".rstrip())
    return "\n".join(out) + "\n"


def render_table(records: list[dict[str, Any]], limit: int = TOP_N) -> str:
    """The ranked table printed at the end of a run (tabulate)."""
    top = ranked(records)
    swept = list(dict.fromkeys(k for r in records for k in (r.get("swept") or [])))
    label = labeller(records)
    rows = []
    for rank, rec in enumerate(top[:limit], 1):
        rows.append(
            [
                rank,
                label(rec),
                f"{float(rec['test_acc']):.2f}",
                _sparsity(rec["final_sparsity"]),
                _time(rec["training_time"]),
            ]
            + [rec.get("config", {}).get(k, "") for k in swept]
        )
    headers = ["rank", "config", "test_acc %", "sparsity", "time"] + [short_key(k) for k in swept]
    return str(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
