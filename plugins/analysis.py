"""Rendering of a sweep: the analysis text (the guide's layout) and the ranked table."""
from __future__ import annotations

from typing import Any

from tabulate import tabulate

from matrix.records import ranked
from matrix.trial import short_key

RULE = "=" * 60
THIN = "-" * 40
TOP_N = 10


def _pct(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}%"


def _sparsity(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def _time(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f}s"


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
            f"Config file: {best['config_file']}",
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
            out.append(f"{rank}. {rec['config_file']}")
            out.append(
                f"   Test Acc: {_pct(rec['test_acc'])} | Sparsity: {_sparsity(rec['final_sparsity'])}"
                f" | Time: {_time(rec['training_time'])}"
            )
    else:
        out.append("No configuration finished, so there is no best one.")
    failed = [r for r in records if r["status"] == "failed"]
    out += ["", RULE, f"FAILED TESTS: {len(failed)}", THIN]
    for rec in failed:
        out.append(f"{rec['config_file']}: {rec.get('error') or 'unknown error'}")
    skipped = [r for r in records if r["status"] in ("skipped", "not_run")]
    if skipped:
        out += ["", RULE, f"SKIPPED OR NOT RUN: {len(skipped)}", THIN]
        for rec in skipped:
            out.append(f"{rec['config_file']} ({rec['status']}): {rec.get('error') or ''}".rstrip())
    return "\n".join(out) + "\n"


def render_table(records: list[dict[str, Any]], limit: int = TOP_N) -> str:
    """The ranked table printed at the end of a run (tabulate)."""
    top = ranked(records)
    swept = list(dict.fromkeys(k for r in records for k in (r.get("swept") or [])))
    rows = []
    for rank, rec in enumerate(top[:limit], 1):
        rows.append(
            [rank, rec["config_file"], f"{float(rec['test_acc']):.2f}", _sparsity(rec["final_sparsity"]),
             _time(rec["training_time"])]
            + [rec.get("config", {}).get(k, "") for k in swept]
        )
    headers = ["rank", "config", "test_acc %", "sparsity", "time"] + [short_key(k) for k in swept]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
