"""``--sweep-backend=ray`` on a real Ray cluster of simulated nodes (no mock of Ray).

The session's cluster (``ray_cluster`` in ``conftest.py``) has a head without GPUs and two nodes
with one (simulated) GPU each.  Every test runs pytest in a subprocess against it; the trials are
LeNet-5 on the offline digits data or a few seconds of pure-Python work, on one thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_e2e_plugin_package import install_on_path, load_example

from pytest_sweep.matrix.checkpoints import checkpoint_files
from pytest_sweep.matrix.preempt import GRACE_SECONDS

import shared_nothing

if TYPE_CHECKING:
    from conftest import RayCluster

    from sweep_helpers import SweepPytester

pytestmark = pytest.mark.ray

# The inner runs' own plugin: what goes wrong in a trial, and a line per training (trial, worker,
# Ray node, the GPU ids it sees).  "*_once" faults strike the first run of a trial only.
FAULTS = """\
import hashlib
import os
import random
import resource
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from pytest_sweep.matrix import Symbol, TrialFailed

HERE = Path(__file__).parent
FAULTS = ("none", "fail", "crash_once", "hang_once", "hold_once", "slow", "checkpoint_hold_once", "warn", "gather",
          "big", "big_checkpoint", "checkpoint_fail_once", "checkpoint_slow_once")


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_FAULT", "str", "none", "What goes wrong in the trial", choices=FAULTS),
        Symbol("CONFIG_FAULT_SPIN", "float", 0.0, "Seconds of pure-Python work instead of training"),
        Symbol("CONFIG_FAULT_MIB", "float", 0.0, "MiB the big faults write"),
    ]


def where(trial, ctx):
    with open(HERE / "dirs.txt", "a") as fh:
        fh.write(f"{trial.name} {ctx.dir}\\n")


class Big:
    # CONFIG_FAULT_MIB MiB of pseudo-random bytes in its trial folder, written 1 MiB at a time; the
    # hash goes beside the project (the same path on every node)

    def run(self, trial, ctx):
        where(trial, ctx)
        digest, rng = hashlib.sha256(), random.Random(trial.name)
        left = int(trial["CONFIG_FAULT_MIB"] * 2**20)
        with open(ctx.dir / "big.bin", "wb") as fh:
            while left:
                block = rng.randbytes(min(left, 2**20))
                digest.update(block)
                fh.write(block)
                left -= len(block)
        (HERE / f"{trial.name}.sha256").write_text(digest.hexdigest())
        return {"test_acc": 1.0}


class BigCheckpoint:
    def run(self, trial, ctx):
        where(trial, ctx)
        ctx.load_checkpoint()
        ctx.epoch_ended({"epoch": 1, "test_acc": 1.0})
        ctx.save_checkpoint({"blob": bytes(int(trial["CONFIG_FAULT_MIB"] * 2**20))})
        return {"test_acc": 1.0}


PEAK = {"RssAnon": 0, "RssShmem": 0}


def sample():
    while True:  # the controller's own memory and the shared memory it maps (Ray's object store), in KiB
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in PEAK:
                    PEAK[key] = max(PEAK[key], int(value.split()[0]))
        time.sleep(0.02)


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        threading.Thread(target=sample, daemon=True).start()


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # the controller's peaks (KiB)
        with open(HERE / "controller_rss.txt", "a") as fh:
            fh.write(f"{PEAK['RssAnon']} {PEAK['RssShmem']} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n")


class Spinner:
    def __init__(self, seconds):
        self.seconds = seconds

    def run(self, trial, ctx):
        start = time.monotonic()
        while time.monotonic() - start < self.seconds:
            sum(range(10_000))
        return {"test_acc": 50.0 + trial.index, "training_time": time.monotonic() - start}


class Epochs:
    # four epochs that checkpoint; the first run holds after epoch 2's checkpoint (its node goes), or
    # fails; checkpoint_slow_once: 60 epochs, the first run's half a second each after epoch 2
    # (0.5 s between step boundaries: a SIGTERM there is heard long before the grace period ends)

    def run(self, trial, ctx):
        where(trial, ctx)
        state = ctx.load_checkpoint() or {"epoch": 0, "acc": 0.0}
        epoch, acc = state["epoch"], state["acc"]
        slow = False
        while epoch < (60 if trial["CONFIG_FAULT"] == "checkpoint_slow_once" else 4):
            if slow:
                time.sleep(0.5)
            epoch += 1
            acc = acc * 0.5 + epoch
            with open(HERE / "epochs.txt", "a") as fh:
                fh.write(f"{trial.name} {epoch} {node_id()}\\n")
            ctx.epoch_ended({"epoch": epoch, "test_acc": acc})
            ctx.save_checkpoint({"epoch": epoch, "acc": acc})
            if epoch == 2 and first_time(trial):
                if trial["CONFIG_FAULT"] == "checkpoint_fail_once":
                    raise TrialFailed("failed after epoch 2 on purpose")
                if trial["CONFIG_FAULT"] == "checkpoint_slow_once":
                    slow = True
                    continue
                time.sleep(300)  # until the test takes its node away
        return {"test_acc": acc}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    if trial["CONFIG_FAULT"] in ("checkpoint_hold_once", "checkpoint_fail_once", "checkpoint_slow_once"):
        return Epochs()
    if trial["CONFIG_FAULT"] == "slow":
        return Spinner(60)
    if trial["CONFIG_FAULT"] == "big":
        return Big()
    if trial["CONFIG_FAULT"] == "big_checkpoint":
        return BigCheckpoint()
    if trial["CONFIG_FAULT_SPIN"]:
        return Spinner(trial["CONFIG_FAULT_SPIN"])
    return None


def node_id():
    if "ray" not in sys.modules:  # a serial run
        return "-"
    import ray

    return ray.get_runtime_context().get_node_id()


def first_time(trial):
    marker = HERE / f"{trial['CONFIG_FAULT']}-{trial.name}"
    if marker.exists():
        return False
    marker.write_text(node_id())
    return True


@pytest.hookimpl
def pytest_sweep_trial_started(trial):
    with open(HERE / "trainings.txt", "a") as fh:
        fh.write(f"{trial.name} {trial.worker} {node_id()} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\\n")
    fault = trial["CONFIG_FAULT"]
    if fault == "gather":  # until four workers run one trial each: where they are, which GPU ids Ray gave them
        import ray

        gpus = ",".join(str(i) for i in ray.get_gpu_ids())
        (HERE / f"gather-{trial.worker}").write_text(f"{node_id()} {gpus}")
        deadline = time.monotonic() + 120
        while len(list(HERE.glob("gather-*"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    if fault == "warn":
        warnings.warn(f"{trial.name} warns on {trial.worker}", UserWarning)
        print(f"{trial.name} writes to stderr on {trial.worker}", file=sys.stderr)
    if fault == "fail":
        raise TrialFailed("failed on purpose")
    if fault == "crash_once" and first_time(trial):
        os._exit(1)
    if fault == "hang_once" and first_time(trial):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # out of --sweep-trial-timeout's reach
        while True:
            time.sleep(0.1)
    if fault == "hold_once" and first_time(trial):
        time.sleep(300)  # until the test takes its node away or stops the sweep
"""

#: Shared nothing (``shared_nothing.py``): the output on the controller's disk, which the nodes refuse;
#: the actors write into their nodes' own temp folders and everything crosses through Ray.
CONTROLLER_OUT = f"{shared_nothing.CONTROLLER_DISK}/out"
SHARE_NOTHING = ("--sweep-ray-ship-files", f"--sweep-output={CONTROLLER_OUT}")
#: Record fields that do not depend on where or how fast a trial ran.
STABLE = ("config_file", "status", "test_acc", "best_acc", "epochs_run", "seed", "config", "error", "trial_dir")
RAY = ("--sweep-backend=ray",)
#: Four trials, config_002 and config_004 with the fault (CONFIG_FAULT is the fastest-moving key).
ONE_IN_TWO = "CONFIG_FAULT_SPIN={spin}\nCONFIG_BATCH_SIZE=32|64\nCONFIG_FAULT=none|{fault}\n"


@pytest.fixture
def ray_sweep(sweep_pytester: SweepPytester, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> SweepPytester:
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    sweep_pytester.pytester.makeconftest(FAULTS)
    shared_nothing.clear(ray_cluster.nodes_dir)
    return sweep_pytester


def run(sweep: SweepPytester, *args: str, out: str = "out") -> tuple[pytest.RunResult, dict[str, dict[str, Any]]]:
    result = sweep.run_subprocess("--range-config=range", f"--sweep-output={out}", *args)
    found = sweep.sweep_dirs(sweep.path / out)
    return result, (sweep.records(found[-1]) if found else {})


def trainings(path: Path) -> list[list[str]]:
    """``[trial, worker, Ray node id, CUDA_VISIBLE_DEVICES]`` per training, in order."""
    log = path / "trainings.txt"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def ticks(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("sweep: config_")]


def wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"the sweep ended before {path.name} appeared"
        assert time.monotonic() < deadline, f"{path.name} did not appear in {seconds} s"
        time.sleep(0.2)
    time.sleep(0.2)  # the marker is written: let its writer finish
    return path.read_text()


def popen(sweep: SweepPytester, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "pytest", *sweep.plugin_args, "--range-config=range", "--sweep-output=out", *args]
    with open(sweep.path / "stdout.txt", "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=sweep.path, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The sweep process, killed on the way out if a check failed while it still ran."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def preempt(proc: subprocess.Popen[bytes], timeout: float) -> float:
    """SIGTERM to the sweep, which must exit 75 (preempted: the requeue exit code) within ``timeout``
    seconds; the seconds it took."""
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert proc.wait(timeout=timeout) == 75
    return time.monotonic() - signalled


def no_actor_alive(cluster: RayCluster, seconds: float = 20) -> list[str]:
    """The states of the cluster's actors once none is alive (or whatever is left after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        states = cluster.actor_states()
        if not any(s in ("ALIVE", "PENDING_CREATION", "RESTARTING") for s in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def test_a_digits_sweep_runs_on_both_nodes_and_matches_a_serial_run(
    ray_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    ray_sweep.range_config(
        ray_sweep.digits_config("CONFIG_LEARNING_RATE=0.001|0.003", "CONFIG_WEIGHT_DECAY=0.0|0.05"),
        name="range",
    )
    serial, serial_records = run(ray_sweep, "-p", "no:cacheprovider", out="serial")
    serial.assert_outcomes(passed=4)
    trained_serially = len(trainings(ray_sweep.path))
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=4)

    # the same results as the serial run, one thread each side
    assert list(records) == list(serial_records)
    for name, record in records.items():
        assert {k: record[k] for k in STABLE} == {k: serial_records[name][k] for k in STABLE}
        assert record["torch_threads"] == serial_records[name]["torch_threads"] == 1
    # both GPU nodes trained, each through its own actor, which saw exactly one GPU id
    assert {r["worker"] for r in records.values()} == {"ray1", "ray2"}
    assert {r["node_id"] for r in records.values()} == ray_cluster.gpu_node_ids()
    ray_trainings = trainings(ray_sweep.path)[trained_serially:]
    assert sorted(t[0] for t in ray_trainings) == sorted(records)
    for name, worker, node, gpus in ray_trainings:
        assert (worker, node) == (records[name]["worker"], records[name]["node_id"])
        assert len(gpus.split(",")) == 1 and gpus.isdigit(), gpus
    # the controller's line per trial names the worker and its node
    result.stdout.fnmatch_lines(
        ["sweep: Ray cluster at *: 3 nodes, 2 GPUs, 3 CPUs; starting 2 workers (1 GPU + 1 CPU each)"]
    )
    assert len(ticks(result)) == 4
    assert "shipped back" not in result.stdout.str()  # the actors saw the sweep folder and wrote there
    assert all(" (ray1 on " in t or " (ray2 on " in t for t in ticks(result)), ticks(result)
    # junitxml, written by the controller, has every trial with its record
    suite = ET.parse(ray_sweep.path / "report.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "0"
    shipped = [p.get("value") for p in suite.iter("property") if p.get("name") == "sweep_record"]
    assert sorted(json.loads(v or "")["config_file"] for v in shipped) == sorted(records)
    sweep_dir = ray_sweep.only_sweep_dir(ray_sweep.path / "out")
    assert not list(sweep_dir.glob(".*"))  # neither the visibility token nor a temp file is left
    assert "ALIVE" not in no_actor_alive(ray_cluster)


def test_an_entry_point_trainer_plugin_runs_on_the_actors(
    ray_sweep: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = ray_sweep.path / "site"
    site.mkdir()
    assert install_on_path(site) == "mytrainer"
    monkeypatch.setenv("PYTHONPATH", str(site))  # the actors get it from the controller
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")  # entry points load, here and on the actors
    ray_sweep.range_config("CONFIG_MYTRAINER_DEPTH=1|2|5\n", name="range")
    result = ray_sweep.pytester.runpytest_subprocess(
        "--range-config=range", "--sweep-output=out", *RAY, "-p", "no:cacheprovider", timeout=300
    )
    result.assert_outcomes(passed=3)
    example = load_example()
    records = ray_sweep.records(ray_sweep.only_sweep_dir(ray_sweep.path / "out"))
    assert {n: r["test_acc"] for n, r in records.items()} == {
        f"config_00{i}": list(example.fit(depth))[-1][1] for i, depth in ((1, 1), (2, 2), (3, 5))
    }
    assert {r["trainer"] for r in records.values()} == {f"mytrainer/perceptron d{d}" for d in (1, 2, 5)}
    assert {r["worker"] for r in records.values()} <= {"ray1", "ray2"}
    # its reporter ran on the controller, at the end of the sweep
    report = json.loads((ray_sweep.only_sweep_dir(ray_sweep.path / "out") / "mytrainer_report.json").read_text())
    assert [r["config_file"] for r in report["records"]] == ["config_001", "config_002", "config_003"]


def test_a_crash_fails_its_trial_a_hang_is_killed_and_resume_finishes_the_sweep(ray_sweep: SweepPytester) -> None:
    # config_002's process dies; config_003 hangs with SIGALRM blocked, past --sweep-trial-timeout;
    # config_005 works too long, and the actor stops it as a serial run would
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.3\nCONFIG_FAULT=none|crash_once|hang_once|fail|slow\n", name="range")
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "--sweep-trial-timeout=2")
    result.assert_outcomes(passed=1, failed=4)
    crashed, hung, failed, slow = (records[f"config_00{i}"] for i in (2, 3, 4, 5))
    assert records["config_001"]["status"] == "passed"
    assert crashed["status"] == "failed"
    assert crashed["error"].startswith(f"worker crashed: worker '{crashed['worker']}' crashed while running ")
    assert crashed["error"].endswith("config_002[FAULT=crash_once]'")
    assert hung["error"].startswith("timed out after 2 s (--sweep-trial-timeout); worker 'ray")
    killed_after = int(hung["error"].rsplit("killed after ", 1)[1].split()[0])
    assert killed_after >= 12  # 2 s + the margin of 10.2 s
    assert failed["error"] == "failed on purpose"
    assert slow["error"] == "timed out after 2 s (--sweep-trial-timeout)"  # SIGALRM on the actor's main thread
    assert 2 <= slow["training_time"] < 10
    result.stdout.fnmatch_lines(["sweep: worker 'ray?' crashed while running '*config_002*'; starting ray3"])
    result.stdout.fnmatch_lines(["sweep: ray3 ready on *"])
    assert "INTERNALERROR" not in result.stdout.str()

    # the crashed and the hung trial run again (no fault the second time); the rest is reused.  The
    # actors write into folders of their own and ship the trial files back, as from nodes that cannot
    # see the output folder; the controller seeds them with the finished trials and writes what returns
    sweep_dir = ray_sweep.only_sweep_dir(ray_sweep.path / "out")
    for name in ("config_002", "config_003"):
        for path in (sweep_dir / records[name]["trial_dir"]).iterdir():
            path.unlink()
    before = len(trainings(ray_sweep.path))
    resumed, records = run(
        ray_sweep,
        *RAY,
        "-p",
        "no:cacheprovider",
        "--sweep-resume",
        "-k",
        "not config_004 and not config_005",
        "--sweep-ray-ship-files",
    )
    resumed.assert_outcomes(passed=3)
    resumed.stdout.fnmatch_lines(["sweep: ray? ready on *: 5 items collected in * s; trial files shipped back*"])
    assert sorted(t[0] for t in trainings(ray_sweep.path)[before:]) == ["config_002", "config_003"]
    assert [(n, r["status"], r["reused"]) for n, r in records.items()] == [
        ("config_001", "passed", True),
        ("config_002", "passed", False),
        ("config_003", "passed", False),
        ("config_004", "failed", False),  # deselected: the resumed sweep's records stay
        ("config_005", "failed", False),
    ]
    for name in ("config_002", "config_003"):
        folder = sweep_dir / records[name]["trial_dir"]
        assert sorted(p.name for p in folder.iterdir()) == ["config.txt", "output.log", "training_metrics.json"]
        assert json.loads((folder / "training_metrics.json").read_text())["status"] == "passed"
        assert f"started on {records[name]['worker']} " in (folder / "output.log").read_text()


@pytest.mark.parametrize("backend", [(), RAY], ids=["serial", "ray"])
def test_x_k_and_lf_select_as_in_a_serial_run(ray_sweep: SweepPytester, backend: tuple[str, ...]) -> None:
    # config_002 fails at once while config_001 (on the other actor) works for a second
    ray_sweep.range_config(ONE_IN_TWO.format(fault="fail", spin=1), name="range")
    first, records = run(ray_sweep, *backend, "-x", "-k", "not config_004")
    first.assert_outcomes(passed=1, failed=1, deselected=1)
    first.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    assert [(n, r["status"]) for n, r in records.items()] == [
        ("config_001", "passed"),
        ("config_002", "failed"),
        ("config_003", "not_run"),
    ]
    again, records = run(ray_sweep, *backend, "--lf")
    again.assert_outcomes(failed=1, deselected=3)
    assert [(n, r["status"]) for n, r in records.items()] == [("config_002", "failed")]


def test_sigterm_writes_the_summary_and_leaves_no_actor(ray_sweep: SweepPytester, ray_cluster: RayCluster) -> None:
    ray_sweep.range_config(ONE_IN_TWO.format(fault="hold_once", spin=0.2), name="range")
    with running(popen(ray_sweep, *RAY, "-p", "no:cacheprovider")) as proc:
        wait_for(ray_sweep.path / "hold_once-config_002", proc)
        wait_for(ray_sweep.path / "hold_once-config_004", proc)
        # the actors' trials keep no checkpoints and never look: after the 20 s grace the run stops
        preempt(proc, timeout=90)
    out = (ray_sweep.path / "stdout.txt").read_text()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    sweep_dir = ray_sweep.only_sweep_dir(ray_sweep.path / "out")
    assert [(n, r["status"]) for n, r in ray_sweep.records(sweep_dir).items()] == [
        ("config_001", "passed"),
        ("config_002", "not_run"),
        ("config_003", "passed"),
        ("config_004", "not_run"),
    ]
    assert "The sweep was interrupted" in (sweep_dir / "sweep_analysis.txt").read_text()
    assert not list(sweep_dir.glob(".*"))
    assert "ALIVE" not in no_actor_alive(ray_cluster)


def test_a_node_lost_mid_trial_runs_its_trial_again_on_the_other_node(
    ray_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|hold_once\n", name="range")
    proc = popen(ray_sweep, *RAY, "-p", "no:cacheprovider")
    try:
        lost = wait_for(ray_sweep.path / "hold_once-config_002", proc)
        ray_cluster.remove_gpu_node(lost)
        assert proc.wait(timeout=120) == pytest.ExitCode.OK
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ray_cluster.add_gpu_node()  # two GPU nodes again for whatever runs next
    out = (ray_sweep.path / "stdout.txt").read_text()
    records = ray_sweep.records(ray_sweep.only_sweep_dir(ray_sweep.path / "out"))
    again = records["config_002"]
    assert again["status"] == "passed" and again["node_id"] != lost, out
    assert [t[0] for t in trainings(ray_sweep.path)].count("config_002") == 2
    (first_worker,) = [t[1] for t in trainings(ray_sweep.path) if t[0] == "config_002" and t[2] == lost]
    # Ray reports the lost actor as dead (its node declared dead) or, before that, as unreachable
    assert again["requeued"] in (
        [f"node {again['node']} of worker '{first_worker}' died"],
        [f"worker '{first_worker}' on {again['node']} stopped answering"],
    )
    assert "config_002 runs again (1 of 1)" in out, out
    assert not [line for line in out.splitlines() if RAY_LINE.search(line)], out  # the node's loss: our lines only
    assert "ALIVE" not in no_actor_alive(ray_cluster)


def test_asha_stops_the_hopeless_trials_on_the_actors(ray_sweep: SweepPytester) -> None:
    """The rung store is held by one actor on the controller's node, which every trial asks
    (tests/test_ray_shared_nothing.py checks it on nodes that share no disk with the controller)."""
    grid = "CONFIG_NUM_EPOCHS=3\nCONFIG_LEARNING_RATE=0.01|0.003|0.00001|0.00002\n"
    ray_sweep.range_config(ray_sweep.digits_config().replace("CONFIG_NUM_EPOCHS=2\n", "") + grid, name="range")
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "--sweep-scheduler=asha", "--sweep-order=grid")
    result.assert_outcomes(passed=4)
    statuses = [records[n]["status"] for n in sorted(records)]
    # config_001 and config_002 reach the first rung together: the later one may stop (if worse)
    assert statuses[2:] == ["stopped", "stopped"] and "passed" in statuses[:2], statuses
    assert {records[n]["epochs_run"] for n in ("config_003", "config_004")} == {1}
    assert {records[n]["rung"] for n in ("config_003", "config_004")} == {1}
    assert {r["worker"] for r in records.values()} == {"ray1", "ray2"}


@pytest.mark.parametrize("ship", [(), SHARE_NOTHING], ids=["shared", "shared-nothing"])
def test_a_trial_requeued_after_its_node_died_continues_from_its_checkpoint(
    ray_sweep: SweepPytester, ray_cluster: RayCluster, ship: tuple[str, ...]
) -> None:
    """Shared: the trial's checkpoint is in the sweep folder, where the other node looks.  Shared
    nothing (``shared_nothing.py``): each actor writes into its node's own temp folder, each
    checkpoint goes to the controller's inbox as it is written, and the trial's next node gets it."""
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|checkpoint_hold_once\n", name="range")
    output = ray_sweep.path / (CONTROLLER_OUT if ship else "out")
    proc = popen(ray_sweep, *RAY, "-p", "no:cacheprovider", *ship)
    try:
        lost = wait_for(ray_sweep.path / "checkpoint_hold_once-config_002", proc)
        # epoch 2's checkpoint is in the controller's sweep folder (shared nothing: copied there from
        # the inbox within seconds), the durable copy, before the node goes
        deadline = time.monotonic() + 30
        while not list(output.glob("sweep_*/config_002*/checkpoints/checkpoint-000002-epoch2.ckpt")):
            assert time.monotonic() < deadline and proc.poll() is None, (
                "epoch 2's checkpoint never reached the sweep folder"
            )
            time.sleep(0.2)
        ray_cluster.remove_gpu_node(lost)
        assert proc.wait(timeout=120) == pytest.ExitCode.OK
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ray_cluster.add_gpu_node()
    out = (ray_sweep.path / "stdout.txt").read_text()
    record = ray_sweep.records(ray_sweep.only_sweep_dir(output))["config_002"]
    assert record["status"] == "passed" and record["node_id"] != lost and record["requeued"], out
    assert record["resumed_from_epoch"] == 2 and record["epochs_run"] == 4
    acc = 0.0
    for epoch in range(1, 5):
        acc = acc * 0.5 + epoch
    assert record["test_acc"] == acc  # the same as an uninterrupted run
    epochs = [line.split() for line in (ray_sweep.path / "epochs.txt").read_text().splitlines()]
    assert [(e, node == lost) for _, e, node in epochs] == [("1", True), ("2", True), ("3", False), ("4", False)]
    sweep_dir = ray_sweep.only_sweep_dir(output)
    dirs = trial_dirs(ray_sweep.path)
    assert [name for name, _ in dirs] == ["config_002", "config_002"]  # the first run and the requeued one
    if ship:  # neither run wrote into the controller's folder: each into its node's own
        assert [node_temp(ray_cluster, d) is not None for _, d in dirs] == [True, True], dirs
        assert node_temp(ray_cluster, dirs[0][1]) != node_temp(ray_cluster, dirs[1][1])
    trial = sweep_dir / record["trial_dir"]
    assert sorted(p.name for p in trial.iterdir()) == ["config.txt", "output.log", "training_metrics.json"]
    assert "continuing from checkpoint checkpoints/checkpoint-000002-epoch2.ckpt" in (trial / "output.log").read_text()
    assert not list(sweep_dir.glob("**/.*"))  # no temp file, no token
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []
    assert "ALIVE" not in no_actor_alive(ray_cluster)


def trial_dirs(path: Path) -> list[tuple[str, Path]]:
    """``(trial, the folder its trainer wrote into)`` per training by the big and checkpoint faults."""
    log = path / "dirs.txt"
    return [(n, Path(d)) for n, d in (line.split(" ", 1) for line in log.read_text().splitlines())]


def node_temp(cluster: RayCluster, folder: Path) -> str | None:
    """Which simulated node's own temp folder ``folder`` is in (``node2``), or None."""
    return next((t.parent.name for t in cluster.nodes_dir.glob("node*/tmp") if folder.is_relative_to(t)), None)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def test_a_100_mib_trial_file_crosses_the_wire_and_one_over_the_limit_fails_its_trial(
    ray_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    """Shared nothing: every actor writes into its node's temp folder and ships the trial's files back."""
    ship = ("-p", "no:cacheprovider", "--sweep-ray-ship-files")
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT_MIB=100\nCONFIG_FAULT=none|big\n", name="range")
    big_out = f"{shared_nothing.CONTROLLER_DISK}/big"
    result, records = run(ray_sweep, *RAY, *ship, out=big_out)
    result.assert_outcomes(passed=2)
    big = ray_sweep.only_sweep_dir(ray_sweep.path / big_out) / records["config_002"]["trial_dir"] / "big.bin"
    assert big.stat().st_size == 100 * 2**20
    assert sha256(big) == (ray_sweep.path / "config_002.sha256").read_text()
    ((name, written),) = trial_dirs(ray_sweep.path)
    assert name == "config_002" and node_temp(ray_cluster, written) is not None, written
    assert not list(big.parent.parent.glob("**/.*"))  # no temp file left
    rss_big = [int(n) for n in (ray_sweep.path / "controller_rss.txt").read_text().splitlines()[-1].split()]

    # a 2 MiB file and a 2 MiB checkpoint over a 1 MiB limit: those trials fail, naming them
    ray_sweep.range_config(
        "CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT_MIB=2\nCONFIG_FAULT=none|big|big_checkpoint\n", name="range"
    )
    limited_out = f"{shared_nothing.CONTROLLER_DISK}/limited"
    limited, records = run(ray_sweep, *RAY, *ship, "--sweep-ray-ship-limit=1MiB", out=limited_out)
    limited.assert_outcomes(passed=1, failed=2)
    assert records["config_001"]["status"] == "passed"
    over, checkpoint = records["config_002"], records["config_003"]
    assert (over["status"], over["error"]) == (
        "failed",
        f"trial file {over['trial_dir']}/big.bin is 2 MiB (2097152 bytes), over --sweep-ray-ship-limit (1 MiB): "
        "not shipped to the controller; raise the limit or write less",
    )
    assert over["test_acc"] == 1.0  # what it measured stays in its record
    assert checkpoint["status"] == "failed"
    assert checkpoint["error"].startswith(
        f"checkpoint after 1 epoch not shipped: {checkpoint['trial_dir']}/checkpoints/checkpoint-000001-epoch1.ckpt "
        "is 2097"
    ), checkpoint["error"]
    assert checkpoint["error"].endswith(" bytes, over --sweep-ray-ship-limit (1 MiB)")
    limited_dir = ray_sweep.only_sweep_dir(ray_sweep.path / limited_out)
    assert not list(limited_dir.glob("**/big.bin")) and not list(limited_dir.glob("**/.*"))
    assert "Traceback" not in limited.stdout.str()
    # the controller never held the 100 MiB file whole: its peak memory is within 64 MiB of this run's
    rss_small = [int(n) for n in (ray_sweep.path / "controller_rss.txt").read_text().splitlines()[-1].split()]
    print(f"controller peaks (anon, shmem, maxrss KiB): {rss_big} with the 100 MiB file, {rss_small} without")
    assert rss_big[0] - rss_small[0] < 64 * 1024, (rss_big, rss_small)
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []


def test_a_sampled_search_runs_on_the_actors_with_one_shared_study(ray_sweep: SweepPytester) -> None:
    """One study for every actor (issue 22), held on the controller's node (issue 23)."""
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_BATCH_SIZE=16|32|64|128\n", name="range")
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "--sweep-search=random", "--sweep-trials=3")
    result.assert_outcomes(passed=3)
    assert sorted(records) == ["trial_001", "trial_002", "trial_003"]
    sizes = [r["CONFIG_BATCH_SIZE"] for r in records.values()]
    assert len(set(sizes)) == 3  # no configuration twice
    assert {r["search"] for r in records.values()} == {"random"}


def test_actors_start_where_ray_imported_a_pytest_plugin_first_and_warnings_are_errors(
    ray_sweep: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's worker processes import starlette (its serializers), and with it anyio, whose
    distribution has a pytest11 entry point: pytest cannot rewrite it in the actor's session."""
    pytest.importorskip("fastapi")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")  # anyio's plugin loads, here and on the actors
    ray_sweep.pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|fail\n", name="range")
    result = ray_sweep.pytester.runpytest_subprocess(
        "--range-config=range", "--sweep-output=out", *RAY, "-p", "no:cacheprovider", timeout=300
    )
    result.assert_outcomes(passed=1, failed=1)
    records = ray_sweep.records(ray_sweep.only_sweep_dir(ray_sweep.path / "out"))
    assert [(n, r["status"]) for n, r in records.items()] == [("config_001", "passed"), ("config_002", "failed")]
    assert "already imported" not in result.stdout.str() + result.stderr.str()


def test_an_actors_warnings_and_stderr_reach_the_controllers_report(ray_sweep: SweepPytester) -> None:
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=warn\nCONFIG_BATCH_SIZE=32|64\n", name="range")
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=2, warnings=2)
    workers = {name: record["worker"] for name, record in records.items()}
    assert set(workers.values()) <= {"ray1", "ray2"}
    # as a serial run shows them: the warnings summary, and each trial's captured stderr
    result.stdout.fnmatch_lines(
        [
            "*= warnings summary =*",
            "range::config_001*",
            f"  *conftest.py:*: UserWarning: config_001 warns on {workers['config_001']}",
            "*warnings.warn(*",
        ]
    )
    result.stdout.fnmatch_lines([f"*config_002 warns on {workers['config_002']}"])
    for name, worker in workers.items():
        result.stdout.fnmatch_lines(["*- Captured stderr call -*", f"{name} writes to stderr on {worker}"])
    # -s: what a trial writes to stderr past pytest's capture goes to the controller's stderr
    uncaptured, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "-s", out="uncaptured")
    uncaptured.assert_outcomes(passed=2, warnings=2)
    for name, record in records.items():
        assert f"{name} writes to stderr on {record['worker']}" in uncaptured.stderr.lines


#: What Ray itself prints in the driver: its log lines (``2026-12-07 12:37:13,970\tINFO worker.py:1 --``,
#: C++ ``[2026-12-07 12:37:13,970 E 123 456] core_worker.cc:``) and the raylets' error messages.
RAY_LINE = re.compile(
    r"\(raylet\)|(^|\[)\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(DEBUG|INFO|WARNING|ERROR|[DIWEF] )|Ray cluster at address"
)


def test_rays_own_messages_reach_the_terminal_only_with_sweep_ray_verbose(ray_sweep: SweepPytester) -> None:
    # config_002 kills its actor's process: the raylet tells the driver, which prints it by default
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|crash_once\n", name="range")
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert records["config_002"]["error"].startswith("worker crashed: ")
    terminal = result.stdout.str() + result.stderr.str()
    assert not [line for line in terminal.splitlines() if RAY_LINE.search(line)], terminal

    (ray_sweep.path / "crash_once-config_002").unlink()  # it crashes again
    verbose, _ = run(ray_sweep, *RAY, "-p", "no:cacheprovider", "--sweep-ray-verbose", out="verbose")
    verbose.assert_outcomes(passed=1, failed=1)
    verbose.stderr.fnmatch_lines(["*Connecting to existing Ray cluster at address: *"])
    verbose.stdout.fnmatch_lines(["*(raylet)* A worker died or was killed while executing a task*"])


def test_k_workers_per_gpu_are_k_actors_sharing_each_gpu(ray_sweep: SweepPytester, ray_cluster: RayCluster) -> None:
    """``--sweep-workers-per-gpu=2``: two actors of ``num_gpus=0.5`` on each one-GPU node, which Ray
    gives the same GPU id; each trial waits until all four run one (the ``gather`` fault)."""
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=gather\nCONFIG_BATCH_SIZE=16|32|64|128\n", name="range")
    per_gpu = ("--sweep-workers-per-gpu=2", "--sweep-ray-cpus-per-trial=0.5")  # a node has 1 CPU for 2 actors
    result, records = run(ray_sweep, *RAY, "-p", "no:cacheprovider", *per_gpu)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["sweep: Ray cluster at *: 3 nodes, 2 GPUs, 3 CPUs; starting 4 workers (0.5 GPU + 0.5 CPU each)"]
    )
    sharing: dict[tuple[str, str], set[str]] = {}  # (Ray node, GPU ids in the trial) -> workers
    for path in ray_sweep.path.glob("gather-*"):
        node, gpus = path.read_text().split()
        sharing.setdefault((node, gpus), set()).add(path.name.removeprefix("gather-"))
    assert sorted(map(len, sharing.values())) == [2, 2], sharing
    assert {node for node, _ in sharing} == ray_cluster.gpu_node_ids()
    assert all(gpus.isdigit() for _, gpus in sharing)  # one GPU id each
    assert {r["worker"] for r in records.values()} == {"ray1", "ray2", "ray3", "ray4"}


def test_a_resumed_shared_nothing_sweep_sends_a_trial_its_checkpoint_from_the_sweep_folder(
    ray_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    """A trial fails after its second epoch's checkpoint: its files, checkpoint included, come back
    to the sweep folder; ``--sweep-resume`` sends that checkpoint to the node that runs it again."""
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|checkpoint_fail_once\n", name="range")
    ship = (*RAY, "-p", "no:cacheprovider", "--sweep-ray-ship-files")
    first, records = run(ray_sweep, *ship, out=CONTROLLER_OUT)
    first.assert_outcomes(passed=1, failed=1)
    assert records["config_002"]["error"] == "failed after epoch 2 on purpose"
    sweep_dir = ray_sweep.only_sweep_dir(ray_sweep.path / CONTROLLER_OUT)
    trial = sweep_dir / records["config_002"]["trial_dir"]
    assert [p.name for p in (trial / "checkpoints").iterdir()] == ["checkpoint-000002-epoch2.ckpt"]
    resumed, records = run(ray_sweep, *ship, "--sweep-resume", out=CONTROLLER_OUT)
    resumed.assert_outcomes(passed=2)
    record = records["config_002"]
    assert record["status"] == "passed" and record["resumed_from_epoch"] == 2 and record["epochs_run"] == 4
    acc = 0.0
    for epoch in range(1, 5):
        acc = acc * 0.5 + epoch
    assert record["test_acc"] == acc
    epochs = [line.split()[1] for line in (ray_sweep.path / "epochs.txt").read_text().splitlines()]
    assert epochs == ["1", "2", "3", "4"]  # no epoch trained twice
    dirs = trial_dirs(ray_sweep.path)
    assert [node_temp(ray_cluster, d) is not None for _, d in dirs] == [True, True], dirs
    assert not (trial / "checkpoints").exists()  # it completed: its checkpoints go, there and here
    assert not list(sweep_dir.glob("**/.*"))
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []


def test_a_preempted_trial_that_reaches_no_step_boundary_keeps_the_checkpoint_its_node_sent(
    ray_sweep: SweepPytester, ray_cluster: RayCluster
) -> None:
    """SIGTERM while the trial waits inside an epoch (no step boundary, so no look at the stop
    request): its actor is killed after the grace period; the checkpoint the trial had sent to the
    controller's inbox is in the sweep folder, and ``--sweep-resume`` sends it to the node that
    continues the trial."""
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|checkpoint_hold_once\n", name="range")
    ship = (*RAY, "-p", "no:cacheprovider", *SHARE_NOTHING)
    with running(popen(ray_sweep, *ship)) as proc:
        wait_for(ray_sweep.path / "checkpoint_hold_once-config_002", proc)  # after epoch 2's checkpoint
        preempt(proc, timeout=120)
    out = (ray_sweep.path / "stdout.txt").read_text()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    sweep_dir = ray_sweep.only_sweep_dir(ray_sweep.path / CONTROLLER_OUT)
    assert ray_sweep.records(sweep_dir)["config_002"]["status"] == "not_run"
    (trial,) = sweep_dir.glob("config_002*")
    assert [p.name for p in (trial / "checkpoints").iterdir()] == ["checkpoint-000002-epoch2.ckpt"]
    assert "ALIVE" not in no_actor_alive(ray_cluster)

    resumed, records = run(ray_sweep, *ship, "--sweep-resume", out=CONTROLLER_OUT)
    resumed.assert_outcomes(passed=2)
    record = records["config_002"]
    assert record["status"] == "passed" and record["resumed_from_epoch"] == 2 and record["epochs_run"] == 4
    epochs = [line.split()[1] for line in (ray_sweep.path / "epochs.txt").read_text().splitlines()]
    assert epochs == ["1", "2", "3", "4"]  # no epoch trained twice
    assert not (trial / "checkpoints").exists()
    assert not list(sweep_dir.glob("**/.*"))
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []


@pytest.mark.parametrize("share", [(), SHARE_NOTHING], ids=["shared", "shared-nothing"])
def test_a_preempted_ray_sweep_checkpoints_its_running_trials_through_ray(
    ray_sweep: SweepPytester, ray_cluster: RayCluster, share: tuple[str, ...]
) -> None:
    """SIGTERM: the actors hear the controller's stop request through Ray (its checkpoint inbox),
    also those that see no sweep folder (so no flag file): the running trial checkpoints at its
    next step boundary and ends "preempted" long before the grace period would kill it; its
    checkpoint is in the sweep folder (shared nothing: shipped back), and ``--sweep-resume``
    continues from the epoch reached at SIGTERM."""
    ray_sweep.range_config("CONFIG_FAULT_SPIN=0.2\nCONFIG_FAULT=none|checkpoint_slow_once\n", name="range")
    ship = (*RAY, "-p", "no:cacheprovider", *share)
    output = CONTROLLER_OUT if share else "out"
    with running(popen(ray_sweep, *ship)) as proc:
        wait_for(ray_sweep.path / "checkpoint_slow_once-config_002", proc)  # after epoch 2's checkpoint
        time.sleep(1.2)  # an epoch or two more (half a second each), each checkpointed and shipped
        took = preempt(proc, timeout=120)
        print(f"SIGTERM to exit: {took:.2f} s")  # -s shows it (docs/notes quote it)
    out = (ray_sweep.path / "stdout.txt").read_text()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    # heard at the next step boundary (at most a second of polling, half a second of epoch), not
    # after the grace period (the old way: the actors never heard it and were killed then)
    assert took < GRACE_SECONDS / 2, (took, out)
    sweep_dir = ray_sweep.only_sweep_dir(ray_sweep.path / output)
    record = ray_sweep.records(sweep_dir)["config_002"]
    reached = [int(line.split()[1]) for line in (ray_sweep.path / "epochs.txt").read_text().splitlines()]
    assert reached == list(range(1, len(reached) + 1)) and len(reached) > 2, reached
    assert record["status"] == "not_run" and record["error"] == (
        f"preempted (SIGTERM) after {len(reached)} epochs; checkpointed, pytest --sweep-resume continues it"
    ), record
    (trial,) = sweep_dir.glob("config_002*")
    assert checkpoint_files(trial), sorted(str(p) for p in sweep_dir.rglob("*"))
    assert checkpoint_files(trial)[0].name == f"checkpoint-{len(reached):06d}-epoch{len(reached)}.ckpt"
    if share:  # the older ones the node dropped go here too
        assert len(checkpoint_files(trial)) == 1
    assert "ALIVE" not in no_actor_alive(ray_cluster)

    resumed, records = run(ray_sweep, *ship, "--sweep-resume", out=output)
    resumed.assert_outcomes(passed=2)
    record = records["config_002"]
    assert record["status"] == "passed" and record["epochs_run"] == 60
    assert record["resumed_from_epoch"] == len(reached)  # the epoch reached at SIGTERM, not an earlier one
    epochs = [line.split()[1] for line in (ray_sweep.path / "epochs.txt").read_text().splitlines()]
    assert epochs == [str(e) for e in range(1, 61)]  # no epoch trained twice
    assert not (trial / "checkpoints").exists()
    assert not list(sweep_dir.glob("**/.*"))
    assert shared_nothing.violations(ray_cluster.nodes_dir) == []


#: An actor's stop probe (``SweepWorker._stop_requested``) against a real inbox actor, then a dead one.
PROBE_SCRIPT = """
import json, time, types
import ray
from pytest_sweep.matrix.ray.inbox import CheckpointInbox
from pytest_sweep.matrix.ray.worker import SweepWorker

ray.init(log_to_driver=False)
inbox = ray.remote(num_cpus=0, max_restarts=0)(CheckpointInbox).remote()
actor = types.SimpleNamespace(asked=None, spec={"inbox": inbox})
answers, live = [], []
for _ in range(50):  # a step boundary's look, once a second in a run: here back to back
    started = time.monotonic()
    answers.append(SweepWorker._stop_requested(actor))
    live.append(time.monotonic() - started)
inbox.request_stop.remote("SIGTERM")
deadline = time.monotonic() + 30
while SweepWorker._stop_requested(actor) != "SIGTERM":
    assert time.monotonic() < deadline, "the stop request never came"
    time.sleep(0.1)
ray.kill(inbox, no_restart=True)
while True:  # the kill takes a moment: until a call fails
    try:
        ray.get(inbox.stop_requested.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        break
    time.sleep(0.05)
slowest, dead = 0.0, []
for _ in range(20):
    started = time.monotonic()
    dead.append(SweepWorker._stop_requested(actor))
    slowest = max(slowest, time.monotonic() - started)
    time.sleep(0.05)
print(json.dumps({"before": answers, "live": live, "dead": dead, "slowest": slowest}))
"""


def test_an_actors_stop_probe_hears_the_inbox_and_never_fails_when_it_is_gone(ray_cluster: RayCluster) -> None:
    """Before the request: no stop; after it: SIGTERM; with the inbox dead (the controller's node
    gone): no stop and no error, and no step boundary waits more than a moment for it."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT],
        env={**os.environ, **ray_cluster.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    live = sorted(found["live"][1:])  # the first call waits for the new actor to start
    print(
        f"probe: live median {live[24] * 1000:.2f} ms, max {live[-1] * 1000:.1f} ms; dead max {found['slowest'] * 1000:.1f} ms"
    )
    assert found["before"] == [None] * 50
    assert found["dead"] == [None] * 20
    # each call waits 50 ms at most for the answer (a busy machine adds to that); never as long as
    # a call to a gone actor could hang
    assert live[-1] < 5.0 and found["slowest"] < 5.0, found
