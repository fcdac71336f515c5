"""The training loop's failure paths and reports (issue 13, items 4 and 7).

* A failed run leaves nothing that keeps its model alive: no reference cycle through the
  exception (``gc`` is off while it is checked), so the memory is free the moment the caller
  drops the error.
* Running out of device memory is one line naming the epoch and batch.
* Evaluation runs under ``torch.inference_mode()``.
* With ``compile``, epoch 1 reports the compiling step's time apart from its images/s.
"""

from __future__ import annotations

import functools
import gc
import weakref
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from pytest_sweep.trainers.data import DataBundle, load_dataset
from pytest_sweep.trainers.errors import DeviceOutOfMemoryError, NonFiniteLossError
from pytest_sweep.trainers.loop import TrainSettings, seed_everything, train
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.optimizers import build_optimizer
from pytest_sweep.trainers.pruning import NoPruning

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits")


@pytest.fixture
def no_gc(digits: DataBundle) -> Iterator[None]:
    """The cyclic garbage collector off, after one run that does torch's lazy first-time imports
    (an import with the collector off can leave cycles of its own that hold the caller's frames)."""
    model = lenet()
    opt = build_optimizer("sgd", model, lr=0.01, weight_decay=0.0)
    train(model, opt, NoPruning(model), digits, TrainSettings(epochs=1, batch_size=512), log=lambda _: None)
    del model, opt
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def lenet() -> nn.Module:
    seed_everything(0)
    return build_model("lenet5", in_channels=1, image_size=8, num_classes=10)


def fail_and_drop_the_error(model: nn.Module, data: DataBundle, *, lr: float, epochs: int) -> tuple[str, str]:
    """Train until it fails; return the error's class name and message, and nothing else of it.

    No name in this frame keeps the error past its ``except`` block (a name would make a cycle of
    its own: frame -> error -> traceback -> frame).
    """
    opt = build_optimizer("sgd", model, lr=lr, weight_decay=0.0)
    settings = TrainSettings(epochs=epochs, batch_size=64)
    try:
        train(model, opt, NoPruning(model), data, settings, log=lambda _: None)
    except (NonFiniteLossError, DeviceOutOfMemoryError) as exc:
        assert exc.__context__ is None and exc.__cause__ is None
        return type(exc).__name__, str(exc)
    raise AssertionError("the run did not fail")


def test_a_nan_failure_frees_the_model_without_gc(digits: DataBundle, no_gc: None) -> None:
    model = lenet()
    ref = weakref.ref(model)
    kind, message = fail_and_drop_the_error(model, digits, lr=1e12, epochs=3)
    del model
    assert kind == "NonFiniteLossError" and message.endswith("; lower the learning rate")
    assert ref() is None, "the failed run's model outlived its error (a reference cycle)"


class OutOfMemoryAt(nn.Module):
    """Raises the error the CUDA allocator raises, at the ``n``-th training batch (the CPU has no
    such error: its allocator raises a plain RuntimeError)."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls == self.n:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 139 GiB total)")
        out: torch.Tensor = self.model(x)
        return out


def test_out_of_memory_is_one_line_naming_the_batch(digits: DataBundle, no_gc: None) -> None:
    model = OutOfMemoryAt(lenet(), 3)
    ref = weakref.ref(model)
    kind, message = fail_and_drop_the_error(model, digits, lr=0.01, epochs=1)
    del model
    assert kind == "DeviceOutOfMemoryError"  # no longer carrying the allocator's error (checked above)
    assert message == "CPU out of memory at epoch 1, batch 3 (batch size 64)"
    assert ref() is None


class EvalProbe(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval_modes: set[bool] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.eval_modes.add(torch.is_inference_mode_enabled())
        out: torch.Tensor = self.model(x)
        return out


def test_evaluation_runs_in_inference_mode(digits: DataBundle) -> None:
    model = EvalProbe(lenet())
    opt = build_optimizer("adamw", model, lr=1e-3, weight_decay=0.0)
    train(model, opt, NoPruning(model), digits, TrainSettings(epochs=1, batch_size=128), log=lambda _: None)
    assert model.eval_modes == {True}


def test_compile_time_is_reported_apart_from_images_per_s(digits: DataBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    # the real torch.compile (Dynamo traces and guards the model), with its eager backend:
    # inductor's C++ code generation takes minutes on a busy CPU
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    model = lenet()
    opt = build_optimizer("adamw", model, lr=1e-3, weight_decay=0.0)
    lines: list[str] = []
    # 1437 = 3 x 479: three equal steps per epoch, so no recompilation for a last partial batch
    out = train(
        model, opt, NoPruning(model), digits, TrainSettings(epochs=2, batch_size=479, compile=True), log=lines.append
    )
    first, second = out["history"]
    assert first["compile_s"] == out["compile_s"] > 0 and "compile_s" not in second
    assert "(compile " in lines[0] and "not in img/s" in lines[0]
    # with the compiling step counted, epoch 1 ran at a tenth of epoch 2's rate or less
    assert first["images_per_s"] > 0.3 * second["images_per_s"], (first, second)
    plain = train(lenet(), opt, NoPruning(model), digits, TrainSettings(epochs=1, batch_size=479), log=lambda _: None)
    assert plain["compile_s"] is None and "compile_s" not in plain["history"][0]
