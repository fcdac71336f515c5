"""The training loop: one model, one optimizer, one pruner, one dataset; cosine LR per epoch or a constant LR."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_sweep.trainers.batches import TensorBatches, dataloader_batches
from pytest_sweep.trainers.data import DataBundle
from pytest_sweep.trainers.errors import NonFiniteLossError
from pytest_sweep.trainers.names import LOADERS, LR_SCHEDULES
from pytest_sweep.trainers.pruning import Pruner


@dataclass
class TrainSettings:
    """How :func:`train` runs. ``amp`` (bf16 autocast) and ``channels_last`` act on CUDA only
    and are ignored on the CPU. ``lr``, when set, overrides the optimizer's learning rate before
    the schedule takes it as its start. ``schedule`` is ``"cosine"`` (annealed per epoch to
    ``eta_min``) or ``"constant"``. ``nan_check_every`` is how often (in steps) a CUDA run looks at
    its loss flag (a host sync); CPU runs check every step."""

    epochs: int
    batch_size: int
    lr: float | None = None
    device: str = "cpu"
    seed: int = 0
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    loader: str = "tensor"
    eta_min: float = 0.0
    schedule: str = "cosine"
    grad_clip: float | None = None
    num_workers: int = 0
    nan_check_every: int = 20

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if self.loader not in LOADERS:
            raise ValueError(f"unknown loader {self.loader!r}; valid: {', '.join(LOADERS)}")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(LR_SCHEDULES)}")


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's RNGs; call it before building the model for reproducible runs."""
    random.seed(seed)
    torch.manual_seed(seed)


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool = False) -> int:
    """Optimizer steps per epoch of :func:`train` (it keeps the last partial batch)."""
    return n_train // batch_size if drop_last else math.ceil(n_train / batch_size)


def _batches(data: DataBundle, split: str, s: TrainSettings, device: torch.device, cl: bool) -> Iterable[Any]:
    if s.loader == "dataloader":
        return dataloader_batches(data, split, s.batch_size, device, s.seed, s.num_workers, channels_last=cl)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(s.seed + (0 if split == "train" else 1))
    return TensorBatches(data, split, s.batch_size, device, gen, channels_last=cl)  # type: ignore[arg-type]


def _nonfinite(flag: torch.Tensor, epoch: int, steps: torch.Tensor) -> NonFiniteLossError | None:
    if not bool(flag):
        return None
    return NonFiniteLossError(f"loss became nan/inf at epoch {epoch}, step {int(steps)}; lower the learning rate")


def _check_steps_per_epoch(actual: int, pruner: Pruner, optimizer: torch.optim.Optimizer) -> None:
    """A pruning schedule built for another batch count would end its ramp at the wrong step."""
    for owner, built_for in (
        ("pruner", getattr(pruner, "steps_per_epoch", None)),
        ("optimizer", getattr(getattr(optimizer, "settings", None), "steps_per_epoch", None)),
    ):
        if built_for is not None and built_for != actual:
            raise ValueError(
                f"the {owner}'s pruning schedule was built for {built_for} steps per epoch, "
                f"but this run has {actual}; use trainers.loop.steps_per_epoch()"
            )


def _evaluate(model: nn.Module, batches: Iterable[Any], autocast: Any, device: torch.device) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    with torch.no_grad():
        for xb, yb in batches:
            with autocast():
                out = model(xb)
            loss_sum += nn.functional.cross_entropy(out.float(), yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
            seen += yb.shape[0]
    return float(loss_sum) / max(seen, 1), 100.0 * int(correct) / max(seen, 1)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    pruner: Pruner,
    data: DataBundle,
    settings: TrainSettings,
    *,
    on_epoch: Callable[[dict[str, Any]], bool] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``model`` for ``settings.epochs`` epochs and evaluate on the test split each epoch.

    Returns ``{"history", "final_acc", "best_acc", "best_epoch", "final_sparsity", "total_time",
    "epochs_run", "stopped_early", "peak_memory_bytes", "images_per_s"}``; accuracies are in %,
    sparsity a fraction. ``on_epoch(metrics)`` returning True stops after that epoch.
    Raises :class:`NonFiniteLossError` when the loss becomes NaN/inf.

    Each step: ``backward()`` -> ``pruner.before_step()`` -> ``optimizer.prepare_gradients()``
    (only if the optimizer has it: AdamWPrune's gradient masks, SPAM's spike check) -> clip to
    ``settings.grad_clip`` -> ``optimizer.step()`` -> ``pruner.after_step(global_step)``.
    Build the model after :func:`seed_everything` for a reproducible run; on the CPU a fixed
    seed gives bit-for-bit identical metrics.
    """
    s = settings
    started = time.perf_counter()
    device = torch.device(s.device)
    cuda = device.type == "cuda"
    cl = s.channels_last and cuda
    torch.manual_seed(s.seed)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    if (s.amp or s.channels_last) and not cuda:
        log(f"note: amp/channels_last apply to CUDA only; ignored on {device}")
    model.to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if s.compile else model
    if s.lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = s.lr
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs, eta_min=s.eta_min)
        if s.schedule == "cosine"
        else None
    )
    amp_on = s.amp and cuda

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if amp_on else contextlib.nullcontext()

    train_batches = _batches(data, "train", s, device, cl)
    test_batches = _batches(data, "test", s, device, cl)
    _check_steps_per_epoch(len(train_batches), pruner, optimizer)  # type: ignore[arg-type]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    prepare: Callable[[], None] | None = getattr(optimizer, "prepare_gradients", None)
    check_every = 1 if not cuda else max(1, s.nan_check_every)
    history: list[dict[str, Any]] = []
    global_step = 0
    stopped_early = False
    for epoch in range(1, s.epochs + 1):
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        bad = torch.zeros((), device=device, dtype=torch.bool)
        bad_step = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        for xb, yb in train_batches:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                out = net(xb)
            loss = nn.functional.cross_entropy(out.float(), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            pruner.before_step()
            if prepare is not None:
                prepare()
            if s.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
            optimizer.step()
            global_step += 1
            pruner.after_step(global_step)
            detached = loss.detach()
            newly_bad = ~torch.isfinite(detached) & ~bad
            bad_step = torch.where(newly_bad, global_step, bad_step)
            bad |= newly_bad
            loss_sum += detached * yb.shape[0]
            correct += (out.detach().argmax(1) == yb).sum()
            seen += yb.shape[0]
            if global_step % check_every == 0 and (err := _nonfinite(bad, epoch, bad_step)):
                raise err
        if err := _nonfinite(bad, epoch, bad_step):
            raise err
        train_loss, train_acc = float(loss_sum) / max(seen, 1), 100.0 * int(correct) / max(seen, 1)
        if cuda:
            torch.cuda.synchronize(device)
        train_time = time.perf_counter() - t0
        test_loss, test_acc = _evaluate(net, test_batches, autocast, device)  # type: ignore[arg-type]
        if scheduler is not None:
            scheduler.step()
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "sparsity": pruner.sparsity(),
            "lr": lr,
            "epoch_time": time.perf_counter() - t0,
            "images_per_s": seen / max(train_time, 1e-9),
        }
        history.append(metrics)
        log(
            f"epoch {epoch}/{s.epochs}  train_loss {train_loss:.3f}  train_acc {train_acc:.1f}%  "
            f"test_loss {test_loss:.3f}  test_acc {test_acc:.1f}%  sparsity {metrics['sparsity']:.2f}  "
            f"lr {lr:.4g}  {metrics['epoch_time']:.1f}s  {metrics['images_per_s']:.0f} img/s"
        )
        if on_epoch is not None and on_epoch(metrics) and epoch < s.epochs:
            stopped_early = True
            break
    best = max(history, key=lambda m: m["test_acc"])
    return {
        "history": history,
        "final_acc": history[-1]["test_acc"],
        "best_acc": best["test_acc"],
        "best_epoch": best["epoch"],
        "final_sparsity": history[-1]["sparsity"],
        "total_time": time.perf_counter() - started,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else None,
        "images_per_s": sum(m["images_per_s"] for m in history) / len(history),
    }
