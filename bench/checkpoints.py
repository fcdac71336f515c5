"""Checkpoints (issue 21): what one costs per epoch, and how much work a kill loses with and without them.

1. **Cost per epoch** (in process, one torch thread): the built-in trainer's models on digits
   (LeNet-5, and ResNet-18 at width 16 as in the smoke sweep), AdamWPrune with state pruning.
   An epoch is trained and timed; then the checkpoint the loop writes at its end is saved through
   the sweep's own path (``TrialCheckpoints.save``: the state, ``torch.save``, header and CRC, temp
   file, ``fsync``, rename, the older one removed), several times; the table gives the median
   save time, its share of the epoch's time, and the file's size.  Also the per-step check
   (``ctx.checkpoint_due()``), against the time of a step.
2. **Work lost to a kill** (real sweeps in subprocesses): a LeNet-5/digits sweep is killed with
   SIGKILL at random points (a random epoch, then a random fraction of an epoch) and resumed with
   ``--sweep-resume`` after each kill until it completes, once with checkpoints (the default, every
   epoch) and once with ``--sweep-checkpoint-every=off``.  Counted: epochs trained in all the runs
   (``pytest_sweep_epoch_ended`` calls) minus the sweep's epochs, per interrupted trial.  The
   partial epoch a kill cuts short is lost either way and is not counted.  Goal: at most 1 epoch
   re-trained per interrupted trial.

    .venv/bin/python bench/checkpoints.py             # both parts, a few minutes on 2 busy cores
    .venv/bin/python bench/checkpoints.py --smoke     # tiny sizes: the suite runs this
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

import _common as c

GOAL_EPOCHS = 1.0

COUNT_EPOCHS = """
import os
import time

import pytest


@pytest.hookimpl
def pytest_sweep_epoch_ended(trial, metrics):
    with open(os.environ["EPOCH_LOG"], "a") as fh:
        fh.write(f"{trial.name} {metrics['epoch']} {time.time()}\\n")
"""


# -- 1. cost ---------------------------------------------------------------------------------------
def checkpoint_cost(model: str, width: int, repeats: int, tmp: Path) -> dict[str, Any]:
    import torch

    from pytest_sweep.matrix.checkpoints import Policy, TrialCheckpoints, checkpoint_files
    from pytest_sweep.matrix.trial import Trial
    from pytest_sweep.plugins.trainer import TorchCodec
    from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
    from pytest_sweep.trainers.checkpoint import capture
    from pytest_sweep.trainers.data import load_dataset
    from pytest_sweep.trainers.loop import TrainSettings, steps_per_epoch, train
    from pytest_sweep.trainers.models import build_model
    from pytest_sweep.trainers.optimizers import build_optimizer
    from pytest_sweep.trainers.pruning import build_pruner

    torch.set_num_threads(1)
    data = load_dataset("digits")
    steps = steps_per_epoch(len(data.train_y), 64)
    torch.manual_seed(0)
    net = build_model(model, in_channels=1, image_size=data.image_size, num_classes=10, width=width)
    prune = AdamWPruneSettings(steps_per_epoch=steps, target_sparsity=0.7, warmup=10, frequency=5, ramp_end_epoch=1)
    optimizer = build_optimizer("adamwprune", net, lr=1e-3, weight_decay=1e-2, prune=prune)
    pruner = build_pruner(
        "state", net, optimizer, target_sparsity=0.7, warmup=10, frequency=5, ramp_end_epoch=1, steps_per_epoch=steps
    )
    history: list[dict[str, Any]] = []
    out = train(net, optimizer, pruner, data, TrainSettings(epochs=1, batch_size=64), on_epoch=history.append,
                log=lambda _: None)  # fmt: skip
    epoch_s = out["history"][0]["epoch_time"]
    trial = Trial("config_001", 1, "bench", {}, {"CONFIG_MODEL": model}, {}, seed=0)
    folder = tmp / model
    ckpt = TrialCheckpoints(
        folder, trial, Policy(), [TorchCodec()], log=lambda _: None, note=lambda _: None, history=history
    )
    from pytest_sweep.trainers.loop import _batches  # the loop's own training batches

    batches = _batches(data, "train", TrainSettings(epochs=1, batch_size=64), torch.device("cpu"), False)
    signature = {"epochs": 1}
    saves = []
    for _ in range(repeats):
        started = time.perf_counter()
        state = capture(
            model=net, optimizer=optimizer, scheduler=None, pruner=pruner, batches=batches, signature=signature,
            epochs_done=1, global_step=steps, history=out["history"],
        )  # fmt: skip
        ckpt.save(state, force=True)
        saves.append(time.perf_counter() - started)
    size = checkpoint_files(folder)[0].stat().st_size
    # the per-step check of a run without a stop request
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        ckpt.due()
    due_us = (time.perf_counter() - started) / calls * 1e6
    return {
        "model": f"{model}" + (f" width {width}" if model == "resnet18" else ""),
        "params": sum(p.numel() for p in net.parameters()),
        "epoch_s": epoch_s,
        "step_ms": epoch_s / steps * 1e3,
        "save_s": statistics.median(saves),
        "saves": saves,
        "bytes": size,
        "due_us": due_us,
    }


# -- 2. kills ---------------------------------------------------------------------------------------
def digits_range(trials: int, epochs: int) -> str:
    rates = "|".join(f"{0.001 * (i + 1):g}" for i in range(trials))
    return (
        'CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\nCONFIG_DEVICE="cpu"\nCONFIG_OPTIMIZER="adamw"\n'
        f"CONFIG_NUM_EPOCHS={epochs}\nCONFIG_BATCH_SIZE=64\nCONFIG_LEARNING_RATE={rates}\n"
    )


def epoch_lines(log: Path) -> list[tuple[str, int, float]]:
    """``(trial, epoch, time)`` per epoch trained, in all the runs."""
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(r[0], int(r[1]), float(r[2])) for r in rows if len(r) == 3]


def epoch_seconds(lines: list[tuple[str, int, float]]) -> float:
    """The median time between a trial's consecutive epochs so far (1 s before there are any)."""
    spans = [b[2] - a[2] for a, b in itertools.pairwise(lines) if a[0] == b[0] and b[1] == a[1] + 1]
    return statistics.median(spans) if spans else 1.0


def kill_and_resume(
    tmp: Path, label: str, extra: list[str], kills: int, rng: random.Random, total: int
) -> dict[str, Any]:
    """Run the sweep; kill it ``kills`` times at random points; resume until it completes."""
    where = tmp / label
    where.mkdir()
    (where / "sweep.rc").write_text((tmp / "sweep.rc").read_text())
    (where / "conftest.py").write_text(COUNT_EPOCHS)
    log = where / "epochs.log"
    env = c.child_env({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "EPOCH_LOG": str(log)}, keep_threads=True)
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *c.plugin_args(), "--range-config=sweep.rc"]
    base += ["--sweep-progress=none", "--sweep-minutes-per-trial=1", "-q", *extra]  # no runtime estimate
    interrupted: set[str] = set()
    runs = 0
    started = time.perf_counter()
    for attempt in range(kills + 50):
        cmd = base + (["--sweep-resume"] if attempt else [])
        runs += 1
        proc = subprocess.Popen(cmd, cwd=where, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt < kills:
            done = len(epoch_lines(log))
            left = total - done
            target = done + rng.randrange(1, max(2, left))  # after a random number of further epochs
            while len(epoch_lines(log)) < target and proc.poll() is None:
                time.sleep(0.01)
            if proc.poll() is None:
                time.sleep(rng.random() * epoch_seconds(epoch_lines(log)))  # then a random fraction of an epoch
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    interrupted.add(str(attempt))
        code = proc.wait(timeout=1800)
        if code == 0:
            break
    trained = epoch_lines(log)
    return {
        "label": label,
        "runs": runs,
        "kills": len(interrupted),
        "trained": len(trained),
        "retrained": len(trained) - total,
        "seconds": time.perf_counter() - started,
        "load": c.load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes (LeNet-5 only, one kill, with checkpoints)")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    trials, epochs, kills = (1, 3, 1) if args.smoke else (4, 8, 3)
    with tempfile.TemporaryDirectory(prefix="bench_ckpt_") as name:
        tmp = Path(name)
        models = [("lenet5", 0)] if args.smoke else [("lenet5", 0), ("resnet18", 16)]
        costs = []
        for model, width in models:
            c.log(f"checkpoint cost: {model}")
            costs.append(checkpoint_cost(model, width, 2 if args.smoke else 7, tmp))
        (tmp / "sweep.rc").write_text(digits_range(trials, epochs))
        modes = [("with checkpoints", [])] if args.smoke else [
            ("with checkpoints", []), ("without (--sweep-checkpoint-every=off)", ["--sweep-checkpoint-every=off"])
        ]  # fmt: skip
        kill_rows = []
        for label, extra in modes:
            c.log(f"kills: {label}")
            kill_rows.append(kill_and_resume(tmp, label.split()[0], extra, kills, rng, trials * epochs))
    cost_rows = [
        [
            r["model"],
            f"{r['params']:,}",
            f"{r['epoch_s']:.2f} s",
            f"{r['save_s'] * 1e3:.0f} ms ({', '.join(f'{s * 1e3:.0f}' for s in r['saves'])})",
            f"{r['save_s'] / r['epoch_s']:.1%}",
            f"{r['bytes'] / 1e6:.2f} MB",
            f"{r['due_us']:.2f} µs vs {r['step_ms']:.1f} ms",
        ]
        for r in costs
    ]
    body = (
        "Cost of a checkpoint per epoch (digits, batch 64, AdamWPrune state pruning, 1 torch thread; the save as the "
        "sweep does it, fsync included):\n\n"
        + c.table(
            ["model", "parameters", "epoch", "save (median; each)", "of the epoch", "file", "per-step check vs a step"],
            cost_rows,
        )
        + f"\n\nWork lost to SIGKILL at random points ({trials} LeNet-5/digits trials x {epochs} epochs, serial, "
        f"{kills} kills, resumed with --sweep-resume after each; seed {args.seed}):\n\n"
    )
    kill_table = []
    for r in kill_rows:
        per = r["retrained"] / max(1, r["kills"])
        kill_table.append(
            [
                r["label"],
                r["kills"],
                r["runs"],
                f"{r['trained']} of {trials * epochs}",
                r["retrained"],
                f"{per:.2f}",
                c.verdict(per <= GOAL_EPOCHS) if r["label"] == "with" else "-",
                f"{r['seconds']:.0f} s",
                r["load"],
            ]
        )
    body += c.table(
        ["checkpoints", "kills", "runs", "epochs trained", "re-trained", "per kill", "goal <= 1", "wall", "load"],
        kill_table,
    )
    print(c.block("Checkpoints (bench/checkpoints.py)", c.script_command(), body))


if __name__ == "__main__":
    main()
