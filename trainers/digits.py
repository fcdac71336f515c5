"""The offline dataset: scikit-learn's bundled 8x8 handwritten digits, read without importing sklearn.

The images are the 1,797 that ``sklearn.datasets.load_digits()`` returns (tests check that, value for
value), read straight from the ``digits.csv.gz`` file the scikit-learn wheel ships. Importing
``sklearn.datasets`` costs 1.4-2 s of CPU per process on a 2-core machine (scipy and friends), which
every xdist worker and every serial run paid before its first digits trial; reading the file costs
about 25 ms.

The train/test split is stratified and deterministic: per class, a fixed ``torch.Generator``
permutes the indices and the first ``round(share)`` go to the test set, with the remainder of the
rounding handed out by largest fraction (ties to the smaller label), so the test set holds exactly
:data:`TEST_SIZE` images in the dataset's class proportions.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import torch

from pytest_sweep.trainers.errors import DataUnavailableError

TEST_SIZE = 360
SPLIT_SEED = 0


def digits_csv_path() -> Path:
    """The ``digits.csv.gz`` inside the installed scikit-learn, found without importing it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(
            "the digits dataset ships with scikit-learn, which is not installed; pip install scikit-learn"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise DataUnavailableError(
        f"scikit-learn at {', '.join(spec.submodule_search_locations)} has no datasets/data/digits.csv.gz; "
        "reinstall scikit-learn"
    )


def read_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as float64 N x 8 x 8 (values 0..16) and their int64 labels."""
    path = digits_csv_path()
    try:
        with gzip.open(path, "rt", encoding="ascii") as fh:
            rows = [[float(v) for v in line.split(",")] for line in fh if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise DataUnavailableError(f"cannot read {path}: {exc}; reinstall scikit-learn") from None
    table = torch.tensor(rows, dtype=torch.float64)
    if table.ndim != 2 or table.shape[1] != 65:
        raise DataUnavailableError(f"{path} does not hold 8x8 digits (shape {tuple(table.shape)})")
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
