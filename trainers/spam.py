"""What the SPAM-style optimizers share: the spike guard and the order of a step.

:class:`SpikeGuard` is the SPAM spike handling of ``AdamWSpam`` and of AdamWPrune's ``adamwspam``
base.  :class:`PreparedStep` is the step both optimizers take: prepare this step's gradients
once (the training loop may do it itself, before gradient clipping), run the base update, then
the optimizer's own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class PreparedStep:
    """Mixin for a ``torch.optim`` optimizer whose gradients need work before the update.

    Subclasses implement ``_prepare_gradients`` (and ``_after_step`` if they need it) and put
    this class before the torch optimizer in their bases.  ``prepare_gradients`` is public: the
    training loop calls it before clipping; ``step`` calls it only when nobody did for this step.
    """

    _prepared = False

    def _prepare_gradients(self) -> None:
        raise NotImplementedError

    def _after_step(self) -> None:
        """Bookkeeping after the base update (step counters, masks, resets)."""

    @torch.no_grad()
    def prepare_gradients(self) -> None:
        self._prepare_gradients()
        self._prepared = True

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
            self._prepared = False
        if not self._prepared:
            self.prepare_gradients()
        self._prepared = False
        super().step()  # type: ignore[misc]
        self._after_step()
        return loss


class SpikeGuard:
    """SPAM spike handling for Adam-family optimizers, without host syncs.

    * ``clip`` (optional): each gradient element is clipped to ``sqrt(theta * v)``.
    * spike detection: the global gradient norm's z-score against the previous ``history``
      norms (99: the last 100 norms including the current one; at least 9 needed); above
      ``threshold`` scales ``exp_avg`` by 0.5 and ``exp_avg_sq`` by 0.9.
    * ``interval`` > 0: all moments are reset to zero every ``interval`` steps (``reset``).
    """

    def __init__(
        self,
        theta: float = 50.0,
        interval: int = 0,
        clip: bool = False,
        threshold: float = 2.0,
        history: int = 99,
    ) -> None:
        self.theta, self.interval, self.clip = theta, interval, clip
        self.threshold, self.history = threshold, history
        self._norms: torch.Tensor | None = None
        self._valid: torch.Tensor | None = None
        self._spikes: torch.Tensor | None = None
        self._pos = 0

    @property
    def spike_count(self) -> int:
        return 0 if self._spikes is None else int(self._spikes)

    def state_dict(self) -> dict[str, Any]:
        """The norm history and spike count (for a checkpoint)."""

        def clone(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()

        return {
            "norms": clone(self._norms),
            "valid": clone(self._valid),
            "spikes": clone(self._spikes),
            "pos": self._pos,
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        def put(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device) if device is not None else t.clone()

        self._norms, self._valid, self._spikes = put(state["norms"]), put(state["valid"]), put(state["spikes"])
        self._pos = int(state["pos"])

    def before_update(self, groups: list[dict[str, Any]], state: dict[Any, Any]) -> None:
        """Clip (optional) and spike-check this step's gradients; scale the moments on a spike.

        A fixed number of ``torch._foreach_*`` calls whatever the number of parameters (one
        kernel each on CUDA, instead of one per parameter), and no host sync.
        """
        params = [p for g in groups for p in g["params"] if p.grad is not None]
        if not params:
            return
        if self.clip:
            clipped = [(p.grad, state[p]["exp_avg_sq"]) for p in params if "exp_avg_sq" in state.get(p, {})]
            if clipped:
                grads, squares = (list(t) for t in zip(*clipped, strict=True))
                limits = torch._foreach_add(squares, 1e-12)
                torch._foreach_mul_(limits, self.theta)
                torch._foreach_sqrt_(limits)
                torch._foreach_minimum_(grads, limits)
                torch._foreach_neg_(limits)
                torch._foreach_maximum_(grads, limits)
        grads = [p.grad if p.grad.dtype == torch.float32 else p.grad.float() for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        if self._norms is None:
            self._norms = torch.zeros(self.history, device=norm.device)
            self._valid = torch.zeros(self.history, dtype=torch.bool, device=norm.device)
            self._spikes = torch.zeros((), dtype=torch.int64, device=norm.device)
        assert self._valid is not None and self._spikes is not None
        count = self._valid.sum()
        used = self._valid.float()
        mean = (self._norms * used).sum() / count.clamp(min=1)
        std = (((self._norms - mean) ** 2) * used).sum().div(count.clamp(min=1)).sqrt()
        z = (norm - mean) / std
        spike = (count >= 9) & (std > 0) & torch.isfinite(z) & (z > self.threshold)
        self._spikes += spike
        moments = [state[p] for p in params if "exp_avg" in state.get(p, {})]
        if moments:
            torch._foreach_mul_([st["exp_avg"] for st in moments], torch.where(spike, 0.5, 1.0))
            torch._foreach_mul_([st["exp_avg_sq"] for st in moments], torch.where(spike, 0.9, 1.0))
        finite = torch.isfinite(norm)
        self._norms[self._pos] = torch.where(finite, norm, 0.0)
        self._valid[self._pos] = finite
        self._pos = (self._pos + 1) % self.history

    def reset(self, step: int, groups: list[dict[str, Any]], state: dict[Any, Any]) -> None:
        if self.interval > 0 and step % self.interval == 0:
            moments = [
                st[key]
                for p in (p for g in groups for p in g["params"])
                for st in [state.get(p, {})]
                for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
                if key in st
            ]
            if moments:
                torch._foreach_zero_(moments)
