"""Rendering of a sweep: the analysis text (the guide's layout) and the ranked table.

When ``CONFIG_SEED`` is swept, trials that differ only in their seed are one configuration
(:mod:`~pytest_sweep.plugins.replicates`): the best configuration, the top 10 and the table show
the mean +- standard deviation over its seeds.  "Best" is a set (:mod:`~pytest_sweep.plugins.noise`):
the best configuration and every one the data cannot tell from it, with the test or the
resolution that decided it.  Other plugins add sections at the end (``pytest_sweep_analysis_sections``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from tabulate import tabulate

from pytest_sweep.matrix.errors import printable
from pytest_sweep.matrix.records import STATUSES, ranked, stopped
from pytest_sweep.matrix.trial import short_key
from pytest_sweep.plugins import stats
from pytest_sweep.plugins.noise import BestSet, Noise, best_set, focus, model
from pytest_sweep.plugins.replicates import (
    SEED_KEY,
    Configuration,
    configurations,
    ranked_configurations,
    seed_swept,
)

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
        return lambda rec: printable(str(rec["config_file"]))

    def label(rec: dict[str, Any]) -> str:
        source = PurePath(str(rec.get("source") or ""))
        origin = source.parent.name if source.name == rec["config_file"] else source.name
        return printable(f"{origin}:{rec['config_file']}" if origin else str(rec["config_file"]))

    return label


def _hyperparameters(record: dict[str, Any]) -> list[str]:
    """Swept parameters first (what the sweep chose), then the fixed ones."""
    config: dict[str, str] = record.get("config") or {}
    swept = list(record.get("swept") or [])
    fixed = [k for k in config if k not in swept]
    return [f"  {printable(str(k))}={printable(str(config.get(k, record.get(k))))}" for k in swept + fixed]


def _mean_sd(config: Configuration) -> str:
    sd = config.sd
    spread = f" ± {sd:.2f}" if sd is not None else ""
    return f"{config.mean:.2f}{spread}% (n={config.n})"


def _interval(config: Configuration) -> str:
    """``; 95% bootstrap interval 88.40-88.60`` for a configuration with two or more seeds."""
    if config.n < 2:
        return ""
    found = stats.bootstrap_mean([float(r["test_acc"]) for r in config.passed])
    return f"; 95% bootstrap interval of the mean {found[0]:.2f}-{found[1]:.2f}" if found else ""


def tie_lines(bests: BestSet) -> list[str]:
    """The tie set in words: who is tied with the best, who is told apart, and on what basis."""
    if bests.best is None:
        return []
    ties, apart = bests.ties, bests.excluded
    out = [f"Tie set ({bests.basis}): {', '.join(bests.names())}"]
    if ties:
        out.append(f"Not distinguishable from {bests.best.label} ({len(ties)}):")
        out += [f"  {c.config.label}: {c.why}" for c in ties[:TOP_N]]
        if len(ties) > TOP_N:
            out.append(f"  ... and {len(ties) - TOP_N} more (sweep_analysis.json lists every one)")
    elif apart:
        out.append(f"Every other configuration is told apart from {bests.best.label}.")
    if apart:
        out.append(f"Told apart, worse ({len(apart)}); the nearest: {apart[0].config.label}: {apart[0].why}")
    return out


def _mark(bests: BestSet, label: str) -> str:
    if bests.best is not None and label == bests.best.label:
        return "  [best]"
    return "  [tied with the best]" if label in {c.config.label for c in bests.ties} else ""


def _replicate_best_and_top(
    records: list[dict[str, Any]], label: Callable[[dict[str, Any]], str], noise: Noise
) -> list[str]:
    """Best configuration and top 10 by the mean over seeds, then the tie set."""
    configs = configurations(records, label)
    top = ranked_configurations(configs)
    if not top:
        return ["No configuration finished, so there is no best one."]
    bests = best_set(records, noise, label)
    best = top[0]
    seeds = ", ".join(best.seeds)
    out = [
        f"BEST CONFIGURATION (mean over {len(best.trials)} seeds) AND ITS TIES:",
        THIN,
        noise.describe(),
        f"Config files: {', '.join(label(r) for r in best.trials)} ({SEED_KEY}={seeds})",
        f"Test Accuracy: {_mean_sd(best)}{_interval(best)}",
        f"Final Sparsity: {_sparsity(best.mean_of('final_sparsity'))}",
        f"Training Time: {_time(best.mean_of('training_time'))}",
        "",
        "Hyperparameters:",
        *[line for line in _hyperparameters(best.first) if not line.startswith(f"  {SEED_KEY}=")],
        "",
        *tie_lines(bests),
        "",
        RULE,
        f"TOP {TOP_N} CONFIGURATIONS (mean ± sd over seeds):",
        THIN,
        "",
    ]
    for rank, config in enumerate(top[:TOP_N], 1):
        out.append(
            f"{rank}. {config.label} (seeds {', '.join(config.seeds)}: {', '.join(config.names)}){_mark(bests, config.label)}"
        )
        out.append(
            f"   Test Acc: {_mean_sd(config)} | Sparsity: {_sparsity(config.mean_of('final_sparsity'))}"
            f" | Time: {_time(config.mean_of('training_time'))}"
        )
    return out


def _best_and_top(records: list[dict[str, Any]], label: Callable[[dict[str, Any]], str], noise: Noise) -> list[str]:
    top = ranked(records)
    if not top:
        return ["No configuration finished, so there is no best one."]
    best = top[0]
    bests = best_set(records, noise, label)
    out = [
        "BEST CONFIGURATION AND ITS TIES:",
        THIN,
        noise.describe(),
        f"Config file: {label(best)}",
        f"Test Accuracy: {_pct(best['test_acc'])}",
        f"Final Sparsity: {_sparsity(best['final_sparsity'])}",
        f"Training Time: {_time(best['training_time'])}",
        "",
        "Hyperparameters:",
        *_hyperparameters(best),
        "",
        *tie_lines(bests),
        "",
        RULE,
        f"TOP {TOP_N} CONFIGURATIONS:",
        THIN,
        "",
    ]
    for rank, rec in enumerate(top[:TOP_N], 1):
        out.append(f"{rank}. {label(rec)}{_mark(bests, label(rec))}")
        out.append(
            f"   Test Acc: {_pct(rec['test_acc'])} | Sparsity: {_sparsity(rec['final_sparsity'])}"
            f" | Time: {_time(rec['training_time'])}"
        )
    return out


def render_analysis(
    records: list[dict[str, Any]],
    interrupted: bool = False,
    running: bool = False,
    sections: list[str] | None = None,
    threshold: float | None = None,
) -> str:
    """The guide's analysis layout; ``sections`` (other plugins' text) follow at the end.

    :param threshold: ``--sweep-importance-threshold`` (None: not given), for the noise model.
    """
    counts = {s: sum(1 for r in records if r["status"] == s) for s in STATUSES}
    reused = sum(1 for r in records if r.get("reused"))
    tested = counts["passed"] + counts["stopped"] + counts["failed"]
    label = labeller(records)
    replicates = seed_swept(records)
    if replicates:
        n_configs = len(configurations([r for r in records if r["status"] in ("passed", "failed")]))
        total = f"Total configurations tested: {n_configs} ({tested} trials: replicates over {SEED_KEY})"
    else:
        total = f"Total configurations tested: {tested}"
    out = ["Hyperparameter Sweep Analysis", RULE, "", total]
    out.append(
        f"Passed: {counts['passed']}"
        + (f" | Stopped early: {counts['stopped']}" if counts["stopped"] else "")
        + f" | Failed: {counts['failed']} | Skipped: {counts['skipped']}"
        f" | Not run: {counts['not_run']}" + (f" | Reused: {reused}" if reused else "")
    )
    if interrupted:
        out.append("The sweep was interrupted: trials marked 'not run' did not finish.")
    if running:
        out.append("The sweep was still running when this file was written: trials marked 'not run' had not finished.")
    out.append("")
    scoped, _ = focus(records)
    noise = model(scoped, threshold)
    out += _replicate_best_and_top(records, label, noise) if replicates else _best_and_top(records, label, noise)
    out += stopped_section(records, label)
    failed = [r for r in records if r["status"] == "failed"]
    out += ["", RULE, f"FAILED TESTS: {len(failed)}", THIN]
    for rec in failed:
        out.append(f"{label(rec)}: {printable(str(rec.get('error') or 'unknown error'))}")
    skipped = [r for r in records if r["status"] in ("skipped", "not_run")]
    if skipped:
        out += ["", RULE, f"SKIPPED OR NOT RUN: {len(skipped)}", THIN]
        for rec in skipped:
            out.append(f"{label(rec)} ({rec['status']}): {printable(str(rec.get('error') or ''))}".rstrip())
    for section in sections or ():
        out += ["", RULE, section.rstrip("\n")]
    # every line as a text file shows it: no control character from a section or a value
    return "\n".join(printable(line) for text in out for line in text.split("\n")) + "\n"


def stopped_lines(records: list[dict[str, Any]], label: Callable[[dict[str, Any]], str]) -> list[str]:
    """One line per trial a scheduler stopped early, best last metric first."""
    out = []
    for rec in stopped(records):
        acc = rec.get("test_acc")
        last = f"{float(acc):.2f}%" if acc is not None else "n/a"
        n = rec.get("epochs_run")
        epochs = f"{n} epoch{'' if n == 1 else 's'}"
        out.append(f"{label(rec)}: {last} after {epochs}; {printable(str(rec.get('stop_reason') or 'stopped'))}")
    return out


def stopped_section(records: list[dict[str, Any]], label: Callable[[dict[str, Any]], str]) -> list[str]:
    """The analysis section of the stopped trials (none when no trial stopped)."""
    lines = stopped_lines(records, label)
    if not lines:
        return []
    return ["", RULE, f"STOPPED EARLY (not ranked; last test accuracy): {len(lines)}", THIN, *lines]


def render_table(records: list[dict[str, Any]], limit: int = TOP_N) -> str:
    """The ranked table printed at the end of a run (tabulate)."""
    swept = list(dict.fromkeys(k for r in records for k in (r.get("swept") or [])))
    label = labeller(records)
    if seed_swept(records):
        return _replicate_table(records, [k for k in swept if k != SEED_KEY], label, limit)
    top = ranked(records)
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
            + [printable(str(rec.get("config", {}).get(k, ""))) for k in swept]
        )
    headers = ["rank", "config", "test_acc %", "sparsity", "time"] + [printable(short_key(k)) for k in swept]
    return str(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))


def _replicate_table(
    records: list[dict[str, Any]], swept: list[str], label: Callable[[dict[str, Any]], str], limit: int
) -> str:
    """One row per configuration: mean and sd of its seeds' accuracies, n the seeds that passed."""
    rows = []
    for rank, config in enumerate(ranked_configurations(configurations(records, label))[:limit], 1):
        sd = config.sd
        rows.append(
            [
                rank,
                config.label,
                f"{config.mean:.2f}",
                "n/a" if sd is None else f"{sd:.2f}",
                config.n,
                _sparsity(config.mean_of("final_sparsity")),
                _time(config.mean_of("training_time")),
            ]
            + [printable(str(config.first.get("config", {}).get(k, ""))) for k in swept]
        )
    headers = ["rank", "config", "test_acc %", "± sd", "n", "sparsity", "time"] + [
        printable(short_key(k)) for k in swept
    ]
    return str(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
