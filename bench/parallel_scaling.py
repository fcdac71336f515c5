"""Parallel scaling: an 8-trial LeNet-5/digits sweep with ``-n 1`` against ``-n 2`` (pytest-xdist).

Wall time of the whole ``pytest`` command (start-up, collection, worker start, torch import,
training, summary), each in a fresh process, repeated and interleaved.  Each xdist worker gets
``cores // workers`` torch threads from ``plugins/gpu.py`` (``OMP_NUM_THREADS``); the benchmark
removes any ``OMP_NUM_THREADS`` of its own environment so that the plugin decides, and a small
observer plugin in the temp dir logs the thread count each trial really trained with.  A serial
run (no ``-n``, torch's own default thread count) is measured for reference.

    .venv/bin/python bench/parallel_scaling.py              # 3 repeats, 12 epochs per trial
    .venv/bin/python bench/parallel_scaling.py --epochs 24  # longer trials
    .venv/bin/python bench/parallel_scaling.py --smoke      # 2 trials of 1 epoch, once: the suite runs it

The headline ratio is the median of the per-repeat ratios (a repeat runs every mode back to
back, so a burst of load from other work hits them alike); the ratio of the best runs is shown
too.  Each pytest process pays a fixed start-up (pytest, xdist workers, torch and scikit-learn
imports, the digits load) that the table makes visible as wall time minus training time.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import _common as c

GOAL_RATIO = 0.6
#: ``--smoke``: the three modes on 2 trials (one per ``-n 2`` worker) of 1 epoch, once, no control run.
SMOKE: dict[str, object] = {"trials": 2, "epochs": 1, "repeats": 1, "no_control": True}
#: Trials -> (learning rates, weight decays) of the range config.
GRIDS = {8: ("0.001|0.002|0.003|0.004", "0.0|0.05"), 2: ("0.001|0.002", "0.0")}

OBSERVER = '''\
"""bench/parallel_scaling.py: log the torch thread count each trial trains with."""
import os


def pytest_sweep_trial_started(trial):
    import torch

    trial.log(f"bench-threads {torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
              f",MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')}")
'''


def range_config(epochs: int, trials: int = 8) -> str:
    lrs, wds = GRIDS[trials]
    return "\n".join(
        [
            f"# {trials} trials for bench/parallel_scaling.py",
            'CONFIG_MODEL="lenet5"',
            'CONFIG_DATASET="digits"',
            'CONFIG_DEVICE="cpu"',
            'CONFIG_OPTIMIZER="adamw"',
            f"CONFIG_NUM_EPOCHS={epochs}",
            "CONFIG_BATCH_SIZE=64",
            f"CONFIG_LEARNING_RATE={lrs}",
            f"CONFIG_WEIGHT_DECAY={wds}",
            "",
        ]
    )


#: mode -> (extra pytest arguments, OMP_NUM_THREADS forced from outside or None)
MODES: dict[str, tuple[list[str], str | None]] = {
    "serial": ([], None),
    "-n 1": (["-n", "1"], None),
    "-n 2": (["-n", "2"], None),
}
#: The control: one worker held to one thread, to tell parallelism from thread contention.
#: Both variables are set: torch takes MKL_NUM_THREADS over OMP_NUM_THREADS, and plugins/gpu.py
#: fills in whichever of the two is missing with cores // workers.
CONTROL = "-n 1, OMP_NUM_THREADS=MKL_NUM_THREADS=1"
_THREADS = re.compile(r"bench-threads (\d+) OMP_NUM_THREADS=(\S+)")


def sweep_cmd(py: str, out: str, extra: list[str]) -> list[str]:
    return [
        py,
        "-m",
        "pytest",
        "--range-config=range",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--sweep-output={out}",
        *extra,
        *c.plugin_args(),
    ]


def inspect(out: Path, trials: int) -> tuple[list[float], set[str]]:
    """Per-trial training times and the thread counts seen, from the sweep folder just written."""
    folders = sorted(out.glob("sweep_*"))
    if not folders:
        raise RuntimeError(f"no sweep folder under {out}")
    records = json.loads((folders[-1] / "sweep_summary.json").read_text(encoding="utf-8"))
    bad = [r for r in records if r["status"] != "passed"]
    if len(records) != trials or bad:
        raise RuntimeError(
            f"expected {trials} passed trials, got {[(r['config_file'], r['status'], r['error']) for r in records]}"
        )
    threads = set()
    for log in folders[-1].glob("*/output.log"):
        for found in _THREADS.findall(log.read_text(encoding="utf-8")):
            threads.add(f"{found[0]} (OMP_NUM_THREADS={found[1]})")
    return [float(r["training_time"]) for r in records], threads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12, help="epochs per trial (12: about 1.5 s a trial on 1 thread)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trials", type=int, choices=sorted(GRIDS), default=8, help="trials in the sweep")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument(
        "--no-control",
        action="store_true",
        help=f"skip the control run ({CONTROL}: is the speed-up parallelism or fewer threads?)",
    )
    args = c.parse_args(ap, argv, SMOKE)
    modes = dict(MODES)
    if not args.no_control:
        modes[CONTROL] = (["-n", "1"], "1")

    samples = {m: c.Samples(m) for m in modes}
    trial_times: dict[str, list[float]] = {m: [] for m in modes}
    threads: dict[str, set[str]] = {m: set() for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        work = Path(tmp)
        (work / "range").write_text(range_config(args.epochs, args.trials), encoding="utf-8")
        (work / "conftest.py").write_text(OBSERVER, encoding="utf-8")
        for rep in range(args.repeats):
            order = list(modes) if rep % 2 == 0 else list(reversed(modes))
            for i, mode in enumerate(order):
                out = f"out-{rep}-{i}"
                extra, omp = modes[mode]
                env = c.child_env({"OMP_NUM_THREADS": omp, "MKL_NUM_THREADS": omp} if omp else None)
                run = c.timed(sweep_cmd(args.python, out, extra), work, env=env, timeout=1800)
                times, seen = inspect(work / out, args.trials)
                samples[mode].add(run.seconds, run.load)
                trial_times[mode] += times
                threads[mode] |= seen
                c.log(
                    f"rep {rep + 1}: {mode}: {run.seconds:.2f} s, mean trial {sum(times) / len(times):.2f} s, "
                    f"threads {sorted(seen)}"
                )

    one, two, ser = samples["-n 1"], samples["-n 2"], samples["serial"]
    rows = []
    for mode in modes:
        s = samples[mode]
        tt = trial_times[mode]
        workers = 2 if mode == "-n 2" else 1
        fixed = statistics.median(
            w - sum(tt[i * args.trials : (i + 1) * args.trials]) / workers for i, w in enumerate(s.seconds)
        )
        rows.append(
            [
                f"`{mode}`" if mode != "serial" else "serial (no `-n`)",
                f"{s.best:.2f}",
                f"{s.median:.2f}",
                s.all(),
                f"{sum(tt) / len(tt):.2f}",
                f"{fixed:.1f}",
                ", ".join(sorted(threads[mode])) or "?",
                s.load_range(),
            ]
        )
    ratio_best = two.best / one.best
    paired = [b / a for a, b in zip(one.seconds, two.seconds, strict=False)]
    ratio = statistics.median(paired)
    body = "\n".join(
        [
            f"{args.trials} trials (LeNet-5 on digits, {args.epochs} epochs, batch 64; learning rate × weight decay), the whole "
            f"`python -m pytest --range-config=range -q -p no:cacheprovider [-n K]` timed, {args.repeats} repeats "
            "(order alternated). Torch threads as logged by each trial.",
            "",
            c.table(
                [
                    "run",
                    "best s",
                    "median s",
                    "all runs s",
                    "mean trial s",
                    "fixed s ≈ wall − Σ trial ÷ workers (median)",
                    "torch threads",
                    "load (1 min)",
                ],
                rows,
            ),
            "",
            f"Wall-time ratio `-n 2` / `-n 1`: **{ratio:.2f}** (median of the per-repeat ratios "
            f"{', '.join(f'{x:.2f}' for x in paired)}; best runs {ratio_best:.2f}). Best runs: `-n 2` / serial "
            f"{two.best / ser.best:.2f}; `-n 1` / serial {one.best / ser.best:.2f}.",
            "",
            c.SMOKE_NOTE if args.smoke else f"Goal: ratio ≤ {GOAL_RATIO} — {c.verdict(ratio <= GOAL_RATIO)}.",
        ]
    )
    if CONTROL in samples:
        ctl = samples[CONTROL]
        body += (
            f"\n\nControl (`{CONTROL}`, the same one worker held to one thread): `-n 2` / control = "
            f"{two.best / ctl.best:.2f}; `-n 1` / control = {one.best / ctl.best:.2f}. A `-n 1` / control "
            "ratio well above 1 means the one-worker run lost time to its second torch thread (contention "
            "with other load on the cores), which flatters the `-n 2` / `-n 1` ratio."
        )
    print(c.block("Parallel scaling (bench/parallel_scaling.py)", c.script_command(), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
