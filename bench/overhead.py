"""Harness overhead per trial: a pytest sweep of N trivial trials against a plain Python loop.

A tiny plugin is written into a temp dir: ``conftest.py`` declares two symbols
(``CONFIG_TRIVIAL_INDEX``, ``CONFIG_TRIVIAL_WORK``) through ``pytest_sweep_declare_symbols`` and
answers ``pytest_sweep_make_trainer`` with a trainer whose ``run(trial)`` does a small real
computation (a sum of sines) and returns ``{"test_acc": ...}``.  Three things are timed, each in a
fresh process of this interpreter:

* ``pytest --range-config=range -q -p no:cacheprovider`` (the whole sweep: start-up, collection,
  N trials with their files, the summary and the reporters),
* the same with ``--collect-only`` (start-up and collection),
* a plain loop calling the same trainer N times (timed inside its process).

Overhead per trial = (sweep − collect-only) / N − loop / N.

    .venv/bin/python bench/overhead.py              # N = 200, 3 repeats
    .venv/bin/python bench/overhead.py --profile    # also cProfile the sweep, print hot spots (stderr)
    .venv/bin/python bench/overhead.py --smoke      # N = 10, once: seconds (the suite runs it)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import _common as c

GOAL_MS = 20.0
#: ``--smoke``: ten trials, once.
SMOKE: dict[str, object] = {"trials": 10, "repeats": 1}

TRAINER = '''\
"""A trainer that trains nothing: a sum of sines, so that each trial does a little real work."""
import math


class TrivialTrainer:
    def run(self, trial, ctx):
        n, k = int(trial["CONFIG_TRIVIAL_WORK"]), int(trial["CONFIG_TRIVIAL_INDEX"])
        total = math.fsum(math.sin(i * 0.001 + k) for i in range(n))
        return {"test_acc": 50.0 + 50.0 * math.tanh(total / n), "epochs_run": 1}
'''

CONFTEST = '''\
"""bench/overhead.py: a third-party trainer plugin, written the way a user would."""
import pytest

from pytest_sweep.matrix import Symbol
from trivial import TrivialTrainer


def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_TRIVIAL_INDEX", "int", 1, "Which trivial trial", low=1),
        Symbol("CONFIG_TRIVIAL_WORK", "int", 2000, "Sines summed per trial", low=1),
    ]


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return TrivialTrainer()
'''

LOOP = '''\
"""The baseline: the same trainer called in a plain loop, timed inside this process."""
import sys
import time

from trivial import TrivialTrainer

n, work = int(sys.argv[1]), int(sys.argv[2])
trainer = TrivialTrainer()
trials = [{"CONFIG_TRIVIAL_INDEX": i, "CONFIG_TRIVIAL_WORK": work} for i in range(1, n + 1)]
started = time.perf_counter()
results = [trainer.run(t, None) for t in trials]
print(f"{time.perf_counter() - started:.6f}")
assert len(results) == n
'''


def write_plugin(work: Path, n: int, units: int) -> None:
    (work / "trivial.py").write_text(TRAINER, encoding="utf-8")
    (work / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (work / "loop.py").write_text(LOOP, encoding="utf-8")
    (work / "range").write_text(f"CONFIG_TRIVIAL_INDEX=1:1:{n}\nCONFIG_TRIVIAL_WORK={units}\n", encoding="utf-8")


def sweep_cmd(py: str, n: int, collect_only: bool) -> list[str]:
    cmd = [
        py,
        "-m",
        "pytest",
        "--range-config=range",
        "-q",
        "-p",
        "no:cacheprovider",
        "--sweep-output=out",
        f"--sweep-max-combinations={max(n, 1)}",
        *c.plugin_args(),
    ]
    return [*cmd, "--collect-only"] if collect_only else cmd


_PASSED = re.compile(r"(\d+) passed")


def profile(py: str, work: Path, n: int, top: int) -> str:
    prof = work / "sweep.prof"
    cmd = [py, "-m", "cProfile", "-o", str(prof), *sweep_cmd(py, n, False)[1:]]
    run = c.timed(cmd, work)
    return c.profile_report(prof, f"the {n}-trial sweep", run, top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--trials", type=int, default=200)
    ap.add_argument("--work", type=int, default=2000, help="sines summed per trial (the trial's real work)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each; best and median reported")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--profile", action="store_true", help="also cProfile the sweep; hot spots go to stderr")
    ap.add_argument("--top", type=int, default=25)
    args = c.parse_args(ap, argv, SMOKE)
    n = args.trials

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        work = Path(tmp)
        write_plugin(work, n, args.work)
        full, collect, loop = c.Samples("sweep"), c.Samples("collect"), c.Samples("loop")
        for rep in range(args.repeats):
            run = c.timed([args.python, "loop.py", str(n), str(args.work)], work)
            loop.add(float(run.stdout.strip().splitlines()[-1]), run.load)
            run = c.timed(sweep_cmd(args.python, n, True), work)
            collect.add(run.seconds, run.load)
            run = c.timed(sweep_cmd(args.python, n, False), work)
            passed = _PASSED.findall(run.stdout)
            if not passed or int(passed[-1]) != n:
                raise RuntimeError(f"expected {n} passed trials:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
            full.add(run.seconds, run.load)
            c.log(
                f"rep {rep + 1}: loop {loop.seconds[-1]:.3f} s, collect-only {collect.seconds[-1]:.2f} s, "
                f"sweep {full.seconds[-1]:.2f} s"
            )
        hot = profile(args.python, work, n, args.top) if args.profile else ""

    def per_trial_ms(f: float, col: float, lp: float) -> float:
        return ((f - col) - lp) / n * 1e3

    best = per_trial_ms(full.best, collect.best, loop.best)
    med = per_trial_ms(full.median, collect.median, loop.median)
    rows = [
        [
            "plain loop, N calls (in-process)",
            f"{loop.best:.3f}",
            f"{loop.median:.3f}",
            loop.all(3),
            f"{loop.best / n * 1e3:.2f}",
            loop.load_range(),
        ],
        [
            "`pytest ... --collect-only` (start-up + collection)",
            f"{collect.best:.2f}",
            f"{collect.median:.2f}",
            collect.all(),
            "—",
            collect.load_range(),
        ],
        [
            "`pytest --range-config=range -q -p no:cacheprovider`",
            f"{full.best:.2f}",
            f"{full.median:.2f}",
            full.all(),
            f"{(full.best - collect.best) / n * 1e3:.2f}",
            full.load_range(),
        ],
    ]
    body = "\n".join(
        [
            f"A sweep of N = {n} trivial trials (a `conftest.py` plugin: `pytest_sweep_declare_symbols` + "
            f"`pytest_sweep_make_trainer`; each `run(trial)` sums {args.work} sines) against a plain Python loop "
            f"calling the same trainer. {args.repeats} repeats, interleaved. Per trial of the sweep = "
            "(sweep − collect-only) / N.",
            "",
            c.table(["run", "best s", "median s", "all runs s", "ms per trial (best)", "load (1 min)"], rows),
            "",
            f"Harness overhead per trial = ((sweep − collect-only) − loop) / N: **{best:.2f} ms** from the best "
            f"runs ({med:.2f} ms from the medians); the trial's own work is {loop.best / n * 1e3:.2f} ms.",
            "",
            c.SMOKE_NOTE if args.smoke else f"Goal: under {GOAL_MS:g} ms per trial — {c.verdict(best < GOAL_MS)}.",
        ]
    )
    print(c.block("Harness overhead per trial (bench/overhead.py)", c.script_command(), body))
    if hot:
        print(hot, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
