from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import torch
from torch.nn import functional as F

from pytest_sweep.trainers import data as data_module
from pytest_sweep.trainers.batches import TensorBatches, dataloader_batches, random_crop_flip
from pytest_sweep.trainers.data import load_dataset, make_synthetic
from pytest_sweep.trainers.digits import digits_file, read_digits, stratified_split
from pytest_sweep.trainers.errors import DataUnavailableError

from sweep_helpers import needs_torchvision

#: ``trainers/assets/digits.csv.gz``, as ``trainers/assets/DIGITS.md`` gives it
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
#: torch at one thread, as a sweep's xdist worker on this 2-core machine would run it
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def test_digits_bundle() -> None:
    data = load_dataset("digits")
    assert data.train_x.shape == (1437, 1, 8, 8) and data.test_x.shape == (360, 1, 8, 8)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert int(data.train_x.max()) == 255 and int(data.train_x.min()) == 0
    assert (data.in_channels, data.image_size, data.num_classes) == (1, 8, 10)
    assert not data.augment
    counts = torch.bincount(data.test_y, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # stratified
    scaled = data.train_x.double() / 255
    assert data.mean[0] == pytest.approx(float(scaled.mean()))
    assert data.std[0] == pytest.approx(float(scaled.std()))


def test_digits_split_is_deterministic_and_cached() -> None:
    first = load_dataset("digits")
    assert load_dataset("digits") is first
    data_module._load_cached.cache_clear()
    again = load_dataset("digits")
    assert again is not first
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)


def test_the_shipped_digits_are_the_uci_test_set() -> None:
    """1,797 images of 8x8 values 0..16 with the class counts UCI documents for ``optdigits.tes``."""
    images, labels = read_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert float(images.min()) == 0 and float(images.max()) == 16 and torch.equal(images, images.round())
    assert torch.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    data = digits_file().read_bytes()
    assert hashlib.sha256(data).hexdigest() == DIGITS_SHA256  # the file DIGITS.md describes


def test_digits_are_sklearns_digits_where_sklearn_is_installed() -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not a dependency any more")
    reference = datasets.load_digits()
    images, labels = read_digits()
    assert torch.equal(images, torch.as_tensor(reference.images))
    assert torch.equal(labels, torch.as_tensor(reference.target))


def test_digits_load_where_sklearn_and_scipy_cannot_be_imported() -> None:
    code = (
        "import sys\n"
        "sys.modules.update(sklearn=None, scipy=None)  # an import of either fails\n"
        "from pytest_sweep.trainers.data import load_dataset\n"
        "data = load_dataset('digits')\n"
        "print(tuple(data.train_x.shape), tuple(data.test_x.shape))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert done.stdout.strip() == "(1437, 1, 8, 8) (360, 1, 8, 8)"


@pytest.mark.parametrize(
    ("content", "why"), [(None, "No such file"), (b"not gzip", "Not a gzipped file"), (b"", "does not hold 8x8")]
)
def test_an_unreadable_digits_file_is_a_clear_error(tmp_path: Path, content: bytes | None, why: str) -> None:
    path = tmp_path / "digits.csv.gz"
    if content is not None:
        path.write_bytes(content if content != b"" else gzip.compress(b"1,2,3\n"))
    with pytest.raises(DataUnavailableError, match=why) as info:
        read_digits(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_stratified_split_keeps_class_shares_and_is_disjoint() -> None:
    _, labels = read_digits()
    train, test = stratified_split(labels, test_size=360, seed=0)
    assert train.numel() + test.numel() == labels.numel() and test.numel() == 360
    assert torch.equal(torch.sort(torch.cat([train, test])).values, torch.arange(labels.numel()))
    share = torch.bincount(labels, minlength=10).double() * 360 / labels.numel()
    taken = torch.bincount(labels[test], minlength=10).double()
    assert float((taken - share).abs().max()) < 1.0
    again_train, again_test = stratified_split(labels, test_size=360, seed=0)
    assert torch.equal(again_test, test) and torch.equal(again_train, train)
    assert not torch.equal(stratified_split(labels, test_size=360, seed=1)[1], test)
    # an uneven toy case: shares 7.5 / 2.5 of 10 -> largest remainders, ties to the smaller label
    toy = torch.tensor([0] * 30 + [1] * 10)
    _, toy_test = stratified_split(toy, test_size=10)
    assert torch.bincount(toy[toy_test]).tolist() == [8, 2]
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(toy, test_size=40)


@needs_torchvision
@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_missing_files_raise_a_clear_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_dataset(name, data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path.resolve()) in message
    assert "CONFIG_DATA_DOWNLOAD=y" in message and "--sweep-data-dir" in message
    assert "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


BROKEN_TORCHVISION = 'raise RuntimeError("operator torchvision::nms does not exist")\n'


@pytest.mark.parametrize("broken", [False, True], ids=["not installed", "built for another torch"])
def test_a_missing_torchvision_is_one_line_naming_the_extra(tmp_path: Path, broken: bool) -> None:
    """CIFAR-10, MNIST and the dataloader path import torchvision only when they run (the vision extra)."""
    code = (
        "import sys\n"
        "from pytest_sweep.trainers import errors\n"
        "from pytest_sweep.trainers.data import load_dataset\n"
        "for name in ('mnist', 'cifar10'):\n"
        "    try:\n"
        f"        load_dataset(name, data_dir={str(tmp_path)!r})\n"
        "    except errors.TorchvisionUnavailableError as exc:\n"
        "        print(exc)\n"
    )
    env = dict(os.environ)
    if broken:  # a torchvision that cannot load its operators beside this torch, as PyPI's beside torch 2.13
        (tmp_path / "torchvision").mkdir()
        (tmp_path / "torchvision" / "__init__.py").write_text(BROKEN_TORCHVISION, encoding="utf-8")
        env["PYTHONPATH"] = str(tmp_path)
    else:
        code = "import sys; sys.modules['torchvision'] = None\n" + code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    lines = done.stdout.splitlines()
    assert [line.split(" needs torchvision, which ")[0] for line in lines] == ["MNIST", "CIFAR-10"]
    why = "does not import (operator torchvision::nms does not exist)" if broken else "is not installed"
    for line in lines:
        assert f"needs torchvision, which {why}; " in line and "pip install 'pytest-sweep[vision]'" in line


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="cifar10, mnist, digits"):
        load_dataset("imagenet")


def test_synthetic_bundle() -> None:
    data = make_synthetic(n_train=64, n_test=16, channels=3, size=32, classes=10, seed=1)
    assert data.train_x.shape == (64, 3, 32, 32) and data.test_x.dtype == torch.uint8
    assert data.augment and data.crop_padding == 4 and len(data.mean) == 3
    assert make_synthetic(n_train=64, n_test=16, channels=3, size=32, classes=10, seed=1) is data


def test_crop_flip_is_a_padded_crop_of_the_input() -> None:
    images = torch.randint(1, 256, (16, 2, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, 1, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = F.pad(images, (1, 1, 1, 1))
    for i in range(16):
        candidates = [
            crop.flip(-1) if flip else crop
            for dy in range(3)
            for dx in range(3)
            for crop in [padded[i, :, dy : dy + 8, dx : dx + 8]]
            for flip in (False, True)
        ]
        assert any(torch.equal(out[i], c) for c in candidates)
    assert not torch.equal(out, images)


def test_tensor_batches_train_covers_the_split_once_per_pass() -> None:
    data = make_synthetic(n_train=100, n_test=30, seed=2)
    batches = TensorBatches(data, "train", 32, "cpu", torch.Generator().manual_seed(0))
    assert len(batches) == 4
    for _ in range(2):
        xs, ys = zip(*batches, strict=False)
        assert [x.shape[0] for x in xs] == [32, 32, 32, 4]
        assert all(x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) for x in xs)
        assert sorted(torch.cat(ys).tolist()) == sorted(data.train_y.tolist())
    dropped = TensorBatches(data, "train", 32, "cpu", torch.Generator(), drop_last=True)
    assert len(dropped) == 3 and len(list(dropped)) == 3


def test_tensor_batches_augmentation_changes_pixels_but_not_labels() -> None:
    data = make_synthetic(n_train=64, n_test=8, seed=3)
    gen = torch.Generator().manual_seed(0)
    perm_gen = torch.Generator().manual_seed(0)
    order = torch.randperm(64, generator=perm_gen)  # the permutation TensorBatches draws first
    ((x, y),) = list(TensorBatches(data, "train", 64, "cpu", gen))
    assert torch.equal(y, data.train_y[order])
    plain = _normalise(data.train_x[order], data.mean, data.std)
    changed = (x - plain).abs().amax(dim=(1, 2, 3)) > 1e-6
    assert int(changed.sum()) > 48  # most images moved or flipped


def test_tensor_batches_test_split_is_plain_and_ordered() -> None:
    data = make_synthetic(n_train=8, n_test=50, seed=4)
    batches = TensorBatches(data, "test", 16, "cpu", torch.Generator().manual_seed(0), channels_last=True)
    xs, ys = zip(*batches, strict=False)
    assert torch.allclose(torch.cat(xs), _normalise(data.test_x, data.mean, data.std), atol=1e-6)
    assert torch.equal(torch.cat(ys), data.test_y)
    assert xs[0].is_contiguous(memory_format=torch.channels_last)


def test_tensor_batches_are_reproducible_from_the_seed() -> None:
    data = load_dataset("digits")
    a = [x for x, _ in TensorBatches(data, "train", 128, "cpu", torch.Generator().manual_seed(5))]
    b = [x for x, _ in TensorBatches(data, "train", 128, "cpu", torch.Generator().manual_seed(5))]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=False))


@needs_torchvision
def test_dataloader_path_matches_shapes_and_test_values() -> None:
    data = make_synthetic(n_train=40, n_test=20, seed=6)
    train = dataloader_batches(data, "train", 16, "cpu", seed=0)
    assert len(train) == 3
    x, y = next(iter(train))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    test = dataloader_batches(data, "test", 20, "cpu", seed=0)
    ((tx, ty),) = list(test)
    assert torch.allclose(tx, _normalise(data.test_x, data.mean, data.std), atol=1e-6)
    assert torch.equal(ty, data.test_y)


def test_bad_split() -> None:
    with pytest.raises(ValueError, match="split"):
        TensorBatches(load_dataset("digits"), "val", 8, "cpu", torch.Generator())  # type: ignore[arg-type]


@needs_torchvision
def test_mnist_test_split_is_normalised_with_its_own_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the reference's LeNet-5 script: train (0.1307, 0.3081), test (0.1325, 0.3105)."""

    def fake_split(kind: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        n = 6 if train else 4
        return torch.arange(n * 32 * 32, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 32, 32), (
            torch.arange(n) % 10
        )

    monkeypatch.setattr(data_module, "_torchvision_split", fake_split)
    mnist = data_module._load_torchvision("mnist", Path("nowhere"), False)
    assert mnist.stats("train") == ((0.1307,), (0.3081,))
    assert mnist.stats("test") == ((0.1325,), (0.3105,))
    cifar = data_module._load_torchvision("cifar10", Path("nowhere"), False)
    assert cifar.stats("test") == cifar.stats("train") == (data_module.CIFAR10_MEAN, data_module.CIFAR10_STD)
    split: Literal["train", "test"]
    for split, x in (("train", mnist.train_x), ("test", mnist.test_x)):
        (tensor_batch, _), *_ = TensorBatches(mnist, split, 64, "cpu", torch.Generator().manual_seed(0))
        (loader_batch, _), *_ = dataloader_batches(mnist, split, 64, "cpu", seed=0)
        expected = _normalise(x, *mnist.stats(split))
        if split == "test":
            assert torch.allclose(tensor_batch, expected, atol=1e-5)
        assert torch.allclose(loader_batch.flatten().sort().values, expected.flatten().sort().values, atol=1e-5)
