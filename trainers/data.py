"""Datasets as whole uint8 tensors: the bundled digits (``trainers/digits.py``), CIFAR-10, MNIST, synthetic data.

A :class:`DataBundle` keeps the raw images (N x C x H x W, uint8) and labels in memory; two input
pipelines turn them into normalised float batches: :class:`TensorBatches` (the default: the whole
dataset on the device, augmentation vectorised on the device) and :func:`dataloader_batches`
(torchvision's ``DataLoader`` + transforms, the reference's way).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.nn import functional as F

DATASET_NAMES = ("digits", "cifar10", "mnist")

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


@dataclass
class DataBundle:
    """A dataset held as uint8 image tensors plus what the input pipeline needs to know."""

    name: str
    train_x: torch.Tensor  # uint8, N x C x H x W
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the 0..1 scale
    std: tuple[float, ...]
    augment: bool  # random crop with padding + horizontal flip on training batches

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def crop_padding(self) -> int:
        """Padding of the random crop: 4 for 32-pixel images, 1 for 8-pixel ones."""
        return max(1, self.image_size // 8)


class DataUnavailableError(RuntimeError):
    """The dataset's files are not on disk and downloading was not allowed (or failed)."""


def load_dataset(name: str, *, data_dir: str | Path = "data", download: bool = False) -> DataBundle:
    """Load ``"digits"``, ``"cifar10"`` or ``"mnist"`` as a :class:`DataBundle`.

    Bundles are cached per process (keyed by name, resolved folder and ``download``), so a sweep
    of many trials reads the files once. Treat the returned tensors as read-only.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    folder = "" if name == "digits" else str(Path(data_dir).expanduser().resolve())
    return _load_cached(name, folder, download)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, folder: str, download: bool) -> DataBundle:
    if name == "digits":
        return _load_digits()
    if name == "cifar10":
        return _load_torchvision("cifar10", Path(folder), download)
    return _load_torchvision("mnist", Path(folder), download)


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scaled = x.to(torch.float64).div(255.0)
    mean = scaled.mean(dim=(0, 2, 3))
    std = scaled.std(dim=(0, 2, 3))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _load_digits() -> DataBundle:
    from trainers.digits import read_digits, stratified_split

    images, y = read_digits()  # N x 8 x 8 float64, values 0..16
    x = (images * (255.0 / 16.0)).round().clamp_(0, 255).to(torch.uint8).unsqueeze(1)
    train_i, test_i = stratified_split(y)
    train_x = x[train_i].contiguous()
    mean, std = _channel_stats(train_x)
    return DataBundle(
        name="digits",
        train_x=train_x,
        train_y=y[train_i].contiguous(),
        test_x=x[test_i].contiguous(),
        test_y=y[test_i].contiguous(),
        num_classes=10,
        mean=mean,
        std=std,
        augment=False,
    )


def _torchvision_split(
    kind: str, root: Path, train: bool, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if kind == "cifar10" else torchvision.datasets.MNIST
    label = "CIFAR-10" if kind == "cifar10" else "MNIST"
    try:
        dataset = cls(root=str(root), train=train, download=download)
    except Exception as exc:  # torchvision raises RuntimeError when missing, URLError etc. offline
        if download:
            raise DataUnavailableError(
                f"{label} could not be downloaded into {root} ({type(exc).__name__}: {exc}); "
                f"place the files there by hand and pass --data-dir"
            ) from None
        raise DataUnavailableError(
            f"{label} not found under {root}; set CONFIG_DATA_DOWNLOAD=y where the internet is "
            f"reachable, or point --data-dir at a folder that holds it"
        ) from None
    if kind == "cifar10":
        images = torch.as_tensor(dataset.data).permute(0, 3, 1, 2).contiguous()  # N x 3 x 32 x 32
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    else:
        images = torch.as_tensor(dataset.data).unsqueeze(1)  # N x 1 x 28 x 28
        images = _resize_uint8(images, 32)
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64).clone()
    return images, labels


def _resize_uint8(images: torch.Tensor, size: int, chunk: int = 10_000) -> torch.Tensor:
    """Bilinear resize of uint8 images, done once at load time, kept as uint8."""
    out = []
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].to(torch.float32)
        part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False)
        out.append(part.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out).contiguous()


def _load_torchvision(kind: str, root: Path, download: bool) -> DataBundle:
    train_x, train_y = _torchvision_split(kind, root, True, download)
    test_x, test_y = _torchvision_split(kind, root, False, download)
    cifar = kind == "cifar10"
    return DataBundle(
        name=kind,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        mean=CIFAR10_MEAN if cifar else MNIST_MEAN,
        std=CIFAR10_STD if cifar else MNIST_STD,
        augment=cifar,
    )


@functools.lru_cache(maxsize=4)
def make_synthetic(
    name: str = "synthetic-cifar",
    *,
    n_train: int = 50_000,
    n_test: int = 10_000,
    channels: int = 3,
    size: int = 32,
    classes: int = 10,
    seed: int = 0,
    augment: bool = True,
) -> DataBundle:
    """Random uint8 images with random labels, shaped like CIFAR-10 by default.

    For throughput benchmarks on machines without the real dataset; accuracy on it is chance.
    Cached per process like :func:`load_dataset`.
    """
    if min(n_train, n_test, channels, size) < 1 or classes < 2:
        raise ValueError("make_synthetic needs positive sizes and at least two classes")
    gen = torch.Generator().manual_seed(seed)
    train_x = torch.randint(0, 256, (n_train, channels, size, size), generator=gen, dtype=torch.uint8)
    test_x = torch.randint(0, 256, (n_test, channels, size, size), generator=gen, dtype=torch.uint8)
    train_y = torch.randint(0, classes, (n_train,), generator=gen)
    test_y = torch.randint(0, classes, (n_test,), generator=gen)
    mean, std = _channel_stats(train_x[:10_000])
    return DataBundle(name, train_x, train_y, test_x, test_y, classes, mean, std, augment)


Split = Literal["train", "test"]


def _split(bundle: DataBundle, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "train":
        return bundle.train_x, bundle.train_y
    if split == "test":
        return bundle.test_x, bundle.test_y
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding + random horizontal flip of a whole batch at once.

    Works on any dtype and device without a Python loop over images; the random offsets are
    drawn on the CPU from ``generator`` so a seed gives the same crops on every device.
    """
    n, c, h, w = images.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    offsets, flips = offsets.to(images.device), flips.to(images.device)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # n x h
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # n x w
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


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
        shape = (1, len(bundle.mean), 1, 1)
        self.mean = torch.tensor(bundle.mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(bundle.std, dtype=torch.float32, device=self.device).view(shape)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.train else None
        if order is not None:
            order = order.to(self.device)
        for i in range(len(self)):
            start, stop = i * self.batch_size, min(n, (i + 1) * self.batch_size)
            if order is None:
                xb, yb = self.x[start:stop], self.y[start:stop]
            else:
                idx = order[start:stop]
                xb, yb = self.x[idx], self.y[idx]
            if self.augment:
                xb = random_crop_flip(xb, self.padding, self.generator)
            xb = (xb.to(torch.float32).div_(255.0) - self.mean).div_(self.std)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb


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
    from torchvision import transforms

    x, y = _split(bundle, split)
    steps: list[object] = []
    if bundle.augment and split == "train":
        steps += [
            transforms.RandomCrop(bundle.image_size, padding=bundle.crop_padding),
            transforms.RandomHorizontalFlip(),
        ]
    steps += [transforms.ConvertImageDtype(torch.float32), transforms.Normalize(bundle.mean, bundle.std)]
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
