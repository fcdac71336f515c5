from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from pytest_sweep.trainers.data import DataBundle, load_dataset
from pytest_sweep.trainers.errors import NonFiniteLossError
from pytest_sweep.trainers.loop import TrainSettings, seed_everything, steps_per_epoch, train
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.optimizers import build_optimizer
from pytest_sweep.trainers.pruning import build_pruner

from sweep_helpers import needs_torchvision

EPOCH_KEYS = {
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "sparsity",
    "lr",
    "epoch_time",
    "images_per_s",
}
RESULT_KEYS = {
    "history",
    "final_acc",
    "best_acc",
    "best_epoch",
    "final_sparsity",
    "total_time",
    "epochs_run",
    "stopped_early",
    "peak_memory_bytes",
    "images_per_s",
    "compile_s",
}


#: torch at one thread, as a sweep's xdist worker on this 2-core machine would run it
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits")


def _run(
    data: DataBundle,
    *,
    model_name: str = "lenet5",
    optimizer: str = "adamw",
    lr: float = 1e-3,
    width: int = 64,
    wrap: Any = None,
    on_epoch: Any = None,
    train_lr: float | None = None,
    **settings: Any,
) -> tuple[dict[str, Any], list[str]]:
    seed_everything(0)
    model = build_model(
        model_name,
        in_channels=data.in_channels,
        image_size=data.image_size,
        num_classes=data.num_classes,
        width=width,
    )
    opt = build_optimizer(optimizer, model, lr=lr, weight_decay=5e-4)
    pruner = build_pruner(
        "none", model, opt, target_sparsity=0.0, warmup=0, frequency=1, ramp_end_epoch=0, steps_per_epoch=1
    )
    lines: list[str] = []
    config = {"epochs": 10, "batch_size": 64, "seed": 0, "lr": train_lr, **settings}
    result = train(
        wrap(model) if wrap else model,
        opt,
        pruner,
        data,
        TrainSettings(**config),
        on_epoch=on_epoch,
        log=lines.append,
    )
    return result, lines


@pytest.fixture(scope="module")
def lenet_runs(digits: DataBundle) -> list[tuple[dict[str, Any], list[str]]]:
    torch.set_num_threads(1)
    return [_run(digits), _run(digits)]


def _without_timing(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k not in ("epoch_time", "images_per_s")} for m in result["history"]]


def test_lenet_learns_digits(lenet_runs: list[tuple[dict[str, Any], list[str]]]) -> None:
    result, lines = lenet_runs[0]
    assert result["final_acc"] >= 90.0
    assert set(result) == RESULT_KEYS
    assert result["epochs_run"] == 10 and not result["stopped_early"]
    assert result["peak_memory_bytes"] is None and result["final_sparsity"] == 0.0
    assert result["best_acc"] == max(m["test_acc"] for m in result["history"])
    assert result["history"][result["best_epoch"] - 1]["test_acc"] == result["best_acc"]
    assert all(set(m) == EPOCH_KEYS for m in result["history"])
    assert [m["epoch"] for m in result["history"]] == list(range(1, 11))
    assert len(lines) == 10 and lines[2].startswith("epoch 3/10  train_loss ")
    assert "test_acc" in lines[0] and "img/s" in lines[0] and "sparsity 0.00" in lines[0]


def test_same_seed_same_run(lenet_runs: list[tuple[dict[str, Any], list[str]]]) -> None:
    first, second = lenet_runs
    assert _without_timing(first[0]) == _without_timing(second[0])


def test_cosine_schedule_per_epoch(lenet_runs: list[tuple[dict[str, Any], list[str]]]) -> None:
    lrs = [m["lr"] for m in lenet_runs[0][0]["history"]]
    expected = [0.5 * 1e-3 * (1 + math.cos(math.pi * e / 10)) for e in range(10)]
    assert lrs == pytest.approx(expected, rel=1e-6)


def test_eta_min_and_lr_override(digits: DataBundle) -> None:
    result, _ = _run(digits, epochs=2, lr=5e-3, eta_min=1e-3)
    assert [m["lr"] for m in result["history"]] == pytest.approx([5e-3, 3e-3])
    result, _ = _run(digits, epochs=2, lr=5e-3, train_lr=1e-2)  # TrainSettings.lr wins
    assert [m["lr"] for m in result["history"]] == pytest.approx([1e-2, 5e-3])


class _NanAfter(nn.Module):
    def __init__(self, model: nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.calls, self.seen = model, calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        if self.training:
            self.seen += 1
            if self.seen >= self.calls:
                return out * float("nan")
        return out


def test_nan_loss_stops_the_run_naming_epoch_and_step(digits: DataBundle) -> None:
    spe = steps_per_epoch(len(digits.train_y), 64)
    with pytest.raises(NonFiniteLossError, match=rf"epoch 2, step {spe + 5}; lower the learning rate"):
        _run(digits, wrap=lambda m: _NanAfter(m, spe + 5))


def test_huge_learning_rate_raises(digits: DataBundle) -> None:
    with pytest.raises(NonFiniteLossError):
        _run(digits, optimizer="sgd", lr=1e12, epochs=3)


def test_on_epoch_can_stop_early(digits: DataBundle) -> None:
    seen: list[int] = []

    def stop_at_two(metrics: dict[str, Any]) -> bool:
        seen.append(metrics["epoch"])
        return bool(metrics["epoch"] == 2)

    result, lines = _run(digits, on_epoch=stop_at_two)
    assert seen == [1, 2] and result["epochs_run"] == 2 and result["stopped_early"]
    assert len(lines) == 2


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_step(self) -> None:
        self.calls.append("before")

    def after_step(self, global_step: int) -> None:
        self.calls.append(f"after {global_step}")

    def sparsity(self) -> float:
        return 0.25


class _SpySGD(torch.optim.SGD):
    """Records the gradient norm each step sees, and when the loop prepared the gradients."""

    def __init__(self, params: Any, recorder: _Recorder, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.recorder = recorder
        self.norms: list[float] = []

    def prepare_gradients(self) -> None:
        self.recorder.calls.append("prepare")

    def step(self, closure: Any = None) -> Any:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        self.recorder.calls.append("step")
        return super().step(closure)


def test_step_order_and_grad_clip(digits: DataBundle) -> None:
    seed_everything(0)
    model = build_model("lenet5", in_channels=1, image_size=8, num_classes=10)
    recorder = _Recorder()
    opt = _SpySGD(model.parameters(), recorder, lr=0.05)
    settings = TrainSettings(epochs=2, batch_size=256, grad_clip=0.1)
    result = train(model, opt, recorder, digits, settings, log=lambda _: None)
    spe = steps_per_epoch(len(digits.train_y), 256)
    expected = [c for n in range(1, 2 * spe + 1) for c in ("before", "prepare", "step", f"after {n}")]
    assert recorder.calls == expected
    assert max(opt.norms) <= 0.1 + 1e-5
    assert result["final_sparsity"] == 0.25


@needs_torchvision
def test_dataloader_path_and_cuda_only_options_on_cpu(digits: DataBundle) -> None:
    result, lines = _run(digits, epochs=2, loader="dataloader", amp=True, channels_last=True)
    assert result["epochs_run"] == 2 and result["final_acc"] > 50.0
    assert lines[0].startswith("note: amp/channels_last apply to CUDA only")


def test_resnet18_trains_on_digits(digits: DataBundle) -> None:
    result, _ = _run(digits, model_name="resnet18", width=8, epochs=2, batch_size=128, lr=3e-3)
    assert result["final_acc"] > 50.0


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="tensor, dataloader"):
        TrainSettings(epochs=1, batch_size=8, loader="dali")
    with pytest.raises(ValueError, match="positive"):
        TrainSettings(epochs=0, batch_size=8)
    with pytest.raises(ValueError, match="unknown schedule 'step'; valid: cosine, constant"):
        TrainSettings(epochs=1, batch_size=8, schedule="step")
    assert steps_per_epoch(1437, 64) == 23 and steps_per_epoch(1437, 64, drop_last=True) == 22
