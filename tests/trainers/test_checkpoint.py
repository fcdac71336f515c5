"""The training loop continues bit-exactly from its own checkpoints (issue 21), in process.

Each case trains LeNet-5 on digits for two epochs without interruption, then again with a
checkpoint taken at one point (an epoch boundary, or a step boundary mid-epoch) and the run cut
there (an exception, as a kill would), then builds everything afresh from other seeds and goes on
from the checkpoint (serialised and read back as the sweep does, ``weights_only``).  The history
(timing fields aside), the final weights and the optimizer's state must be equal to the last bit:
that is what the checkpoint holds (model, optimizer with AdamWPrune's masks and SPAM's guard,
scheduler, pruner masks and movement's w0, loop counters and sums, every generator).
"""

from __future__ import annotations

import dataclasses
import io
import random
from typing import Any

import pytest
import torch

from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
from pytest_sweep.trainers.checkpoint import ResumeMismatch
from pytest_sweep.trainers.data import DataBundle, load_dataset
from pytest_sweep.trainers.loop import TrainSettings, seed_everything, steps_per_epoch, train
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.optimizers import build_optimizer
from pytest_sweep.trainers.pruning import build_pruner

pytestmark = pytest.mark.usefixtures("torch_one_thread")

BATCH = 64
EPOCHS = 2
TIMING = ("epoch_time", "images_per_s", "compile_s")


class Cut(Exception):
    """The run ends here (a kill, without killing the test)."""


class At:
    """A checkpointer due once, at its ``target``-th call, which saves (as the sweep does) and cuts the run.

    ``train()`` asks after every step and at every epoch's end: with 23 steps per epoch, call 24
    is the end of epoch 1 and call 30 the sixth step of epoch 2.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.state: bytes | None = None

    def due(self, final: bool = False) -> bool:
        self.count += 1
        return self.count == self.target

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.state = buffer.getvalue()
        raise Cut


def _parts(data: DataBundle, case: dict[str, Any], seed: int) -> tuple[Any, Any, Any]:
    seed_everything(seed)
    model = build_model("lenet5", in_channels=1, image_size=data.image_size, num_classes=10)
    steps = steps_per_epoch(len(data.train_y), BATCH)
    prune = None
    if case["optimizer"] == "adamwprune":
        prune = AdamWPruneSettings(
            steps_per_epoch=steps, target_sparsity=0.5, warmup=10, frequency=5, ramp_end_epoch=2, base=case["base"]
        )
    optimizer = build_optimizer(case["optimizer"], model, lr=3e-3, weight_decay=1e-4, prune=prune)
    pruner = build_pruner(
        case["pruning"],
        model,
        optimizer,
        target_sparsity=0.5,
        warmup=10,
        frequency=5,
        ramp_end_epoch=2,
        steps_per_epoch=steps,
    )
    return model, optimizer, pruner


def _settings(case: dict[str, Any]) -> TrainSettings:
    return TrainSettings(
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=7,
        schedule=case.get("schedule", "cosine"),
        loader=case.get("loader", "tensor"),
    )


def _history(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in result["history"]]


#: name -> (the run's settings: optimizer, pruning, base optimizer, loader, augment; the step to cut at, None: epoch 1's end)
CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    "adamw-none-mid-epoch": ({"optimizer": "adamw", "pruning": "none"}, 30),
    "sgd-movement-boundary": ({"optimizer": "sgd", "pruning": "movement"}, None),
    "adamwprune-spam-mid-epoch": ({"optimizer": "adamwprune", "pruning": "state", "base": "adamwspam"}, 17),
    "adamwspam-magnitude-mid-epoch": ({"optimizer": "adamwspam", "pruning": "magnitude"}, 40),
    "dataloader-augmented-mid-epoch": ({"optimizer": "adam", "pruning": "none", "loader": "dataloader"}, 28),
    "tensor-augmented-mid-epoch": ({"optimizer": "adamw", "pruning": "none", "augment": True}, 35),
}


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits")


@pytest.mark.parametrize("name", list(CASES))
def test_a_cut_run_goes_on_bit_exactly(digits: DataBundle, name: str) -> None:
    case, cut_step = CASES[name]
    data = dataclasses.replace(digits, augment=True) if case.get("augment") or case.get("loader") else digits
    steps = steps_per_epoch(len(data.train_y), BATCH)
    whole = train(*_parts(data, case, 0), data, _settings(case), log=lambda _: None)

    # cut: mid-epoch at a step (the saver is due at its n-th step-boundary call), or at epoch 1's end
    saver = At(cut_step) if cut_step is not None else At(steps + 1)  # call steps + 1: the end of epoch 1
    with pytest.raises(Cut):
        train(*_parts(data, case, 0), data, _settings(case), log=lambda _: None, checkpoint=saver)
    assert saver.state is not None
    state = torch.load(io.BytesIO(saver.state), map_location="cpu", weights_only=True)
    assert (state["batch"] is None) == (cut_step is None)

    random.seed(123)  # the continuation must not depend on what ran before it in the process
    model, optimizer, pruner = _parts(data, case, 99)  # other weights: the checkpoint's must win
    resumed = train(model, optimizer, pruner, data, _settings(case), log=lambda _: None, resume=state)

    assert _history(resumed) == _history(whole)
    assert resumed["final_acc"] == whole["final_acc"] and resumed["final_sparsity"] == whole["final_sparsity"]
    if case["pruning"] != "none":
        assert whole["final_sparsity"] > 0.2  # the pruning really ran across the cut


def test_a_state_of_another_run_is_refused_before_training(digits: DataBundle) -> None:
    case = {"optimizer": "adamw", "pruning": "none"}
    saver = At(5)
    with pytest.raises(Cut):
        train(*_parts(digits, case, 0), digits, _settings(case), log=lambda _: None, checkpoint=saver)
    assert saver.state is not None
    state = torch.load(io.BytesIO(saver.state), map_location="cpu", weights_only=True)
    other = dataclasses.replace(_settings(case), batch_size=32)
    with pytest.raises(ResumeMismatch, match="batch_size, steps_per_epoch"):
        train(*_parts(digits, case, 0), digits, other, log=lambda _: None, resume=state)
    sgd = {"optimizer": "sgd", "pruning": "none"}
    with pytest.raises(ResumeMismatch):
        train(*_parts(digits, sgd, 0), digits, _settings(case), log=lambda _: None, resume=state)
    with pytest.raises(ResumeMismatch, match="not a state of the built-in trainer"):
        train(*_parts(digits, case, 0), digits, _settings(case), log=lambda _: None, resume={"model": 1})
