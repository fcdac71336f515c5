"""Datasets as whole uint8 tensors: the bundled digits (``trainers/digits.py``), CIFAR-10, MNIST, synthetic data.

A :class:`~pytest_sweep.trainers.contracts.DataBundle` (defined in ``trainers/contracts.py``, the
hooks' contract, and re-exported here) keeps the raw images (N x C x H x W, uint8) and labels in
memory; the input pipelines of :mod:`trainers.batches` turn them into normalised float batches.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

import torch
from torch.nn import functional as F

from pytest_sweep.trainers.contracts import DataBundle as DataBundle
from pytest_sweep.trainers.errors import DataUnavailableError, TorchvisionUnavailableError
from pytest_sweep.trainers.names import DATASETS

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
#: The reference's LeNet-5 script normalises MNIST's test set with the test set's own statistics.
MNIST_TEST_MEAN = (0.1325,)
MNIST_TEST_STD = (0.3105,)


def load_dataset(name: str, *, data_dir: str | Path = "data", download: bool = False) -> DataBundle:
    """Load ``"digits"``, ``"cifar10"`` or ``"mnist"`` as a :class:`DataBundle`.

    Bundles are cached per process (keyed by name, resolved folder and ``download``), so a sweep
    of many trials reads the files once. Treat the returned tensors as read-only.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
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
    from pytest_sweep.trainers.digits import read_digits, stratified_split

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


def import_torchvision(needed_by: str) -> ModuleType:
    """torchvision, imported now; else one line that names what needs it and how to install it."""
    try:
        import torchvision
    except Exception as exc:  # not installed, or built for another torch ("operator torchvision::nms does not exist")
        why = "is not installed" if isinstance(exc, ModuleNotFoundError) else f"does not import ({exc})"
        raise TorchvisionUnavailableError(
            f"{needed_by} needs torchvision, which {why}; install the one built for torch {torch.__version__} "
            "(pip install 'pytest-sweep[vision]'), or train on the bundled digits (CONFIG_DATASET=\"digits\")"
        ) from None
    module: ModuleType = torchvision
    return module


def _torchvision_split(kind: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    torchvision = import_torchvision("CIFAR-10" if kind == "cifar10" else "MNIST")
    cls = torchvision.datasets.CIFAR10 if kind == "cifar10" else torchvision.datasets.MNIST
    label = "CIFAR-10" if kind == "cifar10" else "MNIST"
    try:
        dataset = cls(root=str(root), train=train, download=download)
    except Exception as exc:  # torchvision raises RuntimeError when missing, URLError etc. offline
        if download:
            raise DataUnavailableError(
                f"{label} could not be downloaded into {root} ({type(exc).__name__}: {exc}); "
                f"place the files there by hand and pass --sweep-data-dir"
            ) from None
        raise DataUnavailableError(
            f"{label} not found under {root}; set CONFIG_DATA_DOWNLOAD=y where the internet is "
            f"reachable, or point --sweep-data-dir at a folder that holds it"
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
        test_mean=None if cifar else MNIST_TEST_MEAN,
        test_std=None if cifar else MNIST_TEST_STD,
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
