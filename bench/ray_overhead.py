"""Cost of ``--sweep-backend=ray``: per trial, and fixed, against a serial run of the same trivial trials.

A local Ray cluster of simulated nodes is started first (``ray.cluster_utils.Cluster``: a head
without GPUs and one node with one GPU, so a sweep gets exactly one actor and nothing runs in
parallel; the start is timed but is no part of a sweep, since users run on a cluster that is up).
The trivial trials are those of ``bench/overhead.py`` (a ``conftest.py`` plugin whose trainer sums
sines).  Four runs, each in a fresh process of this interpreter, interleaved and repeated:

* serial, all N trials, and serial with ``-k config_001`` (the same collection, one trial);
* the same two with ``--sweep-backend=ray`` against the cluster (``RAY_ADDRESS``).

For each backend, per trial = (T(N) − T(1)) / (N − 1): start-up, collection and the summary cancel
out.  Ray's overhead per trial is the difference of the two; its fixed cost is T_ray(1) − T_serial(1):
connecting, starting the actor (a pytest session that collects), stopping it, disconnecting.

    .venv/bin/python bench/ray_overhead.py                 # N = 200, 3 repeats
    .venv/bin/python bench/ray_overhead.py -n 400 --repeats 5
    .venv/bin/python bench/ray_overhead.py --smoke         # N = 3, once, one small cluster: the suite runs it
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common as c
from overhead import sweep_cmd, write_plugin

_PASSED = re.compile(r"(\d+) passed")
#: ``--smoke``: three trials, once (the cluster's start is most of its time).
SMOKE: dict[str, object] = {"trials": 3, "repeats": 1}


def start_cluster(temp_dir: Path) -> object:
    from ray.cluster_utils import Cluster

    os.environ["RAY_TMPDIR"] = str(temp_dir)  # Ray's sockets: a short path; its files: out of /tmp/ray
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=1, num_gpus=1)
    return cluster


def run_sweep(cmd: list[str], work: Path, env: dict[str, str], expect: int) -> c.Run:
    run = c.timed(cmd, work, env=env)
    passed = _PASSED.findall(run.stdout)
    if not passed or int(passed[-1]) != expect:
        raise RuntimeError(f"expected {expect} passed trials:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--trials", type=int, default=200)
    ap.add_argument("--work", type=int, default=2000, help="sines summed per trial (the trial's real work)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each; best and median reported")
    ap.add_argument("--python", default=sys.executable)
    args = c.parse_args(ap, argv, SMOKE)
    n = args.trials
    if n < 2:
        ap.error("-n/--trials must be at least 2 (per trial = (T(N) - T(1)) / (N - 1))")

    ray_tmp = Path(tempfile.mkdtemp(prefix="bench-ray-", dir="/tmp"))
    started = time.perf_counter()
    cluster = start_cluster(ray_tmp)
    cluster_seconds = time.perf_counter() - started
    c.log(f"cluster up in {cluster_seconds:.1f} s at {cluster.address}")  # type: ignore[attr-defined]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ray-overhead-") as tmp:
            work = Path(tmp)
            write_plugin(work, n, args.work)
            env = c.child_env({"RAY_ADDRESS": cluster.address})  # type: ignore[attr-defined]
            full = sweep_cmd(args.python, n, False)
            samples = {key: c.Samples(key) for key in ("serial N", "serial 1", "ray N", "ray 1")}
            commands = {
                "serial N": (full, n),
                "serial 1": ([*full, "-k", "config_001"], 1),
                "ray N": ([*full, "--sweep-backend=ray"], n),
                "ray 1": ([*full, "--sweep-backend=ray", "-k", "config_001"], 1),
            }
            for rep in range(args.repeats):
                for key, (cmd, expect) in commands.items():
                    run = run_sweep(cmd, work, env, expect)
                    samples[key].add(run.seconds, run.load)
                c.log(
                    "rep " + str(rep + 1) + ": " + ", ".join(f"{k} {s.seconds[-1]:.2f} s" for k, s in samples.items())
                )
    finally:
        cluster.shutdown()  # type: ignore[attr-defined]
        shutil.rmtree(ray_tmp, ignore_errors=True)

    def per_trial_ms(big: float, one: float) -> float:
        return (big - one) / (n - 1) * 1e3

    serial_ms = per_trial_ms(samples["serial N"].best, samples["serial 1"].best)
    ray_ms = per_trial_ms(samples["ray N"].best, samples["ray 1"].best)
    serial_med = per_trial_ms(samples["serial N"].median, samples["serial 1"].median)
    ray_med = per_trial_ms(samples["ray N"].median, samples["ray 1"].median)
    fixed = samples["ray 1"].best - samples["serial 1"].best
    fixed_med = samples["ray 1"].median - samples["serial 1"].median
    rows = [
        [f"`{label}`", f"{s.best:.2f}", f"{s.median:.2f}", s.all(), s.load_range()]
        for label, s in (
            (f"serial, {n} trials", samples["serial N"]),
            ("serial, -k config_001", samples["serial 1"]),
            (f"--sweep-backend=ray, {n} trials", samples["ray N"]),
            ("--sweep-backend=ray, -k config_001", samples["ray 1"]),
        )
    ]
    body = "\n".join(
        [
            f"N = {n} trivial trials (each sums {args.work} sines), serial and through one Ray actor on a local "
            f"cluster of simulated nodes (started in {cluster_seconds:.1f} s, not counted). {args.repeats} repeats, "
            "interleaved; per trial = (T(N) − T(1)) / (N − 1).",
            "",
            c.table(["run", "best s", "median s", "all runs s", "load (1 min)"], rows),
            "",
            f"Per trial: serial **{serial_ms:.2f} ms**, Ray **{ray_ms:.2f} ms** (best runs; medians "
            f"{serial_med:.2f} / {ray_med:.2f} ms): Ray adds **{ray_ms - serial_ms:.2f} ms** per trial "
            f"({ray_med - serial_med:.2f} ms from the medians), ratio {ray_ms / serial_ms:.2f}×.",
            "",
            f"Fixed cost of the Ray backend (T_ray(1) − T_serial(1)): **{fixed:.2f} s** from the best runs "
            f"({fixed_med:.2f} s from the medians).",
            *(["", c.SMOKE_NOTE] if args.smoke else []),
        ]
    )
    print(c.block("Ray backend overhead (bench/ray_overhead.py)", c.script_command(), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
