"""Typed contracts between the core and the plugins that train, as ``typing.Protocol`` (no torch).

The factory hooks in :mod:`pytest_sweep.matrix.hookspecs` return objects of these shapes (the
built-in trainer's own factories, of :mod:`pytest_sweep.plugins.trainer_hookspecs`, return the
types of :mod:`pytest_sweep.trainers.contracts`).  Any
object with the right methods and attributes fits (structural typing): a third-party trainer
does not import or subclass anything from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pytest_sweep.matrix.trial import Stage, Stop, Trial, TrialContext


@runtime_checkable
class Trainer(Protocol):
    """What ``pytest_sweep_make_trainer`` returns: trains one trial and returns its metrics."""

    def run(self, trial: Trial, ctx: TrialContext) -> Mapping[str, Any] | None:
        """Train ``trial``; log through ``ctx.log``, report each epoch through ``ctx.epoch_ended``.

        Returns the metrics (keys of :data:`pytest_sweep.matrix.records.METRIC_KEYS`, plus
        ``history``, the list of per-epoch metrics); raises to fail the trial
        (:class:`~pytest_sweep.matrix.trial.TrialFailed` for a one-line reason).
        """
        ...


@runtime_checkable
class Scheduler(Protocol):
    """What ``pytest_sweep_make_scheduler`` returns: decides after each epoch whether a trial goes on.

    It runs on every process that trains; decisions that depend on other trials go through a
    store every process reaches (the built-in ones use :class:`~pytest_sweep.matrix.rungs.RungStore`).
    """

    def epoch_ended(self, trial: Trial, metrics: Mapping[str, Any]) -> Stop | None:
        """An epoch of ``trial`` ended with ``metrics``; a :class:`~pytest_sweep.matrix.trial.Stop`
        stops it there (its record gets status ``stopped``), None lets it go on."""
        ...

    def trial_finished(self, trial: Trial, record: Mapping[str, Any]) -> None:
        """``trial`` ended (its record's ``status`` says how), on the process that ran it."""
        ...


class CheckpointCodec(Protocol):
    """What ``pytest_sweep_checkpoint_codecs`` returns: serialises a trainer's checkpoint state.

    The core writes the checkpoint file (header, checksum, atomic rename); a codec turns the
    state into the payload's bytes and back.  ``name`` is stored in each file, so the same codec
    reads it back.
    """

    name: str

    def accepts(self, state: Any) -> str | None:
        """None when this codec can save ``state``; otherwise why not (one line, naming the object)."""
        ...

    def dumps(self, state: Any) -> bytes:
        """The payload for ``state``."""
        ...

    def loads(self, data: bytes) -> Any:
        """The state from a payload ``dumps`` made; raise on anything else (the file is then not used)."""
        ...


class Promoter(Protocol):
    """A scheduler that pauses trials at rungs and promotes them later (ASHA's promotion mode).

    Besides :class:`Scheduler`'s methods it answers ``pytest_sweep_promote`` through this one.
    """

    def promote(self, trial: Trial, stage: Stage, metrics: Mapping[str, Any]) -> Stop | None:
        """``trial`` is paused at ``stage.after`` with ``metrics`` (its epoch there): None promotes
        it (its stage item continues it), a :class:`~pytest_sweep.matrix.trial.Stop` ends it there."""
        ...
