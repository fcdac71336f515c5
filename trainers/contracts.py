"""What the built-in trainer's factory hooks return: the dataset bundle and the pruner (no torch import).

The trainer plugin's hookspecs (:mod:`pytest_sweep.plugins.trainer_hookspecs`) name these two
types, and the training loop (``pytest_sweep.trainers.loop``) takes them: this module is their
only definition.  It imports torch for type checkers alone, so documenting or type-checking a
plugin that answers the hooks loads no torch.

- :class:`DataBundle`: what ``pytest_sweep_make_dataset`` returns; the built-in loaders
  (``pytest_sweep.trainers.data.load_dataset``) build one, and so does a plugin of yours that
  supplies its own images.
- :class:`Pruner`: what ``pytest_sweep_make_pruner`` returns; any object with these three methods
  fits (a ``typing.Protocol``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch


@dataclass
class DataBundle:
    """A dataset held as uint8 image tensors plus what the input pipeline needs to know.

    What ``pytest_sweep_make_dataset`` returns for the built-in trainer (image classification):
    the images stay in memory as ``N x C x H x W`` uint8 tensors, and the input pipelines
    (``pytest_sweep.trainers.batches``) turn them into normalised float batches.
    """

    name: str
    train_x: torch.Tensor  # uint8, N x C x H x W
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the 0..1 scale
    std: tuple[float, ...]
    augment: bool  # random crop with padding + horizontal flip on training batches
    #: the test split's normalisation when it differs from the training split's (MNIST, as the reference)
    test_mean: tuple[float, ...] | None = None
    test_std: tuple[float, ...] | None = None

    def stats(self, split: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` that normalise ``split`` (``"train"`` or ``"test"``)."""
        if split == "test" and self.test_mean is not None and self.test_std is not None:
            return self.test_mean, self.test_std
        return self.mean, self.std

    @property
    def in_channels(self) -> int:
        """Channels of one image (``C``)."""
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        """Side of one (square) image in pixels."""
        return int(self.train_x.shape[-1])

    @property
    def crop_padding(self) -> int:
        """Padding of the random crop: 4 for 32-pixel images, 1 for 8-pixel ones."""
        return max(1, self.image_size // 8)


class Pruner(Protocol):
    """What ``pytest_sweep_make_pruner`` returns: called around every optimizer step."""

    def before_step(self) -> None:
        """After ``backward()``, before ``optimizer.step()`` (e.g. mask the gradients)."""

    def after_step(self, global_step: int) -> None:
        """After ``optimizer.step()``; ``global_step`` counts the steps done (1-based)."""

    def sparsity(self) -> float:
        """Fraction of exact zeros over the prunable (Conv2d/Linear) weights."""
