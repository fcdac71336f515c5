"""Checkpoint files without torch: the format, the policy, and every way a file can be unusable (issue 21)."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.checkpoints import (
    FOLDER,
    PlainCodec,
    Policy,
    TrialCheckpoints,
    checkpoint_files,
    decode,
    encode,
    identity,
    parse_every,
    remove_checkpoints,
)
from pytest_sweep.matrix.stages import make_stages
from pytest_sweep.matrix.trial import Stage, Trial, TrialContext, TrialFailed, TrialPreempted, stage_id, unstaged_id

from sweep_helpers import SweepPytester, assert_usage_error


def trial(name: str = "config_001", seed: int = 42, lr: str = "0.1") -> Trial:
    return Trial(name, 1, "sweep.rc", {"CONFIG_LEARNING_RATE": float(lr)}, {"CONFIG_LEARNING_RATE": lr}, {}, seed=seed)


class Box:
    """A trial's checkpoints in ``folder`` with a log to look at."""

    def __init__(self, folder: Path, t: Trial | None = None, policy: Policy | None = None) -> None:
        self.lines: list[str] = []
        self.notes: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.stop: str | None = None
        self.ckpt = TrialCheckpoints(
            folder,
            t or trial(),
            policy or Policy(),
            [PlainCodec()],
            log=self.lines.append,
            note=self.notes.append,
            history=self.history,
            stop=lambda: self.stop,
        )

    def epoch(self, n: int) -> None:
        self.history.append({"epoch": n, "test_acc": 10.0 * n})


# -- the interval option ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", (1, None)), (" 5 ", (5, None)), ("600s", (None, 600.0)), ("0.5s", (None, 0.5)), ("off", (None, None)),
     ("OFF", (None, None)), ("2S", (None, 2.0))],
)  # fmt: skip
def test_checkpoint_every_accepts_epochs_seconds_or_off(text: str, expected: tuple[int | None, float | None]) -> None:
    assert parse_every(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "is not an interval"), ("0", "at least 1"), ("-3", "at least 1"), ("1.5", "is not an interval"),
     ("abc", "is not an interval"), ("s", "not a number of seconds"), ("0s", "above 0"), ("-5s", "above 0"),
     ("nans", "above 0"), ("infs", "above 0"), ("1e309s", "above 0"), ("99999999999", "at most"),
     ("10 epochs", "is not a number of seconds")],
)  # fmt: skip
def test_checkpoint_every_refuses_the_rest_with_the_fix(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as exc:
        parse_every(text)
    assert "e.g. 600s" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sweep-checkpoint-every=0",), "*--sweep-checkpoint-every: '0': the epochs must be at least 1*"),
        (("--sweep-checkpoint-every=fast",), "*--sweep-checkpoint-every: 'fast' is not an interval; give a whole*"),
        (("--sweep-checkpoint-every=-1s",), "*--sweep-checkpoint-every: '-1s': the seconds must be above 0*"),
        (("--sweep-checkpoint-keep=0",), "*--sweep-checkpoint-keep: 0 must be at least 1*"),
        (("--sweep-checkpoint-keep=many",), "*--sweep-checkpoint-keep: 'many' is not a whole number*"),
        (("--sweep-asha-mode=eager",), "*--sweep-asha-mode: 'eager': use stopping or promotion*"),
        (("--sweep-asha-mode=promotion",), "*--sweep-asha-mode=promotion needs --sweep-scheduler=asha*"),
    ],
)
def test_bad_checkpoint_options_are_usage_errors(
    sweep_pytester: SweepPytester, args: tuple[str, ...], message: str
) -> None:
    rc = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.01|0.001"))
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}", *args), message)


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("sweep_checkpoint_every = 0s", "*ini value sweep_checkpoint_every: '0s': the seconds must be above 0*"),
        ("sweep_checkpoint_keep = -2", "*ini value sweep_checkpoint_keep = '-2': -2 must be at least 1*"),
        ("sweep_asha_mode = both", "*ini value sweep_asha_mode = 'both': use stopping or promotion*"),
        ("sweep_keep_checkpoints = maybe", "*ini value sweep_keep_checkpoints = 'maybe': use true or false*"),
    ],
)
def test_bad_checkpoint_ini_values_are_usage_errors(sweep_pytester: SweepPytester, ini: str, message: str) -> None:
    sweep_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    rc = sweep_pytester.range_config(sweep_pytester.digits_config("CONFIG_LEARNING_RATE=0.01|0.001"))
    assert_usage_error(sweep_pytester.run(f"--range-config={rc}"), message)


# -- the policy ---------------------------------------------------------------------------------
def test_due_every_epoch_by_default_and_never_after_a_final_stop(tmp_path: Path) -> None:
    box = Box(tmp_path)
    assert not box.ckpt.due()  # nothing trained yet
    box.epoch(1)
    assert box.ckpt.due()
    assert box.ckpt.save({"w": 1})
    assert not box.ckpt.due() and not box.ckpt.save({"w": 1})  # saved at this epoch already
    assert box.ckpt.save({"w": 1}, force=True)
    assert not box.ckpt.due(final=True)  # a completed trial's checkpoint is removed: not worth writing
    box.stop = "SIGTERM"
    assert box.ckpt.due()  # preemption: now, mid-epoch too


def test_due_every_n_epochs_or_seconds_or_off(tmp_path: Path) -> None:
    box = Box(tmp_path, policy=Policy(every_epochs=3))
    for n in (1, 2):
        box.epoch(n)
        assert not box.ckpt.due()
    box.epoch(3)
    assert box.ckpt.due()
    timed = Box(tmp_path / "t", policy=Policy(every_epochs=None, every_seconds=0.05))
    assert not timed.ckpt.due()
    time.sleep(0.06)
    assert timed.ckpt.due()  # by time: mid-epoch too
    off = Box(tmp_path / "o", policy=Policy(every_epochs=None, every_seconds=None))
    off.epoch(1)
    assert not off.ckpt.due() and not off.ckpt.due(final=True)
    kept = Box(tmp_path / "k", policy=Policy(keep_after=True))
    assert kept.ckpt.due(final=True)


def test_keep_n_newest_and_remove_at_the_end(tmp_path: Path) -> None:
    box = Box(tmp_path, policy=Policy(keep=2))
    for n in range(1, 5):
        box.epoch(n)
        box.ckpt.save({"n": n})
    assert [p.name for p in checkpoint_files(tmp_path)] == [
        "checkpoint-000004-epoch4.ckpt",
        "checkpoint-000003-epoch3.ckpt",
    ]
    assert box.notes[-1].startswith("checkpoint after 4 epochs: checkpoints/checkpoint-000004-epoch4.ckpt (")
    (tmp_path / FOLDER / ".checkpoint-000005-epoch5.ckpt.x.tmp").write_bytes(b"half")  # a save killed halfway
    box.ckpt.remove_all()
    assert not (tmp_path / FOLDER).exists()
    keep = Box(tmp_path, policy=Policy(keep_after=True))
    keep.epoch(1)
    keep.ckpt.save({"n": 1})
    keep.ckpt.remove_all()
    assert len(checkpoint_files(tmp_path)) == 1
    remove_checkpoints(tmp_path)
    assert not (tmp_path / FOLDER).exists()


# -- round trip and the history ------------------------------------------------------------------
def test_load_gives_the_state_and_the_history_back(tmp_path: Path) -> None:
    box = Box(tmp_path)
    for n in (1, 2):
        box.epoch(n)
    state = {"w": [1.5, -0.0, 1e300], "step": 7, "name": "x", "raw": b"\x00\xff", "t": (1, None, True)}
    box.ckpt.save(state)
    again = Box(tmp_path)
    assert again.ckpt.load() == state
    assert (again.history, again.ckpt.resumed_from, again.ckpt.aware) == (box.history, 2, True)
    assert again.lines == [f"continuing from checkpoint {FOLDER}/checkpoint-000001-epoch2.ckpt: 2 epochs done, "
                           f"written {again.lines[0].split('written ')[1]}"]  # fmt: skip
    again.ckpt.discard("the model has another shape")
    assert again.history == [] and again.ckpt.resumed_from is None and checkpoint_files(tmp_path) == []
    assert "does not fit this trial (the model has another shape): training from scratch" in again.lines[-1]


def test_no_checkpoint_no_line(tmp_path: Path) -> None:
    box = Box(tmp_path)
    assert box.ckpt.load() is None and box.lines == [] and box.ckpt.aware


def test_a_trainer_without_checkpoints_in_a_bare_context() -> None:
    ctx = TrialContext(dir=Path("."), log=print, epoch_ended=lambda m: False)
    assert ctx.load_checkpoint() is None and not ctx.save_checkpoint({"a": 1}) and not ctx.checkpoint_due()
    ctx.discard_checkpoint("nothing")  # nothing to discard


# -- unusable files ----------------------------------------------------------------------------------
def _saved(folder: Path, state: Any = None, t: Trial | None = None) -> Path:
    box = Box(folder, t)
    box.epoch(1)
    box.ckpt.save(state if state is not None else {"w": 1})
    (path,) = checkpoint_files(folder)
    return path


def _damage(kind: str, path: Path) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[:-3])
    elif kind == "flipped":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x89PNG not a checkpoint" * 10)
    elif kind == "future format":
        path.write_bytes(data.replace(b"CHECKPOINT 1\n", b"CHECKPOINT 9\n", 1))
    elif kind == "header cut":
        path.write_bytes(data[:40])
    elif kind == "header not json":
        first, _, rest = data.partition(b"\n")
        _, _, payload = rest.partition(b"\n")
        path.write_bytes(first + b"\n{not json\n" + payload)
    elif kind == "unreadable":
        path.unlink()
        path.mkdir()  # reading it fails (as root, a mode of 000 would not)
    elif kind == "a global in the pickle":
        header, _ = decode(data)
        evil = pickle.dumps(print)  # pickles a reference to builtins.print: loading would look it up
        path.write_bytes(encode({k: v for k, v in header.items() if k not in ("size", "crc32")}, evil))


DAMAGE = {
    "truncated": "truncated: ",
    "flipped": "damaged: the payload's checksum does not match",
    "empty": "the file is empty",
    "garbage": "not a pytest-sweep checkpoint (no header)",
    "future format": "written in checkpoint format '9'; this pytest-sweep reads format 1",
    "header cut": "truncated inside its header",
    "header not json": "its header is not valid JSON",
    "unreadable": "cannot read it (",
    "a global in the pickle": "its plain payload does not load (UnpicklingError: it names builtins.print",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_checkpoint_is_removed_with_one_line_and_the_trial_starts_over(tmp_path: Path, kind: str) -> None:
    path = _saved(tmp_path)
    _damage(kind, path)
    box = Box(tmp_path)
    assert box.ckpt.load() is None
    assert len(box.lines) == 2, box.lines
    assert box.lines[0].startswith(f"checkpoint {FOLDER}/{path.name} not used: {DAMAGE[kind]}")
    if kind != "unreadable":
        assert box.lines[0].endswith("; removed") and not path.exists()
    assert box.lines[1] == "no usable checkpoint: training from scratch"
    assert box.history == [] and box.ckpt.resumed_from is None


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (trial("config_002"), "written by another trial (config_002)"),
        (trial(lr="0.2"), "written with another config (CONFIG_LEARNING_RATE differ)"),
        (trial(seed=7), "written with seed 7, this trial's is 42"),
    ],
)
def test_a_checkpoint_of_another_trial_config_or_seed_is_never_loaded(tmp_path: Path, other: Trial, why: str) -> None:
    _saved(tmp_path, t=other)  # in this trial's folder: copied over, or left by an earlier config
    box = Box(tmp_path)
    assert box.ckpt.load() is None
    assert why in box.lines[0]


def test_a_damaged_newest_falls_back_to_the_older_one(tmp_path: Path) -> None:
    box = Box(tmp_path, policy=Policy(keep=2))
    for n in (1, 2):
        box.epoch(n)
        box.ckpt.save({"n": n})
    _damage("flipped", checkpoint_files(tmp_path)[0])
    again = Box(tmp_path)
    assert again.ckpt.load() == {"n": 1} and again.ckpt.resumed_from == 1 and len(again.history) == 1
    assert "not used: damaged" in again.lines[0] and "continuing from checkpoint" in again.lines[1]


def test_a_state_a_checkpoint_cannot_hold_fails_the_trial_in_one_line(tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.epoch(1)
    with pytest.raises(
        TrialFailed, match=r"cannot save the state: state\['opt'\]\[1\] is a builtins.set; a checkpoint"
    ):
        box.ckpt.save({"opt": [1, {2}]})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(TrialFailed, match="nested more than 100 levels deep"):
        box.ckpt.save(looped)
    with pytest.raises(TrialFailed, match="has a key of type tuple"):
        box.ckpt.save({(1, 2): 3})
    assert checkpoint_files(tmp_path) == []


def test_preempted_save_writes_then_ends_the_trial(tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.epoch(1)
    box.stop = "SIGTERM"
    with pytest.raises(
        TrialPreempted, match=r"preempted \(SIGTERM\) after 1 epoch; checkpointed, pytest --sweep-resume"
    ):
        box.ckpt.save({"n": 1})
    assert len(checkpoint_files(tmp_path)) == 1


def test_readers_never_see_a_half_written_checkpoint(tmp_path: Path) -> None:
    """A writer saves 30 times while a reader loads over and over: every load is whole."""
    writer = Box(tmp_path, policy=Policy(keep=1))
    big = {"w": list(range(50_000))}
    problems: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            reader = Box(tmp_path)
            reader.ckpt._remove = staticmethod(lambda p: "")  # type: ignore[method-assign,assignment]  # look, do not touch
            state = reader.ckpt.load()
            problems.extend(line for line in reader.lines if "not used" in line and "No such file" not in line)
            if state is not None and state != big:
                problems.append("a different state")
            time.sleep(0.001)  # let the writer have the interpreter too

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for n in range(30):
            writer.epoch(n)
            writer.ckpt.save(big, force=True)
    finally:
        done.set()
        thread.join()
    assert problems == []


def test_identity_is_the_trial_its_config_and_seed() -> None:
    assert identity(trial()) == {
        "trial": "config_001",
        "config_file": "config_001",
        "config": {"CONFIG_LEARNING_RATE": "0.1"},
        "seed": 42,
    }


# -- stages -------------------------------------------------------------------------------------------
def test_stages_end_at_the_rungs_then_the_last_epoch() -> None:
    assert make_stages([1, 3, 9, 27]) == [
        Stage(0, 1, None, False),
        Stage(1, 3, 1, False),
        Stage(2, 9, 3, False),
        Stage(3, 27, 9, True),
    ]
    assert make_stages([5]) == [] and make_stages([]) == []
    assert make_stages([0, 7, 3, 3, 10]) == [Stage(0, 3, None, False), Stage(1, 7, 3, False), Stage(2, 10, 7, True)]


def test_stage_ids_round_trip() -> None:
    stage = Stage(1, 3, 1, False)
    assert stage_id("config_001[LR=0.1]", stage) == "config_001[LR=0.1-to_epoch3]"
    assert stage_id("config_001", stage) == "config_001[to_epoch3]"
    assert unstaged_id("config_001[LR=0.1-to_epoch3]") == "config_001[LR=0.1]"
    assert unstaged_id("config_001[to_epoch3]") == "config_001"
    assert unstaged_id("config_001[LR=0.1]") == "config_001[LR=0.1]"


# -- a Ray node without the sweep folder ships each checkpoint as it is written (issue 23) ----------
def test_each_checkpoint_written_goes_to_the_shipper_and_a_refusal_fails_the_trial(tmp_path: Path) -> None:
    box = Box(tmp_path / "config_001")
    shipped: list[str] = []

    def ship(path: Path) -> str | None:
        shipped.append(path.name)
        assert path.is_file()  # on disk, complete, before it is shipped
        return None if len(shipped) < 2 else f"{path.name} is 9 bytes, over --sweep-ray-ship-limit (8 bytes)"

    box.ckpt.shipped = ship
    box.epoch(1)
    assert box.ckpt.save({"epoch": 1})
    assert shipped == ["checkpoint-000001-epoch1.ckpt"]
    box.epoch(2)
    with pytest.raises(TrialFailed) as exc:
        box.ckpt.save({"epoch": 2})
    assert str(exc.value) == (
        "checkpoint after 2 epochs not shipped: checkpoint-000002-epoch2.ckpt is 9 bytes, "
        "over --sweep-ray-ship-limit (8 bytes)"
    )
