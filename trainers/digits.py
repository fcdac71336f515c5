"""The offline dataset: the 8x8 handwritten digits, shipped in the package (``assets/digits.csv.gz``).

The 1,797 images are the test set of the UCI ML "Optical Recognition of Handwritten Digits"
dataset (E. Alpaydin, C. Kaynak, 1998), in the 57 KB ``digits.csv.gz`` that scikit-learn also
ships (byte for byte the same file; ``sklearn.datasets.load_digits()`` returns the same values,
which the tests check where scikit-learn is installed).  Origin and licence: ``assets/DIGITS.md``.
Reading it costs about 25 ms and imports nothing but torch.

The train/test split is stratified and deterministic: per class, a fixed ``torch.Generator``
permutes the indices and the first ``round(share)`` go to the test set, with the remainder of the
rounding handed out by largest fraction (ties to the smaller label), so the test set holds exactly
:data:`TEST_SIZE` images in the dataset's class proportions.
"""

from __future__ import annotations

import gzip
import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

import torch

from pytest_sweep.trainers.errors import DataUnavailableError

TEST_SIZE = 360
SPLIT_SEED = 0
DIGITS_FILE = "digits.csv.gz"


def digits_file() -> Traversable:
    """The ``digits.csv.gz`` shipped in this package."""
    return importlib.resources.files("pytest_sweep.trainers").joinpath("assets").joinpath(DIGITS_FILE)


def read_digits(source: Traversable | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as float64 N x 8 x 8 (values 0..16) and their int64 labels."""
    source = digits_file() if source is None else source
    try:
        with source.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as fh:
            rows = [[float(v) for v in line.split(",")] for line in fh if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise DataUnavailableError(f"cannot read the digits data {source}: {exc}; reinstall pytest-sweep") from None
    table = torch.tensor(rows, dtype=torch.float64)
    if table.ndim != 2 or table.shape[1] != 65:
        raise DataUnavailableError(f"{source} does not hold 8x8 digits (shape {tuple(table.shape)})")
    return table[:, :64].reshape(-1, 8, 8).contiguous(), table[:, 64].to(torch.int64)


def stratified_split(
    labels: torch.Tensor, test_size: int = TEST_SIZE, seed: int = SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted train and test index tensors; the test set keeps the class proportions of ``labels``."""
    n = int(labels.numel())
    if not 0 < test_size < n:
        raise ValueError(f"test_size must be between 1 and {n - 1}, got {test_size}")
    classes, counts = torch.unique(labels, sorted=True, return_counts=True)
    exact = [int(c) * test_size / n for c in counts]
    take = [int(e) for e in exact]
    by_fraction = sorted(range(len(exact)), key=lambda i: (-(exact[i] - take[i]), i))
    for i in by_fraction[: test_size - sum(take)]:
        take[i] += 1
    gen = torch.Generator().manual_seed(seed)
    test_parts = []
    for cls, k in zip(classes.tolist(), take, strict=False):
        members = torch.nonzero(labels == cls).flatten()
        test_parts.append(members[torch.randperm(members.numel(), generator=gen)[:k]])
    in_test = torch.zeros(n, dtype=torch.bool)
    in_test[torch.cat(test_parts)] = True
    return torch.nonzero(~in_test).flatten(), torch.nonzero(in_test).flatten()
