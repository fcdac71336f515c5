"""Input pipelines: a :class:`~pytest_sweep.trainers.contracts.DataBundle` turned into normalised float batches.

:class:`TensorBatches` is the default: the whole uint8 dataset on the device, crop-with-padding
and flips vectorised there.  :func:`dataloader_batches` is torchvision's ``DataLoader`` +
transforms, the reference's way (CPU, or as an option).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch.nn import functional as F

from pytest_sweep.trainers.contracts import DataBundle
from pytest_sweep.trainers.data import import_torchvision

Split = Literal["train", "test"]


def _split(bundle: DataBundle, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "train":
        return bundle.train_x, bundle.train_y
    if split == "test":
        return bundle.test_x, bundle.test_y
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def draw_crop_flip(n: int, padding: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop offsets (``2 x n``, rows then columns, in ``0..2*padding``) and horizontal
    flips (``n`` bools) for ``n`` images, drawn on the CPU from ``generator``: a seed gives the
    same crops on every device."""
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return offsets, flips


def crop_flip(images: torch.Tensor, padding: int, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Crop every image of a batch at its offsets from its zero-padded self, flipping where asked.

    ``offsets`` and ``flips`` are those of :func:`draw_crop_flip`, already on the images'
    device; no Python loop over images and no host-device traffic.
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # n x h
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # n x w
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding + random horizontal flip of a whole batch at once.

    :func:`draw_crop_flip` then :func:`crop_flip`; the draws are copied to the images' device
    (a blocking copy on CUDA: :class:`TensorBatches` draws a whole epoch's at once instead).
    """
    offsets, flips = draw_crop_flip(images.shape[0], padding, generator)
    return crop_flip(images, padding, offsets.to(images.device), flips.to(images.device))


class TensorBatches:
    """Batches straight from uint8 tensors kept on ``device`` (the default input path).

    Each pass over a ``"train"`` split draws a permutation from ``generator`` (a CPU
    ``torch.Generator``); per batch the images are converted to float, augmented (random crop
    with padding + horizontal flip, if the bundle asks for it, training split only) and
    normalised, all on the device. The test split is served in order and never augmented.
    """

    def __init__(
        self,
        bundle: DataBundle,
        split: Split,
        batch_size: int,
        device: str | torch.device,
        generator: torch.Generator,
        channels_last: bool = False,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        x, y = _split(bundle, split)
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = batch_size
        self.generator = generator
        self.channels_last = channels_last
        self.drop_last = drop_last
        self.train = split == "train"
        self.augment = bundle.augment and self.train
        self.padding = bundle.crop_padding
        mean, std = bundle.stats(split)
        shape = (1, len(mean), 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate()

    def iterate(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass from batch ``start`` on: the pass's draws are made as for a whole pass, so with
        the generator in the same state the batches are those the whole pass serves from there."""
        n = self.x.shape[0]
        order, offsets, flips = self._draw_epoch()
        for i in range(start, len(self)):
            start, stop = i * self.batch_size, min(n, (i + 1) * self.batch_size)
            if order is None:
                xb, yb = self.x[start:stop], self.y[start:stop]
            else:
                idx = order[start:stop]
                xb, yb = self.x[idx], self.y[idx]
            if offsets is not None and flips is not None:
                xb = crop_flip(xb, self.padding, offsets[:, start:stop], flips[start:stop])
            xb = (xb.to(torch.float32).div_(255.0) - self.mean).div_(self.std)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb

    def _draw_epoch(self) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """One pass's permutation, crop offsets and flips, sent to the device in one copy.

        Drawn on the CPU in the order a batch-by-batch draw would take them (the permutation,
        then each batch's offsets and flips), so the crops are those of :func:`random_crop_flip`
        called per batch with the same generator.  On CUDA the copy leaves from pinned memory
        without blocking: no step waits for the host.
        """
        if not self.train:
            return None, None, None
        n = self.x.shape[0]
        order = torch.randperm(n, generator=self.generator)
        if not self.augment:
            return self._to_device(order[None])[0], None, None
        draws = [draw_crop_flip(min(n, s + self.batch_size) - s, self.padding, self.generator) for s in self._starts()]
        offsets = torch.cat([o for o, _ in draws], dim=1)
        flips = torch.cat([f for _, f in draws])
        served = order[: flips.shape[0]]  # drop_last: the last partial batch is never served
        packed = self._to_device(torch.cat([served[None], offsets, flips[None].long()]))
        return packed[0], packed[1:3], packed[3].bool()

    def _starts(self) -> range:
        return range(0, len(self) * self.batch_size, self.batch_size)

    def _to_device(self, host: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and torch.cuda.is_available():
            host = host.pin_memory()  # the caching host allocator keeps it until the copy is done
        return host.to(self.device, non_blocking=True)


class _UInt8Dataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: object) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.x[index]), int(self.y[index])  # type: ignore[operator]


class _DeviceLoader:
    def __init__(
        self,
        loader: torch.utils.data.DataLoader[tuple[torch.Tensor, int]],
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.loader, self.device, self.channels_last = loader, device, channels_last

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for xb, yb in self.loader:
            xb = xb.to(self.device, non_blocking=True)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb.to(self.device, non_blocking=True)


def dataloader_batches(
    bundle: DataBundle,
    split: Split,
    batch_size: int,
    device: str | torch.device,
    seed: int,
    num_workers: int = 0,
    *,
    channels_last: bool = False,
    drop_last: bool = False,
) -> _DeviceLoader:
    """The reference-style input path: ``DataLoader`` + torchvision transforms per image.

    Training batches: ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip`` (if the bundle
    augments), then scaling to 0..1 (what ``ToTensor`` does) and ``Normalize``. The shuffle order
    comes from a generator seeded with ``seed``; with ``num_workers=0`` the crops use torch's
    global RNG (seeded by the training loop). Re-iterable: each pass is one epoch.
    """
    transforms = import_torchvision("CONFIG_DATA_LOADER=dataloader").transforms
    x, y = _split(bundle, split)
    steps: list[object] = []
    if bundle.augment and split == "train":
        steps += [
            transforms.RandomCrop(bundle.image_size, padding=bundle.crop_padding),
            transforms.RandomHorizontalFlip(),
        ]
    steps += [transforms.ConvertImageDtype(torch.float32), transforms.Normalize(*bundle.stats(split))]
    dev = torch.device(device)
    loader = torch.utils.data.DataLoader(
        _UInt8Dataset(x, y, transforms.Compose(steps)),
        batch_size=batch_size,
        shuffle=split == "train",
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    return _DeviceLoader(loader, dev, channels_last)
