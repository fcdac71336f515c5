"""Operations dispatched per training step, ResNet-18 (width 8) against LeNet-5, on the CPU.

On a GPU each dispatched operation is (about) one kernel launch, so this count is what a step
costs the host.  Forward and backward grow with the number of layers whatever we do; what the
trainer adds after ``backward()`` (the pruning masks, the SPAM spike guard, gradient clipping, the
optimizer update) must not: on CUDA it is a handful of ``torch._foreach_*`` / fused calls per
parameter group, not a Python loop over the parameters.

Counted with a :class:`torch.utils._python_dispatch.TorchDispatchMode` (every ATen op that
reaches a kernel), for one step taken exactly as :func:`trainers.loop.train` takes it, with the
optimizer flags a CUDA run gets (``--flags cuda``: ``fused=True``; before that change torch's own
CUDA default, ``foreach=True``) or the CPU default (``--flags cpu``)::

    .venv/bin/python bench/step_ops.py                  # CUDA flags (emulated on the CPU)
    .venv/bin/python bench/step_ops.py --flags cpu
    .venv/bin/python bench/step_ops.py --smoke          # one setup (the most ops): the suite runs it
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections import Counter
from typing import Any

import _common as c
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_sweep.trainers.data import make_synthetic
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.optimizers import build_optimizer, default_grad_clip
from pytest_sweep.trainers.pruning import build_pruner


class OpCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


SETUPS = {
    # name: (optimizer, pruning method, AdamWPrune base)
    "adamwprune state, adamwspam base": ("adamwprune", "state", "adamwspam"),
    "adamwprune state, adamw base (defaults)": ("adamwprune", "state", "adamw"),
    "adamw + magnitude pruning": ("adamw", "magnitude", None),
    "sgd, no pruning": ("sgd", "none", None),
}


#: ``--smoke``: the setup with the most work after ``backward()`` only (spike guard and clipping).
SMOKE: dict[str, object] = {"setups": ["adamwprune state, adamwspam base"]}


def build(model_name: str, setup: str, flags: str) -> tuple[Any, Any, Any, Any, float | None]:
    from pytest_sweep.trainers.adamwprune import AdamWPruneSettings

    opt_name, method, base = SETUPS[setup]
    data = make_synthetic(n_train=64, n_test=8, seed=0)
    torch.manual_seed(0)
    model = build_model(model_name, in_channels=3, image_size=32, num_classes=10, width=8)
    kwargs: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.01}
    if opt_name == "adamwprune":
        kwargs["prune"] = AdamWPruneSettings(
            steps_per_epoch=10, warmup=0, frequency=1000, ramp_end_epoch=1, target_sparsity=0.5, base=base or "adamw"
        )
    fused = "fused" in inspect.signature(build_optimizer).parameters
    if flags == "cuda" and fused:
        kwargs["fused"] = True
    opt = build_optimizer(opt_name, model, **kwargs)
    if flags == "cuda" and not fused:  # before the change: torch's own default on CUDA
        for group in opt.param_groups:
            group["foreach"] = True
    pruner = build_pruner(
        method, model, opt, target_sparsity=0.5, warmup=0, frequency=1000, ramp_end_epoch=1, steps_per_epoch=10
    )
    return data, model, opt, pruner, default_grad_clip(opt_name, base)


def count_step(model_name: str, setup: str, flags: str) -> dict[str, int]:
    data, model, opt, pruner, clip = build(model_name, setup, flags)
    x = (data.train_x[:16].float() / 255 - 0.5) / 0.25
    y = data.train_y[:16]
    params = [p for g in opt.param_groups for p in g["params"]]
    prepare = getattr(opt, "prepare_gradients", None)

    def forward_backward() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()

    def update(step: int) -> None:  # what trainers.loop.train does after backward()
        pruner.before_step()
        if prepare is not None:
            prepare()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        pruner.after_step(step)

    for step in (1, 2):  # optimizer state exists, masks exist
        forward_backward()
        update(step)
    if hasattr(opt, "update_masks"):
        opt.update_masks()
    elif hasattr(pruner, "update_masks"):
        pruner.update_masks(2)
    forward_backward()
    with OpCounter() as fb:
        forward_backward()
    with OpCounter() as up:
        update(3)
    return {
        "params": len(params),
        "forward_backward": sum(fb.ops.values()),
        "update": sum(up.ops.values()),
        "update_ops": dict(up.ops.most_common(6)),  # type: ignore[dict-item]
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flags", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS), metavar="SETUP")
    a = c.parse_args(ap, argv, SMOKE)
    torch.set_num_threads(1)
    print(f"optimizer flags: {a.flags}; ops dispatched in one step (forward+backward | after backward)")
    print(
        "| setup | LeNet-5 params | LeNet-5 fwd+bwd | LeNet-5 update | ResNet-18 w8 params | "
        "ResNet-18 w8 fwd+bwd | ResNet-18 w8 update |"
    )
    print("|---|---|---|---|---|---|---|")
    for setup in a.setups:
        le = count_step("lenet5", setup, a.flags)
        rn = count_step("resnet18", setup, a.flags)
        print(
            f"| {setup} | {le['params']} | {le['forward_backward']} | {le['update']} | {rn['params']} | "
            f"{rn['forward_backward']} | {rn['update']} |"
        )
        print(f"|  top update ops (ResNet-18) | {rn['update_ops']} ||||||", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
