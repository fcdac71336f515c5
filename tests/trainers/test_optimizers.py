from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from pytest_sweep.trainers.adamwprune import AdamWPrune, AdamWPruneSettings
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.names import OPTIMIZERS
from pytest_sweep.trainers.optimizers import (
    AdamWSpam,
    build_optimizer,
    default_eta_min,
    default_grad_clip,
    param_groups,
)
from pytest_sweep.trainers.spam import SpikeGuard

#: torch at one thread, as a sweep's xdist worker on this 2-core machine would run it
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _lenet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("lenet5", in_channels=1, image_size=8, num_classes=10)


def _settings(**kw: object) -> AdamWPruneSettings:
    return AdamWPruneSettings(steps_per_epoch=10, **kw)  # type: ignore[arg-type]


def test_param_groups_decay_only_conv_and_linear_weights() -> None:
    model = _lenet()
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    assert decayed == [
        "classifier.0.weight",
        "classifier.2.weight",
        "classifier.4.weight",
        "features.0.weight",
        "features.4.weight",
    ]
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert all(n.endswith("bias") or n.startswith(("features.1.", "features.5.")) for n in undecayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_builds_and_steps(name: str) -> None:
    model = _lenet()
    prune = _settings(enabled=False) if name == "adamwprune" else None
    opt = build_optimizer(name, model, lr=1e-3, weight_decay=1e-4, prune=prune)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    assert {g["weight_decay"] for g in opt.param_groups} == {1e-4, 0.0}


def test_optimizer_kinds_and_defaults() -> None:
    model = _lenet()
    sgd = build_optimizer("sgd", model, lr=0.1, weight_decay=0.0)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9 and not sgd.param_groups[0]["nesterov"]
    adv = build_optimizer("adamwadv", model, lr=1e-3, weight_decay=0.01)
    assert isinstance(adv, torch.optim.AdamW) and adv.param_groups[0]["amsgrad"]
    spam = build_optimizer("adamwspam", model, lr=1e-3, weight_decay=0.01, spam_interval=7, spam_clip=True)
    assert isinstance(spam, AdamWSpam) and spam.param_groups[0]["amsgrad"]
    assert spam.guard.interval == 7 and spam.guard.clip
    adam = build_optimizer("adam", model, lr=1e-3, weight_decay=0.01)
    assert not adam.param_groups[0]["decoupled_weight_decay"]
    assert default_eta_min("adamwadv") == 1e-6 and default_eta_min("adamw") == 0.0
    assert default_eta_min("adamwprune", base="adamwspam") == 1e-6
    assert default_grad_clip("adamwspam") == 1.0 and default_grad_clip("sgd") is None
    assert default_grad_clip("adamwprune", base="adamw") is None
    with pytest.raises(ValueError, match="sgd, adam, adamw"):
        build_optimizer("lion", model, lr=1e-3, weight_decay=0.0)
    with pytest.raises(ValueError, match="AdamWPruneSettings"):
        build_optimizer("adamwprune", model, lr=1e-3, weight_decay=0.0)


def _run_pair(
    reference: torch.optim.Optimizer,
    m_ref: nn.Module,
    ours: torch.optim.Optimizer,
    m_ours: nn.Module,
    steps: int = 20,
) -> float:
    torch.manual_seed(1)
    worst = 0.0
    for _ in range(steps):
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
        for model, opt in ((m_ref, reference), (m_ours, ours)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
            opt.step()
        diff = max(
            float((a - b).detach().abs().max()) for a, b in zip(m_ref.parameters(), m_ours.parameters(), strict=False)
        )
        worst = max(worst, diff)
    return worst


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("base,reference", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam)])
def test_adamwprune_without_pruning_is_the_base_optimizer(amsgrad: bool, base: str, reference: type) -> None:
    m_ref = _lenet()
    m_ours = copy.deepcopy(m_ref)
    kwargs: dict[str, Any] = {"lr": 3e-3, "betas": (0.85, 0.99), "eps": 1e-7, "amsgrad": amsgrad}
    ref = reference(param_groups(m_ref, 0.05), **kwargs)
    ours = build_optimizer("adamwprune", m_ours, weight_decay=0.05, prune=_settings(enabled=False, base=base), **kwargs)
    assert isinstance(ours, AdamWPrune)
    assert _run_pair(ref, m_ref, ours, m_ours) <= 1e-6


def test_adamwprune_base_adamwadv_turns_amsgrad_on_unless_told() -> None:
    model = _lenet()
    on = build_optimizer("adamwprune", model, lr=1e-3, weight_decay=0.0, prune=_settings(base="adamwadv"))
    off = build_optimizer(
        "adamwprune", model, lr=1e-3, weight_decay=0.0, amsgrad=False, prune=_settings(base="adamwadv")
    )
    assert on.param_groups[0]["amsgrad"] and not off.param_groups[0]["amsgrad"]
    spam = build_optimizer(
        "adamwprune", model, lr=1e-3, weight_decay=0.0, spam_theta=9.0, prune=_settings(base="adamwspam")
    )
    assert isinstance(spam, AdamWPrune) and spam.spam is not None and spam.spam.theta == 9.0


def _spike_setup() -> tuple[nn.Parameter, dict[Any, Any], list[dict[str, Any]]]:
    p = nn.Parameter(torch.zeros(4))
    state = {p: {"exp_avg": torch.ones(4), "exp_avg_sq": torch.ones(4)}}
    return p, state, [{"params": [p]}]


def test_spike_guard_scales_moments_on_a_spike_only() -> None:
    p, state, groups = _spike_setup()
    guard = SpikeGuard()
    for i in range(12):
        p.grad = torch.full((4,), 1.0 + 0.01 * (i % 3))
        guard.before_update(groups, state)
    assert guard.spike_count == 0 and torch.equal(state[p]["exp_avg"], torch.ones(4))
    p.grad = torch.full((4,), 50.0)
    guard.before_update(groups, state)
    assert guard.spike_count == 1
    assert torch.allclose(state[p]["exp_avg"], torch.full((4,), 0.5))
    assert torch.allclose(state[p]["exp_avg_sq"], torch.full((4,), 0.9))


def test_spike_guard_needs_history_before_detecting() -> None:
    p, state, groups = _spike_setup()
    guard = SpikeGuard()
    for value in (1.0, 1.1, 1.0, 100.0):  # a jump, but only 3 norms of history
        p.grad = torch.full((4,), value)
        guard.before_update(groups, state)
    assert guard.spike_count == 0


def test_spike_guard_clip_and_periodic_reset() -> None:
    p, state, groups = _spike_setup()
    guard = SpikeGuard(theta=4.0, interval=3, clip=True)
    p.grad = torch.tensor([10.0, -10.0, 1.0, -1.0])
    guard.before_update(groups, state)
    assert torch.allclose(p.grad, torch.tensor([2.0, -2.0, 1.0, -1.0]))  # sqrt(4 * 1)
    guard.reset(2, groups, state)
    assert torch.equal(state[p]["exp_avg"], torch.ones(4))
    guard.reset(3, groups, state)
    assert not state[p]["exp_avg"].any() and not state[p]["exp_avg_sq"].any()


def test_adamwspam_without_spikes_is_amsgrad_adamw() -> None:
    m_ref = _lenet()
    m_ours = copy.deepcopy(m_ref)
    ref = torch.optim.AdamW(param_groups(m_ref, 0.01), lr=1e-3, amsgrad=True)
    ours = build_optimizer("adamwspam", m_ours, lr=1e-3, weight_decay=0.01)
    assert isinstance(ours, AdamWSpam)
    ours.guard.threshold = float("inf")
    assert _run_pair(ref, m_ref, ours, m_ours) <= 1e-6


def test_spike_check_runs_once_per_step_before_clipping() -> None:
    model = _lenet()
    opt = build_optimizer("adamwspam", model, lr=1e-3, weight_decay=0.0)
    assert isinstance(opt, AdamWSpam)
    calls: list[int] = []
    original = opt.guard.before_update

    def counting(*args: Any) -> None:
        calls.append(1)
        original(*args)

    opt.guard.before_update = counting  # type: ignore[method-assign,assignment]
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.prepare_gradients()  # what the training loop does before clipping
    opt.step()
    assert len(calls) == 1
    opt.step()  # without prepare_gradients: step runs the check itself
    assert len(calls) == 2
