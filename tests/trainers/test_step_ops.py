"""What a training step dispatches after ``backward()`` (issue 13, items 6-8).

On a GPU every dispatched operation is about one kernel launch.  Forward and backward grow with
the number of layers whatever the trainer does; what it adds after ``backward()`` (pruning
masks, the SPAM spike guard, gradient clipping, the optimizer update) must not: the same
operations for a width-8 ResNet-18 (62 parameter tensors) as for LeNet-5 (10 on the digits).
Counted with a ``TorchDispatchMode`` around :func:`trainers.loop.make_update`, the very
function :func:`trainers.loop.train` calls, with the optimizer flags a CUDA run gets
(``fused=True``; on the CPU torch has fused kernels too).  Whether CUDA parameters really get
those flags is checked on a fake CUDA device (``FakeTensorMode``: no GPU needed).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
from pytest_sweep.trainers.data import DataBundle, load_dataset
from pytest_sweep.trainers.loop import TrainSettings, make_update, seed_everything, steps_per_epoch, train
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.names import OPTIMIZERS
from pytest_sweep.trainers.optimizers import build_optimizer, default_grad_clip
from pytest_sweep.trainers.pruning import build_pruner

pytestmark = pytest.mark.usefixtures("torch_one_thread")
#: A fake CUDA device still needs a torch built with CUDA (torch's CPU builds, such as 2.13.0+cpu of
#: ``tox -e minimums``, raise "PyTorch is not linked with support for cuda devices").
needs_cuda_build = pytest.mark.skipif(not torch.backends.cuda.is_built(), reason="needs a torch built with CUDA")  # type: ignore[no-untyped-call]


class OpCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts the ATen operations (what reaches a kernel) dispatched while it is active, by name."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.namespace == "aten":
            self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits")


#: (optimizer, pruning method, AdamWPrune base, SPAM clip)
SETUPS = {
    "adamwprune-state-adamwspam-clip": ("adamwprune", "state", "adamwspam", True),
    "adamwprune-state-adamw (the default trainer)": ("adamwprune", "state", "adamw", False),
    "adamw-magnitude": ("adamw", "magnitude", None, False),
    "sgd-movement": ("sgd", "movement", None, False),
    "adamwspam-none": ("adamwspam", "none", None, True),
}
SCHEDULE = {"target_sparsity": 0.5, "warmup": 0, "frequency": 2, "ramp_end_epoch": 5, "steps_per_epoch": 10}


def update_ops(model_name: str, setup: str, data: DataBundle) -> Counter[str]:
    """The operations of step 3's update: optimizer state exists, masks were set at step 2."""
    name, method, base, clip = SETUPS[setup]
    seed_everything(0)
    model = build_model(model_name, in_channels=1, image_size=8, num_classes=10, width=8)
    prune = None
    if name == "adamwprune":
        prune = AdamWPruneSettings(
            steps_per_epoch=10, target_sparsity=0.5, warmup=0, frequency=2, ramp_end_epoch=5, base=base or "adamw"
        )
    opt = build_optimizer(name, model, lr=1e-3, weight_decay=0.01, spam_clip=clip, prune=prune, fused=True)
    pruner = build_pruner(method, model, opt, **SCHEDULE)  # type: ignore[arg-type]
    update = make_update(opt, pruner, default_grad_clip(name, base))
    x = (data.train_x[:32].float() / 255 - 0.5) / 0.25
    y = data.train_y[:32]
    counter = OpCounter()
    for step in (1, 2, 3):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
        if step < 3:
            update(step)
    with counter:
        update(3)
    masks = getattr(opt, "masks", None) or getattr(pruner, "masks", None)
    assert method == "none" or masks, "the masks were never computed: the count would prove nothing"
    return counter.ops


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_update_dispatches_the_same_ops_for_resnet18_and_lenet5(setup: str, digits: DataBundle) -> None:
    lenet = update_ops("lenet5", setup, digits)
    resnet = update_ops("resnet18", setup, digits)
    assert resnet == lenet, f"ResNet-18 w8: {sum(resnet.values())} ops, LeNet-5: {sum(lenet.values())}"
    assert sum(resnet.values()) <= 70
    assert any(op.startswith("_fused_") for op in resnet), resnet


def fake_cuda_step_ops(name: str, model_name: str) -> tuple[Counter[str], int]:
    """Build ``name`` as the trainer does for a model on a (fake) CUDA device: assert that it is
    fused; the ops of its second ``step()`` and its number of parameter groups."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        with torch.device("cuda"):
            model = build_model(model_name, in_channels=3, image_size=32, num_classes=10, width=4)
        prune = AdamWPruneSettings(steps_per_epoch=10, warmup=1000) if name == "adamwprune" else None
        opt = build_optimizer(name, model, lr=1e-3, weight_decay=0.01, prune=prune)
        assert all(g["fused"] for g in opt.param_groups), opt.param_groups[0]
        if name == "sgd":  # torch has no fake kernel for _fused_sgd_: its step is counted on the CPU above
            return Counter(), len(opt.param_groups)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # creates the state
        with OpCounter() as counter:
            opt.step()
    return counter.ops, len(opt.param_groups)


@needs_cuda_build
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_cuda_parameters_get_the_fused_optimizer(name: str) -> None:
    resnet, groups = fake_cuda_step_ops(name, "resnet18")
    lenet, _ = fake_cuda_step_ops(name, "lenet5")
    assert resnet == lenet
    if name != "sgd":
        assert sum(n for op, n in resnet.items() if op.startswith("_fused_")) == groups  # one kernel per group


def test_cpu_parameters_keep_torchs_default() -> None:
    model = build_model("lenet5", in_channels=1, image_size=8, num_classes=10)
    for name in OPTIMIZERS:
        prune = AdamWPruneSettings(steps_per_epoch=10) if name == "adamwprune" else None
        opt = build_optimizer(name, model, lr=1e-3, weight_decay=0.0, prune=prune)
        assert not any(g["fused"] for g in opt.param_groups), name


def test_fused_adamwprune_prunes_like_the_unfused_one(digits: DataBundle) -> None:
    """Masks act outside the update, so the fused kernel changes nothing that pruning relies on."""
    spe = steps_per_epoch(len(digits.train_y), 128)
    results = []
    for fused in (False, True):
        seed_everything(0)
        model = build_model("lenet5", in_channels=1, image_size=8, num_classes=10)
        prune = AdamWPruneSettings(steps_per_epoch=spe, warmup=2, frequency=2, ramp_end_epoch=2, target_sparsity=0.6)
        opt = build_optimizer("adamwprune", model, lr=3e-3, weight_decay=0.01, prune=prune, fused=fused)
        pruner = build_pruner("state", model, opt, **SCHEDULE)  # type: ignore[arg-type]
        out = train(model, opt, pruner, digits, TrainSettings(epochs=3, batch_size=128), log=lambda _: None)
        pruned_stay_zero = all(bool((p[~m] == 0).all()) for p, m in opt.masks.items())  # type: ignore[attr-defined]
        results.append((out["final_sparsity"], out["final_acc"], pruned_stay_zero))
    (plain_sparsity, plain_acc, plain_zero), (fused_sparsity, fused_acc, fused_zero) = results
    assert plain_zero and fused_zero
    assert fused_sparsity == pytest.approx(plain_sparsity, abs=1e-6) and fused_sparsity > 0.55
    assert abs(fused_acc - plain_acc) < 5.0 and fused_acc > 70.0
