"""Pruning methods driven by the training loop: none, magnitude, movement and state.

A :class:`~pytest_sweep.trainers.contracts.Pruner` (the hooks' contract, re-exported here) is called
around every ``optimizer.step()``. Magnitude and movement keep
boolean masks on all Conv2d/Linear weights and raise the sparsity along a ramp to the target at
``steps_per_epoch * ramp_end_epoch``; "state" delegates to the AdamWPrune optimizer.
Masks only ever grow sparser: a pruned weight is never revived.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytest_sweep.trainers.adamwprune import (
    AdamWPrune,
    MaskFactors,
    global_keep_masks,
    mask_moments,
    prunable_weights,
    ramp_sparsity,
    zero_fraction,
)
from pytest_sweep.trainers.contracts import Pruner as Pruner
from pytest_sweep.trainers.names import PRUNING_METHODS


def pruner_state(pruner: object) -> dict[str, Any] | None:
    """A pruner's own state for a checkpoint (its ``state_dict()``; None when it keeps none)."""
    state_dict = getattr(pruner, "state_dict", None)
    return state_dict() if callable(state_dict) else None


def load_pruner_state(pruner: object, state: dict[str, Any] | None) -> None:
    """Put back what :func:`pruner_state` took; a pruner that keeps no state takes None only."""
    load = getattr(pruner, "load_state_dict", None)
    if callable(load):
        if state is None:
            raise ValueError(f"the checkpoint has no state for the {type(pruner).__name__} pruner")
        load(state)
    elif state is not None:
        raise ValueError(f"the checkpoint holds a pruner state, but {type(pruner).__name__} keeps none")


class NoPruning:
    """Prunes nothing; reports the (usually zero) fraction of exact zeros."""

    def __init__(self, model: nn.Module) -> None:
        self.weights = prunable_weights(model)

    def before_step(self) -> None:
        pass

    def after_step(self, global_step: int) -> None:
        pass

    def sparsity(self) -> float:
        return zero_fraction(self.weights)


class ScheduledPruner:
    """Magnitude (score ``|w|``) or movement (score ``w * (w - w0)``) pruning on a ramp.

    Masks are recomputed after step ``s`` when ``s > warmup`` and ``s % frequency == 0`` or
    ``s`` is the ramp end, from one exact global ranking (:func:`global_keep_masks`); masks are
    re-applied after every step and the optimizer moments of pruned weights are zeroed.
    ``w0`` (movement) is a copy of the weights when the pruner is built, before training: the
    weights at initialisation, as in the reference. The ramp ends at ``steps_per_epoch *
    ramp_end_epoch``, or at ``ramp_end_step`` when given.
    """

    def __init__(
        self,
        method: str,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        target_sparsity: float,
        warmup: int,
        frequency: int,
        ramp_end_epoch: int,
        steps_per_epoch: int,
        ramp: str | None = None,
        ramp_end_step: int | None = None,
    ) -> None:
        if method not in ("magnitude", "movement"):
            raise ValueError(f"ScheduledPruner handles magnitude and movement, not {method!r}")
        if not 0.0 <= target_sparsity < 1.0:
            raise ValueError(f"target sparsity must be in [0, 1), got {target_sparsity}")
        if frequency < 1 or warmup < 0 or steps_per_epoch < 1 or ramp_end_epoch < 0:
            raise ValueError("frequency and steps_per_epoch must be positive, warmup and ramp end not negative")
        self.method = method
        self.optimizer = optimizer
        self.weights = prunable_weights(model)
        self.target = target_sparsity
        self.warmup = warmup
        self.frequency = frequency
        self.steps_per_epoch = steps_per_epoch
        self.ramp_end_step = steps_per_epoch * ramp_end_epoch if ramp_end_step is None else ramp_end_step
        self.ramp = ramp or ("cubic" if method == "magnitude" else "linear")
        self.masks: list[torch.Tensor] | None = None
        self._factors = MaskFactors()
        self.w0 = [w.detach().clone() for w in self.weights] if method == "movement" else None
        self.current_sparsity = 0.0

    def due(self, step: int) -> bool:
        return step > self.warmup and (step % self.frequency == 0 or step == self.ramp_end_step)

    @torch.no_grad()
    def before_step(self) -> None:
        self._factors.apply_to_grads()

    @torch.no_grad()
    def after_step(self, global_step: int) -> None:
        self._factors.apply_to_weights()
        if self.due(global_step):
            self.update_masks(global_step)

    @torch.no_grad()
    def update_masks(self, global_step: int) -> None:
        self.current_sparsity = ramp_sparsity(
            global_step,
            target=self.target,
            warmup=self.warmup,
            ramp_end_step=self.ramp_end_step,
            ramp=self.ramp,
        )
        self.masks = global_keep_masks(self.scores(), self.current_sparsity, self.masks)
        for w, mask in zip(self.weights, self.masks, strict=False):
            w.mul_(mask)
            mask_moments(self.optimizer.state.get(w, {}), mask)
        self._factors.set(self.weights, self.masks)

    def state_dict(self) -> dict[str, Any]:
        """Masks, movement's ``w0`` and the scheduled sparsity (for a checkpoint)."""
        return {
            "method": self.method,
            "masks": None if self.masks is None else [m.clone() for m in self.masks],
            "w0": None if self.w0 is None else [w.clone() for w in self.w0],
            "current_sparsity": self.current_sparsity,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method:
            raise ValueError(
                f"the checkpoint's pruner is {state.get('method')!r}, this trial prunes by {self.method!r}"
            )
        masks, w0 = state.get("masks"), state.get("w0")
        for name, saved in (("masks", masks), ("w0", w0)):
            if saved is not None and [tuple(t.shape) for t in saved] != [tuple(w.shape) for w in self.weights]:
                raise ValueError(f"the checkpoint's pruning {name} do not fit this model's weights")
        if w0 is not None and self.w0 is not None:
            self.w0 = [w.to(mine.device) for w, mine in zip(w0, self.w0, strict=True)]
        self.current_sparsity = float(state.get("current_sparsity", 0.0))
        if masks is None:
            self.masks = None
            self._factors = MaskFactors()
            return
        self.masks = [m.to(device=w.device, dtype=torch.bool) for m, w in zip(masks, self.weights, strict=True)]
        self._factors.set(self.weights, self.masks)

    def scores(self) -> list[torch.Tensor]:
        if self.method == "magnitude":
            return [w.detach().abs() for w in self.weights]
        assert self.w0 is not None
        return [w.detach() * (w.detach() - w0.to(w.device)) for w, w0 in zip(self.weights, self.w0, strict=False)]

    def sparsity(self) -> float:
        return zero_fraction(self.weights)


class StatePruning:
    """The "state" pruning method: the AdamWPrune optimizer masks and prunes inside its own ``step``.

    Its state (masks, step counter) is the optimizer's: ``AdamWPrune.state_dict()`` holds it.
    """

    def __init__(self, optimizer: AdamWPrune) -> None:
        self.optimizer = optimizer

    def before_step(self) -> None:
        pass

    def after_step(self, global_step: int) -> None:
        pass

    def sparsity(self) -> float:
        return self.optimizer.sparsity()


def build_pruner(
    method: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    target_sparsity: float,
    warmup: int,
    frequency: int,
    ramp_end_epoch: int,
    steps_per_epoch: int,
    ramp: str | None = None,
    ramp_end_step: int | None = None,
) -> Pruner:
    """Build pruning ``method`` (one of :data:`PRUNING_METHODS`) for ``model``/``optimizer``.

    ``ramp`` ``None`` is the method's own shape (magnitude cubic, movement linear); ``ramp_end_step``
    ``None`` ends the ramp at ``ramp_end_epoch``. For "state" the schedule arguments are ignored:
    AdamWPrune carries its own settings.
    """
    if method not in PRUNING_METHODS:
        raise ValueError(f"unknown pruning method {method!r}; valid: {', '.join(PRUNING_METHODS)}")
    prunes_itself = isinstance(optimizer, AdamWPrune) and optimizer.settings.enabled
    if method == "state":
        if not isinstance(optimizer, AdamWPrune):
            raise ValueError("state pruning needs the AdamWPrune optimizer")
        if not optimizer.settings.enabled:
            raise ValueError("state pruning needs AdamWPrune with pruning enabled")
        return StatePruning(optimizer)
    if prunes_itself:
        raise ValueError(
            f"AdamWPrune prunes by its own state; pruning method {method!r} cannot run with it "
            "(use 'state', or build AdamWPrune with enabled=False)"
        )
    if method == "none":
        return NoPruning(model)
    return ScheduledPruner(
        method,
        model,
        optimizer,
        target_sparsity=target_sparsity,
        warmup=warmup,
        frequency=frequency,
        ramp_end_epoch=ramp_end_epoch,
        steps_per_epoch=steps_per_epoch,
        ramp=ramp,
        ramp_end_step=ramp_end_step,
    )
