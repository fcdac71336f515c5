"""The trainer's own exceptions (no torch), shared by its modules without import cycles."""

from __future__ import annotations


class DataUnavailableError(RuntimeError):
    """The dataset's files are not on disk and downloading was not allowed (or failed)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class DeviceOutOfMemoryError(RuntimeError):
    """The device ran out of memory during training or evaluation (the message names the batch)."""
