"""SIGTERM (a preemption): running trials checkpoint, the summary is written, exit code 75, and a
requeue loop that reruns the command with ``--sweep-resume`` until it exits 0 finishes the sweep
with the results of an uninterrupted run (issue 21).

The inner runs train a torch-free plugin trainer: each epoch is 25 steps of 20 ms, its "accuracy"
a function of every step it took (so a step done twice or skipped shows), checkpointing through
the trial context (``CONFIG_CHECKPOINTS=y``) or not at all.  The test is the requeue script the
docs give for Slurm: it starts the sweep, sends SIGTERM once the chosen trial is mid-epoch, and
reruns the same command (plus ``--sweep-resume``) while the exit code is 75.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.preempt import FLAG_FILE, POLL_SECONDS, PROBE_KEY, Preemption, raise_flag
from pytest_sweep.matrix.ray import worker as ray_worker

from sweep_helpers import HERMETIC_ENV, PLUGIN_ARGS, XDIST_PLUGIN_ARGS, SweepPytester

COUNTER = """
import os
import time

import pytest
from pytest_sweep.matrix import Symbol

STEPS = 25


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_CHECKPOINTS", "bool", True, "Whether the trainer checkpoints")]


def step(acc, epoch, s):
    return (acc * 31 + epoch * 7 + s) % 1000 / 10


class Counter:
    def run(self, trial, ctx):
        aware = trial["CONFIG_CHECKPOINTS"]
        state = (ctx.load_checkpoint() if aware else None) or {"epoch": 0, "step": 0, "acc": 0.0}
        epoch, s, acc = state["epoch"], state["step"], state["acc"]
        while epoch < trial["CONFIG_NUM_EPOCHS"]:
            while s < STEPS:
                time.sleep(0.02)
                s += 1
                acc = step(acc, epoch, s)
                with open(os.environ["PROGRESS"], "a") as fh:
                    fh.write(f"{trial.name} {epoch} {s} {os.getpid()}\\n")
                if aware and ctx.checkpoint_due():
                    ctx.save_checkpoint({"epoch": epoch, "step": s, "acc": acc})
            epoch, s = epoch + 1, 0
            ctx.epoch_ended({"epoch": epoch, "test_acc": acc})
            if aware:
                ctx.save_checkpoint({"epoch": epoch, "step": 0, "acc": acc})
        return {"test_acc": acc, "epochs_run": epoch}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Counter()
"""

#: Four trials: config_001/_002 checkpoint (2 and 3 epochs), config_003/_004 do not (keys sorted, last fastest).
RANGE = "CONFIG_NUM_EPOCHS=2|3\nCONFIG_CHECKPOINTS=y|n\n"
EXIT_PREEMPTED = 75


def expected_acc(epochs: int, steps: int = 25) -> float:
    acc = 0.0
    for epoch in range(epochs):
        for s in range(1, steps + 1):
            acc = (acc * 31 + epoch * 7 + s) % 1000 / 10
    return acc


def progress(path: Path) -> list[tuple[str, int, int, str]]:
    if not path.exists():
        return []
    return [(n, int(e), int(s), pid) for n, e, s, pid in (line.split() for line in path.read_text().splitlines())]


def requeue(sp: SweepPytester, plugins: tuple[str, ...], extra: tuple[str, ...], when: Any, group: bool) -> list[int]:
    """The requeue script: run, SIGTERM once ``when(progress)`` holds, rerun with --sweep-resume while exit is 75."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(HERMETIC_ENV, PROGRESS=str(sp.path / "progress.txt"))
    base = [sys.executable, "-m", "pytest", *plugins, "--range-config=sweep.rc", "-p", "no:cacheprovider", *extra]
    codes: list[int] = []
    for attempt in range(4):
        cmd = base + (["--sweep-resume"] if attempt else [])
        with open(sp.path / f"run{attempt}.txt", "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=sp.path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            if attempt == 0:
                deadline = time.monotonic() + 120
                while not when(progress(sp.path / "progress.txt")):
                    assert proc.poll() is None, (sp.path / "run0.txt").read_text()
                    assert time.monotonic() < deadline, "the trial never got there"
                    time.sleep(0.01)
                if group:  # Slurm signals every process of the job
                    os.killpg(proc.pid, signal.SIGTERM)
                else:  # Kubernetes signals the container's first process: the controller
                    proc.send_signal(signal.SIGTERM)
            codes.append(proc.wait(timeout=180))
            for summary in (sp.path / "test_matrix_results").glob("*/sweep_summary.json"):
                (sp.path / f"summary{attempt}.json").write_bytes(summary.read_bytes())  # what each run left
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if codes[-1] != EXIT_PREEMPTED:
            break
    return codes


def mid_epoch(name: str, epoch: int = 1, step: int = 5) -> Any:
    return lambda seen: any(n == name and e == epoch and s >= step for n, e, s, _ in seen)


def check_final(sp: SweepPytester, sweep_dir: Path) -> dict[str, dict[str, Any]]:
    records = sp.records(sweep_dir)
    assert [r["status"] for r in records.values()] == ["passed"] * 4
    for rec in records.values():
        assert rec["test_acc"] == expected_acc(int(rec["CONFIG_NUM_EPOCHS"])), rec  # as if never interrupted
        assert not (sweep_dir / rec["trial_dir"] / "checkpoints").exists()
    assert not (sweep_dir / ".sweep-preempt").exists()
    return records


def steps_of(name: str, seen: list[tuple[str, int, int, str]]) -> list[tuple[int, int]]:
    return [(e, s) for n, e, s, _ in seen if n == name]


def test_serial_sigterm_checkpoints_the_running_trial_and_the_requeue_loop_finishes(
    sweep_pytester: SweepPytester,
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(COUNTER)
    sp.range_config(RANGE)
    codes = requeue(sp, PLUGIN_ARGS, ("--sweep-progress=none",), mid_epoch("config_002"), group=False)
    assert codes == [EXIT_PREEMPTED, 0]

    first = (sp.path / "run0.txt").read_text()
    assert "Traceback" not in first and "INTERNALERROR" not in first
    assert "sweep: preempted (SIGTERM): running trials checkpointed, summary written; pytest --sweep-resume=" in first
    seen = progress(sp.path / "progress.txt")
    pids = list(dict.fromkeys(pid for *_, pid in seen))
    assert len(pids) == 2
    before = [(n, e, s) for n, e, s, pid in seen if pid == pids[0]]
    # the first run: config_001 done, config_002 stopped at its next step boundary, the others never started
    last = before[-1]
    assert last[0] == "config_002" and last[1] == 1 and last[2] >= 5
    assert "sweep.rc .s" in first  # config_002's item: skipped as preempted
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    after = [(n, e, s) for n, e, s, pid in seen if pid == pids[1]]
    # resumed: config_002 goes on with the step after its checkpoint; the others from their start
    assert after[0] == ("config_002", 1, last[2] + 1)
    assert {n for n, _, _ in after} == {"config_002", "config_003", "config_004"}
    records = check_final(sp, sweep_dir)
    assert records["config_002"]["resumed_from_epoch"] == 1
    assert records["config_001"]["reused"] and not records["config_002"]["reused"]
    log = (sweep_dir / records["config_002"]["trial_dir"] / "output.log").read_text()
    assert "preempted (SIGTERM) after 1 epoch; checkpointed, pytest --sweep-resume continues it" in log
    assert "checkpoint after 1 epoch: checkpoints/checkpoint-000002-epoch1.ckpt" in log


def test_serial_sigterm_interrupts_a_trainer_without_checkpoints_and_it_starts_over(
    sweep_pytester: SweepPytester,
) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(COUNTER)
    sp.range_config(RANGE)
    codes = requeue(sp, PLUGIN_ARGS, ("--sweep-progress=none",), mid_epoch("config_003"), group=False)
    assert codes == [EXIT_PREEMPTED, 0]
    seen = progress(sp.path / "progress.txt")
    pids = list(dict.fromkeys(pid for *_, pid in seen))
    after = [(n, e, s) for n, e, s, pid in seen if pid == pids[1]]
    assert after[0] == ("config_003", 0, 1)  # from scratch
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    records = check_final(sp, sweep_dir)
    assert records["config_003"]["resumed_from_epoch"] is None
    first = {r["config_file"]: r for r in json.loads((sp.path / "summary0.json").read_text())}
    assert [first[n]["status"] for n in sorted(first)] == ["passed", "passed", "not_run", "not_run"]
    assert first["config_003"]["error"] == (
        "preempted (SIGTERM); its trainer keeps no checkpoints, so pytest --sweep-resume trains it from scratch"
    )
    assert first["config_004"]["error"] == "sweep preempted (SIGTERM); pytest --sweep-resume runs it"


def two_mid_epoch(seen: list[tuple[str, int, int, str]]) -> bool:
    """Both workers are in a trial's second epoch (step 5 or later)."""
    latest = {pid: (n, e, st) for n, e, st, pid in seen}
    return sum(1 for _, e, st in latest.values() if e == 1 and st >= 5) >= 2


@pytest.mark.parametrize("group", [False, True], ids=["controller-only", "every-process"])
def test_xdist_workers_checkpoint_on_the_controllers_sigterm(sweep_pytester: SweepPytester, group: bool) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(COUNTER)
    sp.range_config(RANGE)
    codes = requeue(sp, XDIST_PLUGIN_ARGS, ("-n", "2", "--sweep-progress=none"), two_mid_epoch, group=group)
    assert codes == [EXIT_PREEMPTED, 0]
    first = (sp.path / "run0.txt").read_text()
    assert "Traceback" not in first and "INTERNALERROR" not in first and "crashed" not in first
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    seen = progress(sp.path / "progress.txt")
    first_pids = {pid for *_, pid in seen[: next(i for i in range(len(seen)) if two_mid_epoch(seen[: i + 1])) + 1]}
    records = check_final(sp, sweep_dir)
    running = {n for n, _, _, pid in seen if pid in first_pids and not records[n]["reused"]}
    assert len(running) >= 2, running
    for name in running:  # the trials the SIGTERM caught mid-epoch
        steps = steps_of(name, seen)
        if records[name]["CONFIG_CHECKPOINTS"] == "y":
            assert records[name]["resumed_from_epoch"] == 1
            assert len(steps) == len(set(steps)), steps  # the resumed run goes on after its checkpoint
        else:
            assert records[name]["resumed_from_epoch"] is None
            assert steps.count((0, 1)) == 2  # no checkpoint: it started over


def test_a_probe_is_asked_at_most_once_a_second_and_its_answer_stops_the_worker() -> None:
    """A Ray actor hears its controller through a probe (``preempt.py``), not a file."""
    answers: list[str | None] = [None, "SIGTERM"]
    asked: list[float] = []

    def probe() -> str | None:
        asked.append(time.monotonic())
        return answers.pop(0)

    preemption = Preemption(probe=probe)
    assert preemption.requested() is None
    assert preemption.requested() is None  # within the second: not asked again
    assert len(asked) == 1
    deadline = time.monotonic() + 5
    while preemption.requested() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert preemption.reason == "SIGTERM" and len(asked) == 2
    assert asked[1] - asked[0] >= POLL_SECONDS
    assert preemption.requested() == "SIGTERM" and len(asked) == 2  # the answer stays; no more asking


def test_a_probe_that_raises_is_no_request_and_no_error_in_the_trial() -> None:
    def unreachable() -> str | None:
        raise ConnectionError("the controller's node is gone")

    preemption = Preemption(probe=unreachable)
    assert preemption.requested() is None
    preemption._next_poll = 0.0  # the next look is due now
    assert preemption.requested() is None


def test_the_flag_file_still_counts_beside_a_probe(tmp_path: Path) -> None:
    """A Ray actor that sees the sweep folder hears the flag file too (and xdist workers only it)."""
    preemption = Preemption(tmp_path / FLAG_FILE, probe=lambda: None)
    assert preemption.requested() is None
    raise_flag(tmp_path)
    preemption._next_poll = 0.0
    assert preemption.requested() == "SIGTERM"


def test_the_probe_key_is_the_one_the_ray_actor_sets() -> None:
    assert ray_worker.PROBE_KEY == PROBE_KEY  # worker.py imports nothing of pytest-sweep: its own copy
