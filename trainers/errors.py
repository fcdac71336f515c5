"""The trainer's own exceptions (no torch), shared by its modules without import cycles."""

from __future__ import annotations


class DataUnavailableError(RuntimeError):
    """The dataset's files are not on disk and downloading was not allowed (or failed)."""


class TorchvisionUnavailableError(DataUnavailableError):
    """torchvision is not installed, or does not import beside this torch.

    Only the CIFAR-10 and MNIST loaders and the ``dataloader`` input path need it: it is the
    ``vision`` extra (``pip install 'pytest-sweep[vision]'``), not a core dependency, so that
    pytest-sweep installs beside any torch.
    """


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class DeviceOutOfMemoryError(RuntimeError):
    """The device ran out of memory during training or evaluation (the message names the batch)."""
