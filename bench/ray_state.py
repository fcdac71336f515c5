"""ASHA on Ray nodes that share no disk with the controller, against a serial run; the cost of a decision.

A local Ray cluster of simulated nodes (``ray.cluster_utils.Cluster``): a head without GPUs, where
the controller's driver and the sweep's state actor run (``matrix/ray/state.py``), and two nodes
with one simulated GPU each, started as ``tests/shared_nothing.py`` starts the suite's: each with
its own temp folder and an audit hook that refuses any file access under the controller's output
folder (``controller-disk``) and records it.  The trials are a plugin trainer with a known landscape
(no torch): ``test_acc`` after epoch ``e`` is ``100 − 10 |log10(lr) + 2| − 20 / e``, a few
milliseconds per epoch, over a grid of learning rates; ``--sweep-scheduler=asha`` (grace 1, η 3).

Part 1 runs the grid serially and on the cluster (``--sweep-backend=ray --sweep-ray-ship-files``)
and reports, for each, the trials stopped, the epochs trained, the best configuration, the rung
decisions in the controller's ``rungs.sqlite``, and whether replaying the Ray run's results, in the
order its store received them, through a fresh serial store gives the same decisions; then, for
comparison, the Ray run as it was before the state actor (each node deciding from a store of its
own, emulated by a conftest scheduler).

Part 2 times one rung decision: through the state actor (an actor on a GPU node calls
``decide`` on the state actor on the head, as a trial does, and waits for the verdict) against the
serial store itself (``SqliteRungStore.decide`` in this process, ``rungs.sqlite`` in a temp folder).
Each of the N decisions records a new trial at one rung, so both stores grow the same way.  Then
the same for a sampled item's two study calls (``propose`` and ``report`` of a random search),
through the state actor and in a ``JournalSearchStore`` in this process.

    .venv/bin/python bench/ray_state.py          # 27 learning rates x 9 epochs; 500 decisions, 100 asks, 3 repeats
    .venv/bin/python bench/ray_state.py --smoke  # 4 x 3, 20 decisions, 5 asks, once (the suite runs it)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

sys.path.insert(0, str(c.REPO / "tests"))
from pytest_sweep.matrix.objectives import Objective as StudyObjective
from pytest_sweep.matrix.rangeconfig import parse_text
from pytest_sweep.matrix.rungs import Rule, SqliteRungStore, Verdict
from pytest_sweep.matrix.scheduling import Objective, asha_verdict
from pytest_sweep.matrix.space import SearchSpace
from pytest_sweep.matrix.study import JournalSearchStore, SeedResult

import shared_nothing

#: ``--smoke``: four learning rates, three epochs, 20 decisions, once.
SMOKE: dict[str, object] = {"rates": 4, "epochs": 3, "decisions": 20, "asks": 5, "repeats": 1}
CONFTEST = """
import math
import time

import pytest


class Landscape:
    def run(self, trial, ctx):
        lr = trial["CONFIG_LEARNING_RATE"]
        acc = 0.0
        for epoch in range(1, trial["CONFIG_NUM_EPOCHS"] + 1):
            time.sleep(0.02)  # an epoch's work
            acc = 100 - 10 * abs(math.log10(lr) + 2) - 20 / epoch
            if ctx.epoch_ended({"epoch": epoch, "test_acc": acc}):
                break
        return {"test_acc": acc, "best_acc": acc}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Landscape()


@pytest.hookimpl
def pytest_sweep_make_scheduler(config, sweep_dir):
    # before the state actor: each process decides from rungs.sqlite in the sweep folder it was
    # given, which on a node without the controller's disk is the node's own
    if config.getoption("sweep_scheduler") != "asha-per-node":
        return None
    from pytest_sweep.matrix.rungs import SqliteRungStore
    from pytest_sweep.matrix.scheduling import AshaScheduler

    return AshaScheduler(SqliteRungStore(sweep_dir / "rungs.sqlite"))
"""


def rates(n: int) -> list[str]:
    """``n`` learning rates, log-spaced from 1e-5 to 1e-1 (6 significant digits)."""
    return [f"{10 ** (-5 + 4 * i / max(n - 1, 1)):.6g}" for i in range(n)]


def start_cluster(temp_dir: Path) -> Any:
    from ray.cluster_utils import Cluster

    os.environ["RAY_TMPDIR"] = str(temp_dir)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    for index in (1, 2):
        cluster.add_node(num_cpus=1, num_gpus=1, env_vars=shared_nothing.node_env(temp_dir / "nodes", index))
    return cluster


def rung_rows(sweep_dir: Path) -> list[tuple[str, int, str, float, bool, str]]:
    with sqlite3.connect(sweep_dir / "rungs.sqlite") as db:
        rows = db.execute("SELECT kind, step, trial, value, stop, reason FROM results ORDER BY rowid").fetchall()
    return [(str(k), int(s), str(t), float(v), bool(x), str(r)) for k, s, t, v, x, r in rows]


def asha_rule(epoch: int) -> Rule:
    objective = Objective("test_acc", "max")
    return lambda value, others: asha_verdict(value, others, 3.0, objective, epoch)


def replays(rows: list[tuple[str, int, str, float, bool, str]], folder: Path) -> bool:
    """Whether a fresh serial store, fed the same results in the same order, decides the same.

    Each replay gets a store of its own: a store that already holds another run's decisions
    returns those for the trials they share, instead of deciding.
    """
    store = SqliteRungStore(Path(tempfile.mkdtemp(prefix="replay-", dir=folder)) / "replay.sqlite")
    try:
        got = [store.decide(k, s, t, v, asha_rule(s)) for k, s, t, v, _, _ in rows]
    finally:
        store.close()
    return got == [Verdict(stop, reason) for *_, stop, reason in rows]


def sweep(work: Path, label: str, extra: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = work / shared_nothing.CONTROLLER_DISK / label.replace(", ", "-").replace(" ", "-")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *c.plugin_args(), "--range-config=range"]
    cmd += [f"--sweep-output={out}", "--sweep-progress=none", "-q", *extra]
    c.log(f"{label}: {c.shell(cmd)}")
    done = c.timed(cmd, cwd=work, env=env, timeout=1800)
    folder = sorted(out.glob("sweep_*"))[-1]
    records = json.loads((folder / "sweep_summary.json").read_text(encoding="utf-8"))
    best = max(records, key=lambda r: (float(r.get("test_acc") or -math.inf), r["config_file"]))
    rows = rung_rows(folder) if (folder / "rungs.sqlite").exists() else []
    return {
        "label": label,
        "trials": len(records),
        "stopped": sorted(r["config_file"] for r in records if r["status"] == "stopped"),
        "epochs": sum(int(r.get("epochs_run") or 0) for r in records),
        "best": f"{best['config_file']} {float(best['test_acc']):.2f}%",
        "decisions": len(rows) if rows else "-",
        "stops": sum(1 for row in rows if row[4]) if rows else "-",
        "replays": ("yes" if replays(rows, work) else "**no**") if rows else "- (no store here)",
        "workers": sorted({str(r.get("worker")) for r in records}),
        "seconds": done.seconds,
    }


def study(folder: Path) -> JournalSearchStore:
    """A random search's study over 4 x 100 x 100 configurations (a new trial at every ask)."""
    space = SearchSpace.from_range(parse_text("A=1|2|3|4\nB=1:1:100\nC=1:1:100\n"), continuous=True)
    return JournalSearchStore(
        folder, space, "random", seed=0, objectives=(StudyObjective("test_acc", "max"),), trials=10**6
    )


def ask_tell(store: Any, n: int, offset: int) -> float:
    """Seconds for ``n`` proposals, each told a result (as ``n`` sampled items do)."""
    started = time.perf_counter()
    for i in range(n):
        slot = f"trial_{offset + i:06d}"
        proposal = store.propose(slot, "")
        store.report(slot, "", proposal.number, SeedResult("passed", {"test_acc": float(i % 97)}))
    return time.perf_counter() - started


def time_calls(n: int, asks: int, repeats: int, work: Path) -> dict[str, list[float]]:
    """Ms per rung decision and per ask + tell, through the state actor (called from an actor on a
    GPU node, as a trial calls it) and in the serial stores here."""
    import ray

    from pytest_sweep.matrix.ray import state as ray_state

    class Caller:
        """Stands where a trial runs: on a GPU node, calling the state actor."""

        def __init__(self, where: dict[str, str]) -> None:
            self.handle = ray.get_actor(where["name"], namespace=where["namespace"])

        def decide_many(self, n: int, offset: int) -> float:
            store = ray_state.RayRungStore(self.handle)
            started = time.perf_counter()
            for i in range(n):
                store.decide("rung", 1, f"trial_{offset + i:06d}", float(i % 97), asha_rule(1))
            return time.perf_counter() - started

        def ask_tell_many(self, n: int, offset: int) -> float:
            return ask_tell(ray_state.RaySearchStore(self.handle), n, offset)

    found: dict[str, list[float]] = {key: [] for key in ("actor", "sqlite", "actor study", "local study")}
    for rep in range(repeats):
        folder = work / f"calls{rep}"
        (folder / "local").mkdir(parents=True)
        handle, where = ray_state.start(ray.remote(ray_state.SweepState), folder, study(folder))
        ray.get(handle.ping.remote())
        caller = ray.remote(num_gpus=1, num_cpus=0)(Caller).remote(where)
        ray.get([caller.decide_many.remote(5, 10**6), caller.ask_tell_many.remote(2, 10**6)])  # all warm
        found["actor"].append(ray.get(caller.decide_many.remote(n, 0)) / n * 1e3)
        found["actor study"].append(ray.get(caller.ask_tell_many.remote(asks, 0)) / asks * 1e3)
        ray.get(handle.close.remote())
        ray.kill(caller)
        ray.kill(handle)
        store = SqliteRungStore(folder / "local" / "rungs.sqlite")
        started = time.perf_counter()
        for i in range(n):
            store.decide("rung", 1, f"trial_{i:06d}", float(i % 97), asha_rule(1))
        found["sqlite"].append((time.perf_counter() - started) / n * 1e3)
        store.close()
        local = study(folder / "local")
        ask_tell(local, 2, 10**6)
        found["local study"].append(ask_tell(local, asks, 0) / asks * 1e3)
        c.log(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in found.items()))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=int, default=27, help="learning rates in the grid (its trials)")
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--decisions", type=int, default=500, help="rung decisions timed per store")
    ap.add_argument("--asks", type=int, default=100, help="study asks (each told a result) timed per store")
    ap.add_argument("--repeats", type=int, default=3)
    args = c.parse_args(ap, argv, SMOKE)

    import ray

    ray_tmp = Path(tempfile.mkdtemp(prefix="bench-rs-", dir="/tmp"))
    started = time.perf_counter()
    cluster = start_cluster(ray_tmp)
    c.log(f"cluster up in {time.perf_counter() - started:.1f} s at {cluster.address}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ray-state-") as tmp:
            work = Path(tmp)
            (work / "conftest.py").write_text(CONFTEST, encoding="utf-8")
            grid = f"CONFIG_NUM_EPOCHS={args.epochs}\nCONFIG_LEARNING_RATE={'|'.join(rates(args.rates))}\n"
            (work / "range").write_text(grid, encoding="utf-8")
            env = c.child_env({"RAY_ADDRESS": cluster.address, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            ship = ["--sweep-backend=ray", "--sweep-ray-ship-files"]
            serial = sweep(work, "serial", ["--sweep-scheduler=asha"], env)
            on_ray = sweep(work, "ray", [*ship, "--sweep-scheduler=asha"], env)
            refused = shared_nothing.violations(ray_tmp / "nodes")
            per_node = sweep(work, "ray, a store per node", [*ship, "--sweep-scheduler=asha-per-node"], env)
            ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
            try:
                costs = time_calls(args.decisions, args.asks, args.repeats, work)
            finally:
                ray.shutdown()
    finally:
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)

    runs = [
        [
            f"`{r['label']}`",
            r["trials"],
            len(r["stopped"]),
            r["epochs"],
            f"{r['epochs'] / (r['trials'] * args.epochs):.0%}",
            r["decisions"],
            r["stops"],
            r["replays"],
            r["best"],
            ", ".join(r["workers"]),
            f"{r['seconds']:.1f}",
        ]
        for r in (serial, on_ray, per_node)
    ]
    same = serial["stopped"] == on_ray["stopped"]
    actor, local = costs["actor"], costs["sqlite"]
    asked, asked_here = costs["actor study"], costs["local study"]

    def cells(label: str, values: list[float]) -> list[str]:
        return [label, f"{min(values):.3f}", f"{statistics.median(values):.3f}"]

    cost_rows = [
        cells("`state actor (Ray call from a GPU node)`", actor),
        cells("`SqliteRungStore.decide (serial, in process)`", local),
    ]
    study_rows = [
        cells("`state actor (Ray calls from a GPU node)`", asked),
        cells("`JournalSearchStore (serial, in process)`", asked_here),
    ]
    body = "\n".join(
        [
            f"{args.rates} learning rates (1e-5 .. 1e-1, log-spaced) x {args.epochs} epochs of the landscape trainer, "
            "`--sweep-scheduler=asha` (grace 1, η 3), serially and on 2 shared-nothing GPU nodes "
            "(`--sweep-backend=ray --sweep-ray-ship-files`).",
            "",
            c.table(
                [
                    "run",
                    "trials",
                    "stopped",
                    "epochs trained",
                    "of the grid",
                    "rung decisions",
                    "stops",
                    "serial replay decides the same",
                    "best",
                    "workers",
                    "wall s",
                ],
                runs,
            ),
            "",
            f"Same trials stopped as the serial run: **{'yes' if same else 'no'}** (the Ray run's results reach the "
            "store in another order: two trials at a time). Accesses to the controller's disk refused on the nodes "
            f"during the `ray` run: **{len(refused)}**. The last row is the Ray backend before the state actor, "
            "emulated: each process decides from `rungs.sqlite` in the sweep folder it was given, which on a node "
            "without the controller's disk is the node's own (a conftest scheduler, `asha-per-node`).",
            "",
            f"Cost of one rung decision, {args.decisions} decisions at one rung, {args.repeats} repeats (ms):",
            "",
            c.table(["store", "best ms", "median ms"], cost_rows),
            "",
            f"Through the state actor a decision costs **{statistics.median(actor) - statistics.median(local):.3f} ms** "
            "more than in the serial store (medians).",
            "",
            f"Cost of one sampled item's ask and tell (a random search, {args.asks} items, {args.repeats} repeats, ms):",
            "",
            c.table(["study", "best ms", "median ms"], study_rows),
            "",
            "An ask and a tell through the state actor, minus the same in the serial study: "
            f"**{statistics.median(asked) - statistics.median(asked_here):.3f} ms** (medians).",
            *(["", c.SMOKE_NOTE] if args.smoke else []),
        ]
    )
    print(c.block("Shared state on Ray (bench/ray_state.py)", c.script_command(), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
