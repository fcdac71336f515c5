"""AdamWPrune: AdamW whose own moment estimates decide which weights to prune.

Also holds what every pruning method shares: which tensors are prunable, the ramp schedule and
the exact global threshold.  The SPAM spike guard and the step order shared with ``AdamWSpam``
are in :mod:`trainers.spam`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_sweep.trainers.names import BASES, RAMPS, VARIANTS
from pytest_sweep.trainers.spam import PreparedStep, SpikeGuard

MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


def prunable_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weights pruning acts on: every Conv2d and Linear weight, in module order."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def zero_fraction(weights: Sequence[torch.Tensor]) -> float:
    """Fraction of exact zeros over ``weights`` (the reported sparsity, 0..1)."""
    total = sum(w.numel() for w in weights)
    if total == 0:
        return 0.0
    zeros = torch.stack([(w.detach() == 0).sum() for w in weights]).sum()  # one host sync
    return int(zeros) / total


def ramp_sparsity(step: int, *, target: float, warmup: int, ramp_end_step: int, ramp: str = "cubic") -> float:
    """Sparsity the schedule asks for at ``step``: 0 until warmup, ``target`` from ramp end on.

    ``progress = min(1, (step - warmup) / (ramp_end_step - warmup))``, cubed for ``"cubic"``.
    A ramp that ends at or before the warmup jumps straight to ``target``.
    """
    if step <= warmup:
        return 0.0
    span = ramp_end_step - warmup
    progress = 1.0 if span <= 0 else min(1.0, (step - warmup) / span)
    return target * (progress**3 if ramp == "cubic" else progress)


def global_keep_masks(
    scores: Sequence[torch.Tensor], sparsity: float, previous: Sequence[torch.Tensor] | None = None
) -> list[torch.Tensor]:
    """Boolean keep-masks that prune exactly ``round(sparsity * n)`` weights with the lowest scores.

    One global threshold over all tensors: the k-th smallest score (``torch.kthvalue``, exact,
    no sampling); everything below it is pruned, and ties at the threshold are pruned in index
    order until exactly k are, so the result is deterministic. NaN scores count as lowest.
    Weights already pruned in ``previous`` stay pruned: masks only grow sparser, so the count
    is ``max(round(sparsity * n), already pruned)``.
    """
    flat = torch.cat([s.detach().reshape(-1).float() for s in scores])
    flat = torch.nan_to_num(flat, nan=-math.inf)
    n = flat.numel()
    k = math.floor(sparsity * n + 0.5)
    if previous is not None:
        prev = torch.cat([m.reshape(-1).to(flat.device) for m in previous])
        flat = flat.masked_fill(~prev, -math.inf)
        k = max(k, n - int(prev.sum()))
    if k <= 0:
        keep = torch.ones(n, dtype=torch.bool, device=flat.device)
    elif k >= n:
        keep = torch.zeros(n, dtype=torch.bool, device=flat.device)
    else:
        threshold = torch.kthvalue(flat, k).values
        keep = flat > threshold
        ties = (flat == threshold).nonzero().squeeze(1)
        keep[ties[k - int((flat < threshold).sum()) :]] = True
    parts = torch.split(keep, [s.numel() for s in scores])
    return [part.view(s.shape) for part, s in zip(parts, scores, strict=False)]


class MaskFactors:
    """Keep-masks as multipliers in each weight's dtype, applied with one ``torch._foreach_mul_``.

    One call per step whatever the number of masked tensors (one kernel on CUDA, where a loop
    over the weights launched one per tensor); bool masks of another dtype would also push
    ``_foreach_mul_`` off its fast path.  Multiplying by 1.0/0.0 gives the same values as by the
    bool mask.
    """

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []
        self.factors: list[torch.Tensor] = []

    def set(self, weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
        self.weights = list(weights)
        self.factors = [m.to(device=w.device, dtype=w.dtype) for w, m in zip(weights, masks, strict=True)]

    @torch.no_grad()
    def apply_to_grads(self) -> None:
        pairs = [(w.grad, f) for w, f in zip(self.weights, self.factors, strict=True) if w.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [f for _, f in pairs])

    @torch.no_grad()
    def apply_to_weights(self) -> None:
        if self.weights:
            torch._foreach_mul_(self.weights, self.factors)


def mask_moments(state: dict[str, Any], mask: torch.Tensor) -> None:
    """Zero the optimizer moments (Adam's, AMSGrad's, SGD momentum) of pruned weights."""
    for key in MOMENT_KEYS:
        value = state.get(key)
        if isinstance(value, torch.Tensor) and value.shape == mask.shape:
            value.mul_(mask)


@dataclass(frozen=True, kw_only=True)
class AdamWPruneSettings:
    """How AdamWPrune prunes. ``steps_per_epoch`` turns ``ramp_end_epoch`` into a step, unless
    ``ramp_end_at_step`` gives the step itself."""

    steps_per_epoch: int
    target_sparsity: float = 0.7
    warmup: int = 100
    frequency: int = 50
    ramp_end_epoch: int = 75
    variant: str = "bitter0"
    base: str = "adamw"
    enabled: bool = True
    ramp: str = "cubic"
    ramp_end_at_step: int | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown AdamWPrune variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.base not in BASES:
            raise ValueError(f"unknown AdamWPrune base {self.base!r}; valid: {', '.join(BASES)}")
        if self.ramp not in RAMPS:
            raise ValueError(f"unknown ramp {self.ramp!r}; valid: {', '.join(RAMPS)}")
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ValueError(f"target sparsity must be in [0, 1), got {self.target_sparsity}")
        if min(self.steps_per_epoch, self.frequency) < 1 or min(self.warmup, self.ramp_end_epoch) < 0:
            raise ValueError("steps_per_epoch and frequency must be positive, warmup and ramp_end_epoch not negative")

    @property
    def ramp_end_step(self) -> int:
        if self.ramp_end_at_step is not None:
            return self.ramp_end_at_step
        return self.steps_per_epoch * self.ramp_end_epoch

    def due(self, step: int) -> bool:
        """Whether the masks are recomputed after optimizer step ``step`` (1-based).

        Every ``frequency`` steps after the warmup, and also exactly at the ramp end, so a run
        that reaches the ramp end has the target sparsity even when the ramp end is not a
        multiple of ``frequency``.
        """
        return self.enabled and step > self.warmup and (step % self.frequency == 0 or step == self.ramp_end_step)


def _score(variant: str, w: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
    w = w.detach().float()
    m, v = state.get("exp_avg"), state.get("exp_avg_sq")
    if variant == "bitter1" or m is None or v is None:
        return w.abs()
    m, v = m.float(), v.float()
    score: torch.Tensor
    if variant == "bitter0":
        score = (w * m).abs() * w.abs() / (v.sqrt() + 1e-8)
    elif variant == "bitter3":
        score = w.abs() * (m.abs() + 1e-8).sqrt()
    else:  # bitter7
        score = w.abs() * (v.abs() + 1e-8) ** 0.25
    return score


class AdamWPrune(PreparedStep, torch.optim.Adam):  # type: ignore[misc]  # Optimizer.step is overloaded
    """Adam-family optimizer with boolean masks on the prunable weights ("state" pruning).

    Each ``step``: gradients of pruned weights are zeroed, the base update runs (``adam``:
    L2-coupled decay; ``adamw``: decoupled decay; ``adamwadv``: + AMSGrad; ``adamwspam``:
    + AMSGrad and :class:`SpikeGuard`), the step counter advances, and when
    :meth:`AdamWPruneSettings.due` the masks are recomputed from a global exact threshold over
    the variant's scores. Pruned weights and their moments are zero and stay zero.

    ``amsgrad=None`` takes the base's default (on for adamwadv/adamwspam); a bool overrides it.
    With ``settings.enabled=False`` and base ``adamw`` this is exactly ``torch.optim.AdamW``.
    Gradient clipping (1.0 for the adamwadv/adamwspam bases) is the training loop's job.
    ``fused=True`` (torch's fused Adam kernel) is safe: the masks act outside the update.
    """

    def __init__(
        self,
        params: Iterable[Any],
        prunable: Iterable[torch.Tensor],
        settings: AdamWPruneSettings,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool | None = None,
        spam: SpikeGuard | None = None,
        fused: bool | None = None,
    ) -> None:
        advanced = settings.base in ("adamwadv", "adamwspam")
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=advanced if amsgrad is None else amsgrad,
            decoupled_weight_decay=settings.base != "adam",
            fused=fused,
        )
        self.settings = settings
        self.prunable = list(prunable)
        self.masks: dict[torch.Tensor, torch.Tensor] = {}
        self._factors = MaskFactors()
        if spam is None and settings.base == "adamwspam":
            spam = SpikeGuard()
        self.spam = spam
        self.prune_step = 0
        self.current_sparsity = 0.0

    def _after_step(self) -> None:
        self.prune_step += 1
        if self.spam is not None:
            self.spam.reset(self.prune_step, self.param_groups, self.state)
        self._factors.apply_to_weights()
        if self.settings.due(self.prune_step):
            self.update_masks()

    def _prepare_gradients(self) -> None:
        """Zero the gradients of pruned weights, then the SPAM clip and spike check (if any).

        The training loop calls ``prepare_gradients`` before gradient-norm clipping, so clipping
        sees the masked gradients and the spike check sees the unclipped norm (the reference's
        order); ``step`` does it itself otherwise.
        """
        self._factors.apply_to_grads()
        if self.spam is not None:
            self.spam.before_update(self.param_groups, self.state)

    @torch.no_grad()
    def update_masks(self) -> None:
        """Recompute the masks for the current step's scheduled sparsity and apply them."""
        s = self.settings
        self.current_sparsity = ramp_sparsity(
            self.prune_step,
            target=s.target_sparsity,
            warmup=s.warmup,
            ramp_end_step=s.ramp_end_step,
            ramp=s.ramp,
        )
        scores = [_score(s.variant, p, self.state.get(p, {})) for p in self.prunable]
        previous = [self.masks[p] for p in self.prunable] if self.masks else None
        for p, mask in zip(self.prunable, global_keep_masks(scores, self.current_sparsity, previous), strict=False):
            self.masks[p] = mask
            p.mul_(mask)
            mask_moments(self.state.get(p, {}), mask)
        self._factors.set(list(self.masks), list(self.masks.values()))

    def sparsity(self) -> float:
        """Fraction of exact zeros over the prunable weights."""
        return zero_fraction(self.prunable)

    def state_dict(self) -> dict[str, Any]:
        """The torch state plus AdamWPrune's own: masks, step counter, sparsity, spike guard."""
        state = super().state_dict()
        state["adamwprune"] = {
            "masks": [self.masks[p].clone() for p in self.prunable] if self.masks else None,
            "prune_step": self.prune_step,
            "current_sparsity": self.current_sparsity,
            "spam": self.spam.state_dict() if self.spam is not None else None,
        }
        return state

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        own = state_dict.pop("adamwprune", None)
        if own is None:
            raise ValueError("the checkpoint's optimizer state has no AdamWPrune state")
        masks = own["masks"]
        if masks is not None and [tuple(m.shape) for m in masks] != [tuple(p.shape) for p in self.prunable]:
            raise ValueError("the checkpoint's AdamWPrune masks do not fit this model's weights")
        if (own["spam"] is None) != (self.spam is None):
            raise ValueError("the checkpoint's AdamWPrune base differs from this trial's (spike guard)")
        super().load_state_dict(state_dict)
        self.prune_step = int(own["prune_step"])
        self.current_sparsity = float(own["current_sparsity"])
        self.masks = {}
        if masks is not None:
            for p, m in zip(self.prunable, masks, strict=True):
                self.masks[p] = m.to(device=p.device, dtype=torch.bool)
            self._factors.set(list(self.masks), list(self.masks.values()))
        else:
            self._factors = MaskFactors()
        if self.spam is not None:
            device = self.prunable[0].device if self.prunable else None
            self.spam.load_state_dict(own["spam"], device)
