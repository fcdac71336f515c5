"""No host-device traffic inside a training step on the tensor input path (issue 13, items 5 and 8).

A blocking ``.to(device)`` of CPU-drawn crop offsets stalled every CUDA step until the GPU
caught up.  The input pipeline now draws a pass's permutation, offsets and flips once and sends
them in one copy.  Checked on a fake CUDA device (``FakeTensorMode``: real shapes and devices,
no data, no GPU) with a dispatch mode that records every operation that moves data between the
host and the device, and every read of a device value on the host.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
from pytest_sweep.trainers.batches import TensorBatches, random_crop_flip
from pytest_sweep.trainers.data import make_synthetic
from pytest_sweep.trainers.loop import make_update
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.optimizers import build_optimizer
from pytest_sweep.trainers.pruning import build_pruner

pytestmark = pytest.mark.usefixtures("torch_one_thread")
#: A fake CUDA device still needs a torch built with CUDA (torch's CPU builds, such as 2.13.0+cpu of
#: ``tox -e minimums``, raise "PyTorch is not linked with support for cuda devices").
needs_cuda_build = pytest.mark.skipif(not torch.backends.cuda.is_built(), reason="needs a torch built with CUDA")  # type: ignore[no-untyped-call]


class Transfers(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Records operations whose tensors sit on more than one device (a copy between host and
    device), and host reads of a device value (``.item()``, ``bool()``: a sync on CUDA)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in inputs + outputs}
        if len(devices) > 1:
            self.seen.append(f"{func}: {[t.device.type for t in inputs]} -> {[t.device.type for t in outputs]}")
        elif func is torch.ops.aten._local_scalar_dense.default and "cpu" not in devices:
            self.seen.append(f"{func} on {devices}")
        return out


@needs_cuda_build
def test_tensor_path_copies_to_the_device_once_per_pass() -> None:
    data = make_synthetic(n_train=256, n_test=64, seed=0)  # CIFAR-shaped, crop + flip
    per_batch: list[list[int]] = []
    with FakeTensorMode(allow_non_fake_inputs=True):
        train = TensorBatches(data, "train", 32, "cuda", torch.Generator().manual_seed(0))
        test = TensorBatches(data, "test", 32, "cuda", torch.Generator().manual_seed(1))
        for batches in (train, train, test):
            counts = []
            it = iter(batches)
            while True:
                with Transfers() as moved:
                    batch = next(it, None)
                if batch is None:
                    break
                assert batch[0].device.type == "cuda" and batch[0].shape == (32, 3, 32, 32)
                counts.append(len(moved.seen))
            per_batch.append(counts)
    # each training pass: one copy with its first batch (the pass's draws), none after it
    assert per_batch[:2] == [[1] + [0] * 7] * 2
    assert per_batch[2] == [0, 0]  # the test split is served in order, not augmented


def test_a_pass_crops_as_per_batch_draws_did() -> None:
    """The same generator gives the same crops as :func:`random_crop_flip` called batch by batch."""
    data = make_synthetic(n_train=100, n_test=8, seed=3)
    got = [x for x, _ in TensorBatches(data, "train", 32, "cpu", torch.Generator().manual_seed(7))]
    gen = torch.Generator().manual_seed(7)
    order = torch.randperm(100, generator=gen)
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    for i, x in enumerate(got):
        crops = random_crop_flip(data.train_x[order[i * 32 : (i + 1) * 32]], data.crop_padding, gen)
        assert torch.equal(x, (crops.float() / 255 - mean) / std)
    assert [x.shape[0] for x in got] == [32, 32, 32, 4]


@needs_cuda_build
def test_the_update_on_cuda_neither_copies_nor_syncs() -> None:
    """Masks, spike guard (with its clip), gradient clipping and the fused AdamW update."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        with torch.device("cuda"):
            model = build_model("resnet18", in_channels=3, image_size=32, num_classes=10, width=4)
        prune = AdamWPruneSettings(steps_per_epoch=10, warmup=1000, base="adamwspam")
        opt = build_optimizer("adamwprune", model, lr=1e-3, weight_decay=0.01, prune=prune, spam_clip=True)
        pruner = build_pruner(
            "state", model, opt, target_sparsity=0.5, warmup=0, frequency=1, ramp_end_epoch=1, steps_per_epoch=10
        )
        update = make_update(opt, pruner, grad_clip=1.0)
        moved = Transfers()
        for step in (1, 2, 3):
            for p in model.parameters():
                p.grad = torch.randn_like(p)
            if step == 1:
                update(step)  # creates the optimizer state
                continue
            with moved:
                update(step)
    assert moved.seen == []
