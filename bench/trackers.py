"""What the trackers cost: a sweep of N trials x E epochs, plain and with --sweep-tensorboard / --sweep-mlflow.

The trainer is a torch-free landscape (a few arithmetic operations per epoch, each epoch reported
through ``ctx.epoch_ended``), so the differences are the trackers' own cost.  Four runs, each a
fresh process of this interpreter, interleaved and repeated:

* ``plain``: ``pytest --range-config=range`` (the baseline; it writes ``environment.json``),
* ``tensorboard``: ``--sweep-tensorboard`` (each trial's event file, flushed after every epoch),
* ``mlflow, new store``: ``--sweep-mlflow`` into a fresh folder (import, database migrations, runs),
* ``mlflow, existing store``: ``--sweep-mlflow`` into the store the previous run created.

Each line's cost is its wall time minus the plain run's (medians); the MLflow runs also report the
controller's own MLflow seconds (the line it prints).  ``environment.json``'s ``seconds`` is the
time the controller spent recording the environment.

    .venv/bin/python bench/trackers.py                  # N = 20, E = 5, 3 repeats
    .venv/bin/python bench/trackers.py --smoke          # N = 2, E = 2, once, no existing-store run: the suite's check
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import _common as c

CONFTEST = '''\
"""bench/trackers.py: a torch-free trainer that reports its epochs."""
import math

import pytest


class Landscape:
    def run(self, trial, ctx):
        lr = trial["CONFIG_LEARNING_RATE"]
        acc = 0.0
        for epoch in range(1, trial["CONFIG_NUM_EPOCHS"] + 1):
            acc = 100 - 10 * abs(math.log10(lr) + 2) - 20 / epoch
            ctx.epoch_ended({"epoch": epoch, "test_acc": acc, "train_loss": 1 / epoch, "lr": lr})
        return {"test_acc": acc, "best_acc": acc, "final_sparsity": 0.0}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Landscape()
'''

_MLFLOW_SECONDS = re.compile(r"^mlflow: \d+ trial runs? under parent run .* \((\d+\.\d) s\)$", re.M)
_PASSED = re.compile(r"(\d+) passed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--smoke", action="store_true", help="2 trials x 2 epochs, once (checks that it runs)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.trials, args.epochs, args.repeats = 2, 2, 1
    n, epochs = args.trials, args.epochs
    lrs = "|".join(f"{10 ** (-4 + 3 * i / max(1, n - 1)):.6g}" for i in range(n))
    variants = {
        "plain": [],
        "tensorboard": ["--sweep-tensorboard"],
        "mlflow, new store": ["--sweep-mlflow=STORE"],
        "mlflow, existing store": ["--sweep-mlflow=STORE"],
    }
    if args.smoke:
        del variants["mlflow, existing store"]
    samples = {name: c.Samples(name) for name in variants}
    mlflow_own = {name: c.Samples(name) for name in variants if name.startswith("mlflow")}
    env_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-trackers-") as tmp:
        work = Path(tmp)
        (work / "conftest.py").write_text(CONFTEST, encoding="utf-8")
        (work / "range").write_text(f"CONFIG_NUM_EPOCHS={epochs}\nCONFIG_LEARNING_RATE={lrs}\n", encoding="utf-8")
        for rep in range(args.repeats):
            store = work / f"store{rep}"
            for name, extra in variants.items():
                out = work / f"out-{rep}-{name.replace(' ', '_').replace(',', '')}"
                cmd = [
                    args.python,
                    "-m",
                    "pytest",
                    "--range-config=range",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--sweep-output={out}",
                    "--sweep-progress=none",
                    *c.plugin_args(),
                    *(e.replace("STORE", str(store)) for e in extra),
                ]
                run = c.timed(cmd, work)
                passed = _PASSED.findall(run.stdout)
                if not passed or int(passed[-1]) != n:
                    raise RuntimeError(
                        f"{name}: expected {n} passed trials:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
                    )
                samples[name].add(run.seconds, run.load)
                if name in mlflow_own:
                    found = _MLFLOW_SECONDS.search(run.stdout)
                    if found is None:
                        raise RuntimeError(f"{name}: no mlflow line in the output:\n{run.stdout[-3000:]}")
                    mlflow_own[name].add(float(found.group(1)), run.load)
                (sweep_dir,) = sorted(out.glob("sweep_*"))
                env_seconds.append(float(json.loads((sweep_dir / "environment.json").read_text())["seconds"]))
                c.log(f"rep {rep + 1} {name}: {run.seconds:.2f} s")
    base = samples["plain"].median
    rows = []
    for name, s in samples.items():
        extra = (
            "" if name == "plain" else f"{s.median - base:+.2f} s ({(s.median - base) / n * 1000:+.0f} ms per trial)"
        )
        own = f"{mlflow_own[name].median:.2f} s" if name in mlflow_own else ""
        rows.append([name, s.all(), f"{s.median:.2f}", extra, own, s.load_range()])
    body = (
        f"{n} trials x {epochs} epochs of a torch-free trainer, {args.repeats} repeat(s), interleaved.\n\n"
        + c.table(
            ["run", "wall (s), each repeat", "median (s)", "vs plain", "MLflow's own time (median)", "load (1 min)"],
            rows,
        )
        + f"\n\n`environment.json` took {min(env_seconds):.3f}-{max(env_seconds):.3f} s per sweep "
        "(the controller's `seconds` field; no git repository here).\n"
    )
    print(c.block("Trackers (--sweep-tensorboard, --sweep-mlflow)", c.script_command(argv), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
