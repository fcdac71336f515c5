"""Optimizer factory: SGD, Adam, AdamW, AdamWAdv, AdamWSpam and AdamWPrune.

Gradient clipping and the cosine floor are training-loop settings, not optimizer state: ask
:func:`default_grad_clip` and :func:`default_eta_min` for what an optimizer name implies and
put them into ``TrainSettings.grad_clip`` / ``TrainSettings.eta_min``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pytest_sweep.trainers.adamwprune import AdamWPrune, AdamWPruneSettings, prunable_weights
from pytest_sweep.trainers.names import ADVANCED, OPTIMIZERS
from pytest_sweep.trainers.spam import PreparedStep, SpikeGuard


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: Conv/Linear weights decay with ``weight_decay``; everything else
    (biases, batch-norm and other norm parameters) gets no decay. Empty groups are left out."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_weight = name == "weight" and isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))
            (decay if is_weight else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def default_eta_min(name: str, base: str | None = None) -> float:
    """Floor of the cosine schedule: 1e-6 for AdamWAdv/AdamWSpam (and AdamWPrune on those
    bases), else 0."""
    _check_name(name)
    return 1e-6 if name in ADVANCED or (name == "adamwprune" and base in ADVANCED) else 0.0


def default_grad_clip(name: str, base: str | None = None) -> float | None:
    """Gradient-norm clip: 1.0 for AdamWAdv/AdamWSpam (and AdamWPrune on those bases), else None."""
    _check_name(name)
    return 1.0 if name in ADVANCED or (name == "adamwprune" and base in ADVANCED) else None


def fused_default(params: Iterable[torch.Tensor]) -> bool:
    """Whether :func:`build_optimizer` asks for torch's fused kernels: when every parameter is a
    CUDA tensor (one kernel per parameter group and step instead of a handful per parameter).

    Safe for every optimizer here: pruning masks and the SPAM spike guard act on the gradients
    before ``step`` and on the weights and moments after it, never inside the update.  On the CPU
    torch's own default stays (its per-parameter loop), so CPU results do not change.
    """
    params = list(params)
    return bool(params) and all(p.device.type == "cuda" for p in params)


def _check_name(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")


class AdamWSpam(PreparedStep, torch.optim.AdamW):  # type: ignore[misc]  # Optimizer.step is overloaded
    """AdamW + AMSGrad with SPAM spike handling (see :class:`trainers.spam.SpikeGuard`)."""

    def __init__(self, params: Any, *, guard: SpikeGuard, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.guard = guard
        self.spam_step = 0

    def _prepare_gradients(self) -> None:
        """The SPAM clip and spike check on this step's gradients."""
        self.guard.before_update(self.param_groups, self.state)

    def _after_step(self) -> None:
        self.spam_step += 1
        self.guard.reset(self.spam_step, self.param_groups, self.state)

    def state_dict(self) -> dict[str, Any]:
        """The torch state plus the SPAM step counter and spike guard (a checkpoint's)."""
        state = super().state_dict()
        state["spam"] = {"step": self.spam_step, "guard": self.guard.state_dict()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        spam = state_dict.pop("spam", None)
        if spam is None:
            raise ValueError("the checkpoint's optimizer state has no AdamWSpam state")
        super().load_state_dict(state_dict)
        self.spam_step = int(spam["step"])
        self.guard.load_state_dict(spam["guard"], _device(self.param_groups))


def _device(groups: list[dict[str, Any]]) -> torch.device | None:
    params = [p for g in groups for p in g["params"]]
    return params[0].device if params else None


def build_optimizer(
    name: str,
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    amsgrad: bool | None = None,
    momentum: float = 0.9,
    spam_theta: float = 50.0,
    spam_interval: int = 0,
    spam_clip: bool = False,
    prune: AdamWPruneSettings | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over ``model``'s parameters (grouped by :func:`param_groups`).

    ``amsgrad=None`` means the optimizer's own default: on for adamwadv/adamwspam (and for
    AdamWPrune on those bases), off otherwise; a bool overrides it for the Adam family. The SPAM
    options act on adamwspam and on AdamWPrune with base ``adamwspam``. ``prune`` is required
    for ``adamwprune`` (use ``enabled=False`` to train it without pruning).

    ``fused=None`` is :func:`fused_default` of the model's parameters: build the optimizer after
    the model is on its device (the built-in trainer does).  ``True`` asks torch for its fused
    kernels on any device that has them (the CPU too); ``False`` leaves torch's own choice.
    """
    _check_name(name)
    groups = param_groups(model, weight_decay)
    if fused is None:
        fused = fused_default(model.parameters())
    flags: dict[str, Any] = {"fused": True} if fused else {}
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=False, **flags)
    adam_kwargs: dict[str, Any] = {"lr": lr, "betas": betas, "eps": eps, **flags}
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(groups, amsgrad=bool(amsgrad), **adam_kwargs)
    advanced = True if amsgrad is None else amsgrad
    if name == "adamwadv":
        return torch.optim.AdamW(groups, amsgrad=advanced, **adam_kwargs)
    guard = SpikeGuard(theta=spam_theta, interval=spam_interval, clip=spam_clip)
    if name == "adamwspam":
        return AdamWSpam(groups, guard=guard, amsgrad=advanced, **adam_kwargs)
    if prune is None:
        raise ValueError("the adamwprune optimizer needs AdamWPruneSettings (prune=...)")
    return AdamWPrune(
        groups,
        prunable_weights(model),
        prune,
        amsgrad=amsgrad,
        weight_decay=weight_decay,
        spam=guard if prune.base == "adamwspam" else None,
        **adam_kwargs,
    )
