"""Time a few real training steps of a model, for the runtime estimate before a sweep starts."""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class StepTimes:
    """Seconds per optimizer step (forward, backward, update) and per evaluation batch."""

    train_step: float
    eval_batch: float
    steps_timed: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    batch: int,
    shape: tuple[int, int, int],
    device: str,
    budget: float = 1.0,
    max_steps: int = 5,
) -> StepTimes:
    """Train ``model`` for a warm-up step and then up to ``max_steps`` steps (stopping once
    ``budget`` seconds have passed) on random images of ``shape`` (channels, size, classes);
    the model and optimizer are changed, so pass throwaway ones."""
    dev = torch.device(device)
    channels, size, classes = shape
    x = torch.randn(batch, channels, size, size, device=dev)
    y = torch.randint(classes, (batch,), device=dev)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    model.train()
    for _ in range(2):  # warm-up: first-call allocations, kernel selection, the optimizer's state
        step()
    _sync(dev)
    took: list[float] = []
    started = time.perf_counter()
    while len(took) < max_steps and (not took or time.perf_counter() - started < budget):
        t0 = time.perf_counter()
        step()
        _sync(dev)
        took.append(time.perf_counter() - t0)
    steps = len(took)
    train_step = statistics.median(took)  # one step slowed by another process does not count
    model.eval()
    with torch.inference_mode():
        model(x)
        _sync(dev)
        started = time.perf_counter()
        model(x)
        _sync(dev)
        eval_batch = time.perf_counter() - started
    return StepTimes(train_step, eval_batch, steps)


def time_spec(spec: dict[str, Any]) -> dict[str, float | str] | None:
    """Time the trial that ``spec`` describes; seconds per step and per evaluation batch at the
    trial's own batch size (a CPU is timed on a smaller batch and scaled linearly: a full
    ResNet-18 step at batch 128 takes seconds there).  None when its device is not here."""
    from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
    from pytest_sweep.trainers.models import build_model
    from pytest_sweep.trainers.optimizers import build_optimizer

    want = str(spec["device"])
    if want == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif want.startswith("cuda") and not torch.cuda.is_available():
        return None
    else:
        device = want
    batch = int(spec["batch"])
    timed_batch = batch if device.startswith("cuda") else min(batch, int(spec["cpu_batch"]))
    if not device.startswith("cuda"):
        # one thread: a short-lived process timing several threads on a busy CPU measured 20-40x slow
        # (OpenMP threads waiting on each other); a trial with more threads is at most a little faster
        torch.set_num_threads(1)
    channels, size, classes = (int(v) for v in spec["shape"])
    torch.manual_seed(0)
    model = build_model(
        str(spec["model"]), in_channels=channels, image_size=size, num_classes=classes, width=int(spec["width"])
    ).to(device)
    kwargs = dict(spec["optimizer_kwargs"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    prune = AdamWPruneSettings(**spec["prune"]) if spec.get("prune") else None
    optimizer = build_optimizer(str(spec["optimizer"]), model, prune=prune, **kwargs)
    times = time_steps(
        model, optimizer, batch=timed_batch, shape=(channels, size, classes), device=device, budget=1.0, max_steps=5
    )
    scale = batch / timed_batch
    return {"train_step": times.train_step * scale, "eval_batch": times.eval_batch * scale, "device": device}


def main() -> int:
    """``python -m pytest_sweep.trainers.timing``: a JSON spec on stdin, the times as JSON on stdout."""
    spec = json.loads(sys.stdin.read())
    result = time_spec(spec)
    if result is None:
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
