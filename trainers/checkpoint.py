"""What the training loop saves for a bit-exact continuation, and how it puts it back.

A state is a plain dict of tensors and numbers (``torch.save`` writes it, ``torch.load(...,
weights_only=True)`` reads it): the model, the optimizer (with AdamWPrune's masks and step
counter, AdamWSpam's spike guard), the LR scheduler, the pruner (magnitude/movement masks,
movement's ``w0``), where the loop is (epochs done, the batch within the epoch, the global step,
the epoch's running loss and accuracy sums), the history so far, and every random number
generator the run draws from: torch's CPU generator, each CUDA device's, Python's ``random``,
NumPy's global one when NumPy is loaded, and the data order's own generator, both as it is now and
as it was when the epoch began (a mid-epoch continuation draws the epoch's permutation and crops
again from there, then skips the batches already trained).

Continuing from such a state on the same device with the same thread count gives the same
numbers as a run that was never interrupted (tested on the CPU).  Not exact: a
``torch.utils.data.DataLoader`` with worker processes (``CONFIG_NUM_WORKERS`` > 0; its workers'
generators live in other processes), and CUDA runs whose kernels are not deterministic
(see ``docs/how-to/checkpoints.md``).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from pytest_sweep.trainers.pruning import load_pruner_state, pruner_state

#: What a state says it is (a state of another shape is refused).
FORMAT = "pytest-sweep-builtin-1"


class Checkpointing(Protocol):
    """Where :func:`~pytest_sweep.trainers.loop.train` saves (a sweep's trial context behind it)."""

    def due(self, final: bool = False) -> bool:
        """Whether a checkpoint should be written now (``final``: after the last epoch)."""
        ...

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state``; may end the run by raising (a preemption) once it is written."""
        ...


class ResumeMismatch(ValueError):
    """A checkpoint's state does not fit this run's model, optimizer or settings (one line)."""


# -- random number generators ------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every global generator's state: torch CPU, each initialised CUDA device, Python, NumPy."""
    numpy = sys.modules.get("numpy")
    np_state = None
    if numpy is not None:
        kind, keys, pos, has_gauss, gauss = numpy.random.get_state()
        np_state = (str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss))
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,  # type: ignore[no-untyped-call]
        "python": random.getstate(),
        "numpy": np_state,
    }


def set_rng_state(state: dict[str, Any]) -> list[str]:
    """Put back :func:`rng_state`; returns what could not be (one line each)."""
    notes: list[str] = []
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    cuda = state.get("cuda")
    if cuda is not None:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            notes.append(f"the checkpoint holds {len(cuda)} CUDA generators; this process sees another set")
    numpy = sys.modules.get("numpy")
    saved = state.get("numpy")
    if saved is not None and numpy is not None:
        kind, keys, pos, has_gauss, gauss = saved
        numpy.random.set_state((kind, numpy.array(keys, dtype=numpy.uint32), pos, has_gauss, gauss))
    return notes


def _as_tuple(value: Any) -> Any:
    """Python's ``random`` state is nested tuples; a checkpoint may give lists back."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def data_generator(batches: Any) -> torch.Generator | None:
    """The generator that orders (and, on the tensor path, augments) the training batches."""
    found = getattr(batches, "generator", None)
    if isinstance(found, torch.Generator):
        return found
    loader = getattr(batches, "loader", None)
    found = getattr(loader, "generator", None)
    return found if isinstance(found, torch.Generator) else None


def epoch_start_state(batches: Any) -> dict[str, Any]:
    """What a pass over ``batches`` draws from, as it is before the pass starts."""
    gen = data_generator(batches)
    return {"data": None if gen is None else gen.get_state(), "torch": torch.get_rng_state()}


# -- the state -------------------------------------------------------------------------------------
@dataclass
class Position:
    """Where a restored run goes on.

    :ivar epochs_done: complete epochs.
    :ivar batch: batches done in the next epoch (None: at an epoch boundary).
    :ivar loop: the epoch's running sums at ``batch`` (mid-epoch only).
    :ivar epoch_start: the generators as they were when that epoch began (mid-epoch only).
    :ivar rng: the global generators at the save point.
    """

    epochs_done: int
    batch: int | None
    global_step: int
    history: list[dict[str, Any]]
    loop: dict[str, Any] | None
    epoch_start: dict[str, Any] | None
    rng: dict[str, Any]
    data_now: torch.Tensor | None


def capture(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    pruner: object,
    batches: Any,
    signature: dict[str, Any],
    epochs_done: int,
    global_step: int,
    history: list[dict[str, Any]],
    batch: int | None = None,
    loop: dict[str, Any] | None = None,
    epoch_start: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's state now (see the module docstring); ``batch``, ``loop`` and ``epoch_start`` mid-epoch."""
    gen = data_generator(batches)
    return {
        "format": FORMAT,
        "signature": signature,
        "epochs_done": epochs_done,
        "batch": batch,
        "global_step": global_step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "pruner": pruner_state(pruner),
        "rng": rng_state(),
        "data_now": None if gen is None else gen.get_state(),
        "epoch_start": epoch_start,
        "loop": loop,
        "history": [dict(h) for h in history],
    }


def restore(
    state: Any,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    pruner: object,
    signature: dict[str, Any],
) -> Position:
    """Load ``state`` into the run's objects; :class:`ResumeMismatch` when it does not fit.

    The generators are left to the caller (:class:`Position`): a mid-epoch continuation must
    draw the epoch's batches first.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeMismatch("not a state of the built-in trainer")
    theirs = state.get("signature")
    if theirs != signature:
        keys = sorted(k for k in signature if not isinstance(theirs, dict) or theirs.get(k) != signature[k])
        raise ResumeMismatch(f"its run differs in {', '.join(keys) or 'its settings'}")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if (scheduler is None) != (state["scheduler"] is None):
            raise ResumeMismatch("its learning-rate schedule differs")
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        load_pruner_state(pruner, state["pruner"])
    except ResumeMismatch:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResumeMismatch(first[:200]) from None
    return Position(
        epochs_done=int(state["epochs_done"]),
        batch=state["batch"],
        global_step=int(state["global_step"]),
        history=[dict(h) for h in state["history"]],
        loop=state["loop"],
        epoch_start=state["epoch_start"],
        rng=state["rng"],
        data_now=state["data_now"],
    )
