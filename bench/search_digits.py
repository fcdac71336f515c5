"""Samplers on a trained grid: trials ``random``, ``qmc`` and ``tpe`` need on the digits LeNet-5 sweep.

The grid of ``bench/asha.py`` (LeNet-5 on the bundled digits, AdamW, 27 epochs; learning rate
1e-5 .. 1e-1 x weight decay 0 | 0.01 | 0.1 x beta1 0.5 | 0.9: 30 configurations) is trained once,
for real, by a pytest sweep.  Each configuration's result is deterministic (one training seed), so a
sampler that proposes a configuration would get exactly that grid result: each sampler then drives
the same :class:`JournalSearchStore` the items use (ask, duplicates drawn again, tell), answered
from the trained grid, and the count of trials until the best so far is within 0.5 pp of the
grid's best is taken, for ten sampler seeds.  The median is reported against the grid's 30.

    .venv/bin/python bench/search_digits.py                     # train the grid, then ten seeds
    .venv/bin/python bench/search_digits.py --summary FILE      # reuse a trained grid's sweep_summary.json
    .venv/bin/python bench/search_digits.py --smoke             # 4 configurations, 1 epoch (the suite runs this)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c
from asha import RANGE

from pytest_sweep.matrix.objectives import Objective
from pytest_sweep.matrix.rangeconfig import parse_text
from pytest_sweep.matrix.space import SearchSpace
from pytest_sweep.matrix.study import JournalSearchStore, SeedResult

WITHIN = 0.5
SMOKE_RANGE = """CONFIG_MODEL="lenet5"
CONFIG_DATASET="digits"
CONFIG_DEVICE="cpu"
CONFIG_OPTIMIZER="adamw"
CONFIG_NUM_EPOCHS=1
CONFIG_BATCH_SIZE=64
CONFIG_LEARNING_RATE=0.001|0.01
CONFIG_WEIGHT_DECAY=0|0.1
"""


def train_grid(text: str, workers: int) -> tuple[Path, c.Run]:
    """Run the grid as a pytest sweep; the folder holding its ``sweep_summary.json``."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_search_digits_"))
    (tmp / "sweep.rc").write_text(text, encoding="utf-8")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *c.plugin_args()]
    if workers > 1:
        cmd += ["-n", str(workers)] if c.installed() else ["-p", "xdist.plugin", "-n", str(workers)]
    cmd += ["--range-config", "sweep.rc", f"--sweep-output={tmp / 'out'}", "--sweep-progress=none", "-q"]
    c.log(f"training the grid: {c.shell(cmd)}")
    run = c.timed(cmd, cwd=tmp, env=c.child_env({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, True), timeout=3600)
    return sorted((tmp / "out").glob("sweep_*"))[-1] / "sweep_summary.json", run


def _names(space: SearchSpace) -> list[str]:
    return [d.key for d in space.dims]


def landscape(summary: Path, space: SearchSpace) -> dict[str, float]:
    """The trained grid: each configuration's swept values (as the study writes them) -> test_acc."""
    records = json.loads(summary.read_text(encoding="utf-8"))
    table: dict[str, float] = {}
    for record in records:
        if record.get("status") != "passed" or record.get("test_acc") is None:
            raise SystemExit(f"{summary}: {record.get('config_file')} did not pass ({record.get('error')})")
        raw = {name: record["config"][name] for name in _names(space)}
        table[json.dumps(raw, sort_keys=True)] = float(record["test_acc"])
    if len(table) != int(space.size):
        raise SystemExit(f"{summary} holds {len(table)} configurations, the space has {int(space.size)}")
    return table


def trials_needed(space: SearchSpace, table: dict[str, float], search: str, seed: int, budget: int) -> int | None:
    """Items until the best so far is within 0.5 pp of the grid's best (None: not within ``budget``)."""
    goal = max(table.values()) - WITHIN
    with tempfile.TemporaryDirectory() as tmp:
        store = JournalSearchStore(
            Path(tmp), space, search, seed=seed, objectives=(Objective("test_acc", "max"),), trials=budget
        )
        for i in range(1, budget + 1):
            prop = store.propose(f"trial_{i:03d}", "")
            acc = table[json.dumps({n: prop.raw[n] for n in _names(space)}, sort_keys=True)]
            if prop.duplicate_of is None:
                store.report(f"trial_{i:03d}", "", prop.number, SeedResult("passed", {"test_acc": acc}))
            if acc >= goal:
                return i
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="4 configurations, 1 epoch, one seed")
    parser.add_argument("--summary", type=Path, help="a trained grid's sweep_summary.json (skip the training)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("-n", dest="workers", type=int, default=1, help="xdist workers for the grid")
    args = parser.parse_args()
    text = SMOKE_RANGE if args.smoke else RANGE
    seeds = 1 if args.smoke else args.seeds
    space = SearchSpace.from_range(parse_text(text))
    run = None
    summary = args.summary
    if summary is None:
        summary, run = train_grid(text, args.workers)
    table = landscape(summary, space)
    size = len(table)
    best = max(table.values())
    results: dict[str, Any] = {
        "grid": size,
        "grid_best": best,
        "within_pp": WITHIN,
        "configurations_within": sum(v >= best - WITHIN for v in table.values()),
        "seeds": seeds,
        "summary": str(summary),
    }
    rows = []
    for search in ("random", "qmc", "tpe"):
        needed = [trials_needed(space, table, search, seed, size) for seed in range(seeds)]
        median = statistics.median(n if n is not None else size + 1 for n in needed)
        results[search] = {"needed": needed, "median": median, "median_pct_of_grid": round(100 * median / size, 1)}
        rows.append([search, ", ".join(str(n) for n in needed), median, f"{100 * median / size:.0f}%"])
        print(search, json.dumps(results[search]), file=sys.stderr, flush=True)
    body = (
        f"{size} configurations; the grid's best {best:.2f}%, {results['configurations_within']} of them "
        f"within {WITHIN} pp of it"
        + (f"; training the grid took {run.seconds:.0f} s at load {run.load}" if run else "")
        + ".\n\n"
        + c.table(["sampler", f"trials needed, seeds 0..{seeds - 1}", "median", "of the grid"], rows)
    )
    print(c.block("Samplers on the digits grid (bench/search_digits.py)", c.script_command(), body), file=sys.stderr)
    print(json.dumps(results))
    if args.smoke and args.summary is None:
        shutil.rmtree(summary.parents[2], ignore_errors=True)


if __name__ == "__main__":
    main()
