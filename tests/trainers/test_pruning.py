from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
import torch
from torch import nn

from pytest_sweep.trainers.adamwprune import (
    AdamWPrune,
    AdamWPruneSettings,
    _score,
    global_keep_masks,
    prunable_weights,
    ramp_sparsity,
    zero_fraction,
)
from pytest_sweep.trainers.data import load_dataset
from pytest_sweep.trainers.loop import TrainSettings, seed_everything, steps_per_epoch, train
from pytest_sweep.trainers.models import build_model
from pytest_sweep.trainers.optimizers import build_optimizer
from pytest_sweep.trainers.pruning import (
    NoPruning,
    ScheduledPruner,
    StatePruning,
    build_pruner,
)
from pytest_sweep.trainers.pruning import Pruner as LoopPruner

#: torch at one thread, as a sweep's xdist worker on this 2-core machine would run it
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("lenet5", in_channels=1, image_size=8, num_classes=10)


def _n_weights(model: nn.Module) -> int:
    return sum(w.numel() for w in prunable_weights(model))


def _steps(model: nn.Module, opt: torch.optim.Optimizer, pruner: object | None, n: int, start: int = 0) -> None:
    gen = torch.Generator().manual_seed(start)
    for step in range(start + 1, start + n + 1):
        x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
        if pruner is not None:
            pruner.before_step()  # type: ignore[attr-defined]
        opt.step()
        if pruner is not None:
            pruner.after_step(step)  # type: ignore[attr-defined]


def test_cubic_and_linear_ramps() -> None:
    kw: dict[str, Any] = {"target": 0.7, "warmup": 100, "ramp_end_step": 1100}
    assert ramp_sparsity(100, **kw) == 0.0
    assert ramp_sparsity(600, **kw) == pytest.approx(0.7 * 0.5**3)
    assert ramp_sparsity(850, **kw) == pytest.approx(0.7 * 0.75**3)
    assert ramp_sparsity(1100, **kw) == pytest.approx(0.7)
    assert ramp_sparsity(5000, **kw) == pytest.approx(0.7)
    assert ramp_sparsity(600, ramp="linear", **kw) == pytest.approx(0.35)
    assert ramp_sparsity(101, target=0.5, warmup=100, ramp_end_step=50) == 0.5


def test_global_masks_prune_exactly_k_with_ties_and_keep_old_pruning() -> None:
    scores = [torch.tensor([3.0, 1.0, 1.0, 1.0, 2.0]), torch.tensor([[1.0, 0.5], [5.0, 1.0]])]
    for sparsity, k in ((0.0, 0), (0.1, 1), (0.3, 3), (0.5, 5), (0.9, 8), (1.0, 9)):
        masks = global_keep_masks(scores, sparsity)
        assert sum(int((~m).sum()) for m in masks) == k
        assert [m.shape for m in masks] == [s.shape for s in scores]
        again = global_keep_masks(scores, sparsity)
        assert all(torch.equal(a, b) for a, b in zip(masks, again, strict=False))
    first = global_keep_masks(scores, 0.3)  # 0.5, then two of the tied 1.0s
    assert first[0].tolist() == [True, False, False, True, True]
    later = global_keep_masks([torch.full((5,), 9.0), torch.full((2, 2), 9.0)], 0.1, first)
    assert all(torch.equal(a, b) for a, b in zip(first, later, strict=False))  # nothing revived


def test_global_threshold_is_deterministic_on_a_big_model() -> None:
    model = build_model("resnet18", in_channels=3, image_size=32, num_classes=10, width=16)
    scores = [w.detach().abs().round(decimals=2) for w in prunable_weights(model)]  # many ties
    a = global_keep_masks(scores, 0.7)
    b = global_keep_masks(scores, 0.7)
    n = _n_weights(model)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False))
    assert sum(int((~m).sum()) for m in a) == round(0.7 * n)


def _scheduled(method: str, model: nn.Module, opt: torch.optim.Optimizer, **kw: float) -> ScheduledPruner:
    settings = {
        "target_sparsity": 0.6,
        "warmup": 0,
        "frequency": 1,
        "ramp_end_epoch": 1,
        "steps_per_epoch": 1,
    }
    settings.update(kw)
    pruner = build_pruner(method, model, opt, **settings)  # type: ignore[arg-type]
    assert isinstance(pruner, ScheduledPruner)
    return pruner


def test_magnitude_prunes_exactly_the_smallest_weights() -> None:
    model = _lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    weights = prunable_weights(model)
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    k = round(0.6 * flat.numel())
    expected_pruned = set(torch.argsort(flat)[:k].tolist())
    pruner = _scheduled("magnitude", model, opt)
    pruner.after_step(1)
    zeros = torch.cat([w.detach().flatten() for w in weights]) == 0
    assert set(zeros.nonzero().flatten().tolist()) == expected_pruned
    assert pruner.sparsity() == pytest.approx(k / flat.numel())


def test_movement_scores_weight_times_its_movement_since_initialisation() -> None:
    model = _lenet()
    initial = [w.detach().clone() for w in prunable_weights(model)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = _scheduled("movement", model, opt, warmup=2, frequency=100)
    assert pruner.w0 is not None  # taken when the pruner is built, as the reference does
    assert all(torch.equal(w0, w) for w0, w in zip(pruner.w0, initial, strict=True))
    _steps(model, opt, pruner, 5)
    assert all(torch.equal(w0, w) for w0, w in zip(pruner.w0, initial, strict=True))  # not re-taken at warmup
    weights = prunable_weights(model)
    assert not torch.equal(weights[0], initial[0])  # the weights moved
    for score, w, start in zip(pruner.scores(), weights, initial, strict=False):
        assert torch.allclose(score, w.detach() * (w.detach() - start))
    flat = torch.cat([s.flatten() for s in pruner.scores()])
    pruner.update_masks(1_000)
    zeros = torch.cat([w.detach().flatten() for w in weights]) == 0
    assert int(zeros.sum()) == round(0.6 * flat.numel())
    assert float(flat[zeros].max()) <= float(flat[~zeros].min())  # the lowest scores went


def test_scheduled_pruner_zeroes_momentum_and_keeps_weights_pruned() -> None:
    model = _lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    pruner = _scheduled("magnitude", model, opt, warmup=3, frequency=2, target_sparsity=0.5, ramp_end_epoch=6)
    _steps(model, opt, pruner, 6)
    assert pruner.sparsity() == pytest.approx(0.5, abs=1 / _n_weights(model))
    pruned = [(w.detach() == 0).clone() for w in prunable_weights(model)]
    _steps(model, opt, pruner, 5, start=6)
    for w, was_zero in zip(prunable_weights(model), pruned, strict=False):
        assert not w.detach()[was_zero].any()
        assert not opt.state[w]["momentum_buffer"][was_zero].any()


def _adamwprune(model: nn.Module, **kw: object) -> AdamWPrune:
    settings = AdamWPruneSettings(
        steps_per_epoch=10,
        target_sparsity=0.7,
        warmup=5,
        frequency=5,
        ramp_end_epoch=3,
        **kw,  # type: ignore[arg-type]
    )
    opt = build_optimizer("adamwprune", model, lr=1e-2, weight_decay=0.1, amsgrad=True, spam_clip=True, prune=settings)
    assert isinstance(opt, AdamWPrune)
    return opt


def test_adamwprune_follows_the_cubic_ramp_to_the_target() -> None:
    model = _lenet()
    opt = _adamwprune(model)
    n = _n_weights(model)
    _steps(model, opt, None, 5)
    assert opt.sparsity() == 0.0  # step 5 is not after the warmup
    _steps(model, opt, None, 15, start=5)  # step 20: progress (20-5)/(30-5) = 0.6
    assert opt.sparsity() == pytest.approx(0.7 * 0.6**3, abs=1 / n)
    _steps(model, opt, None, 10, start=20)  # step 30 = ramp end
    assert opt.sparsity() == pytest.approx(0.7, abs=1 / n)
    assert opt.current_sparsity == pytest.approx(0.7)


@pytest.mark.parametrize(
    "base,variant",
    [("adamw", "bitter0"), ("adam", "bitter1"), ("adamwadv", "bitter3"), ("adamwspam", "bitter7")],
)
def test_adamwprune_masked_weights_and_moments_stay_zero(base: str, variant: str) -> None:
    model = _lenet()
    opt = _adamwprune(model, base=base, variant=variant)
    if opt.spam is not None:
        opt.spam.interval = 7  # periodic moment resets on top
    _steps(model, opt, None, 30)
    masks = {p: ~m for p, m in opt.masks.items()}
    assert sum(int(m.sum()) for m in masks.values()) > 0
    _steps(model, opt, None, 12, start=30)  # also crosses a mask update at step 35 and 40
    for p, pruned in masks.items():
        state = opt.state[p]
        assert not p.detach()[pruned].any()
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert not state[key][pruned].any(), key
    assert opt.sparsity() == pytest.approx(0.7, abs=1 / _n_weights(model))


def test_adamwprune_is_deterministic() -> None:
    results = []
    for _ in range(2):
        model = _lenet()
        opt = _adamwprune(model)
        _steps(model, opt, None, 25)
        results.append([m.clone() for m in opt.masks.values()])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=False))


def test_ramp_end_between_mask_updates_still_reaches_the_target() -> None:
    model = _lenet()
    settings = AdamWPruneSettings(steps_per_epoch=7, target_sparsity=0.5, warmup=2, frequency=5, ramp_end_epoch=3)
    opt = build_optimizer("adamwprune", model, lr=1e-3, weight_decay=0.0, prune=settings)
    _steps(model, opt, None, 21)  # ramp end 21 is not a multiple of 5
    assert opt.sparsity() == pytest.approx(0.5, abs=1 / _n_weights(model))  # type: ignore[attr-defined]


def test_bitter_variant_scores() -> None:
    w = torch.tensor([1.0, -2.0, 3.0])
    m = torch.tensor([0.5, 0.5, -1.0])
    v = torch.tensor([0.25, 4.0, 1.0])
    state = {"exp_avg": m, "exp_avg_sq": v}
    assert torch.allclose(_score("bitter0", w, state), (w * m).abs() * w.abs() / (v.sqrt() + 1e-8))
    assert torch.allclose(_score("bitter1", w, state), w.abs())
    assert torch.allclose(_score("bitter3", w, state), w.abs() * (m.abs() + 1e-8).sqrt())
    assert torch.allclose(_score("bitter7", w, state), w.abs() * (v + 1e-8) ** 0.25)
    assert torch.allclose(_score("bitter0", w, {}), w.abs())  # no Adam state yet


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="bitter0"):
        AdamWPruneSettings(steps_per_epoch=1, variant="bitter99")
    with pytest.raises(ValueError, match="adamwspam"):
        AdamWPruneSettings(steps_per_epoch=1, base="sgd")
    with pytest.raises(ValueError, match="sparsity"):
        AdamWPruneSettings(steps_per_epoch=1, target_sparsity=1.5)


def test_builder_errors() -> None:
    model = _lenet()
    adamw = build_optimizer("adamw", model, lr=1e-3, weight_decay=0.0)
    kw: dict[str, Any] = {
        "target_sparsity": 0.5,
        "warmup": 0,
        "frequency": 1,
        "ramp_end_epoch": 1,
        "steps_per_epoch": 1,
    }
    with pytest.raises(ValueError, match="state pruning needs the AdamWPrune optimizer"):
        build_pruner("state", model, adamw, **kw)
    with pytest.raises(ValueError, match="none, magnitude, movement, state"):
        build_pruner("random", model, adamw, **kw)
    assert isinstance(build_pruner("none", model, adamw, **kw), NoPruning)
    pruning = _adamwprune(model)
    assert isinstance(build_pruner("state", model, pruning, **kw), StatePruning)
    with pytest.raises(ValueError, match="own state"):
        build_pruner("magnitude", model, pruning, **kw)


@pytest.mark.parametrize("method", ["magnitude", "movement", "state"])
def test_training_reaches_the_target_sparsity(method: str) -> None:
    data = load_dataset("digits")
    batch = 128
    spe = steps_per_epoch(len(data.train_y), batch)
    seed_everything(0)
    model = build_model("lenet5", in_channels=1, image_size=8, num_classes=10)
    schedule = {
        "target_sparsity": 0.7,
        "warmup": 5,
        "frequency": 4,
        "ramp_end_epoch": 3,
        "steps_per_epoch": spe,
    }
    if method == "state":
        prune = AdamWPruneSettings(**schedule)  # type: ignore[arg-type]
        opt = build_optimizer("adamwprune", model, lr=3e-3, weight_decay=1e-4, prune=prune)
    else:
        opt = build_optimizer("adamw", model, lr=3e-3, weight_decay=1e-4)
    pruner = build_pruner(method, model, opt, **schedule)  # type: ignore[arg-type]
    result = train(model, opt, pruner, data, TrainSettings(epochs=4, batch_size=batch), log=lambda _: None)
    assert abs(result["final_sparsity"] - 0.7) <= 0.005
    assert result["history"][0]["sparsity"] < result["history"][2]["sparsity"]
    assert zero_fraction(prunable_weights(model)) == result["final_sparsity"]
    assert result["final_acc"] > 50.0


def test_a_ramp_shape_and_a_ramp_end_step_override_the_method_and_epoch_defaults() -> None:
    model = _lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    default = _scheduled("magnitude", model, opt, ramp_end_epoch=8, steps_per_epoch=391)
    assert (default.ramp, default.ramp_end_step) == ("cubic", 8 * 391)
    assert _scheduled("movement", model, opt).ramp == "linear"
    # the reference's ResNet-18 magnitude/movement pruners: a linear ramp that ends at step 3000
    pruner = build_pruner(
        "magnitude",
        model,
        opt,
        target_sparsity=0.7,
        warmup=100,
        frequency=100,
        ramp_end_epoch=75,
        steps_per_epoch=391,
        ramp="linear",
        ramp_end_step=3000,
    )
    assert isinstance(pruner, ScheduledPruner)
    assert (pruner.ramp, pruner.ramp_end_step) == ("linear", 3000)
    settings = AdamWPruneSettings(steps_per_epoch=391, ramp_end_epoch=75, ramp_end_at_step=3000)
    assert settings.ramp_end_step == 3000
    assert AdamWPruneSettings(steps_per_epoch=391, ramp_end_epoch=75).ramp_end_step == 75 * 391


def test_the_hooks_and_the_loop_share_one_pruner_and_one_data_bundle() -> None:
    """One definition each (``trainers/contracts.py``): the trainer's hookspecs return them, the
    loop takes them, and every built-in pruner has the contract's methods with its signatures."""
    from pytest_sweep.matrix.trial import Trial
    from pytest_sweep.plugins import trainer_hookspecs
    from pytest_sweep.trainers import batches, contracts, data, loop

    names = {"Trial": Trial, "DataBundle": contracts.DataBundle, "Pruner": contracts.Pruner}
    returned = {
        hook: typing.get_args(typing.get_type_hints(getattr(trainer_hookspecs, hook), localns=names)["return"])
        for hook in ("pytest_sweep_make_dataset", "pytest_sweep_make_pruner")
    }
    assert returned == {
        "pytest_sweep_make_dataset": (contracts.DataBundle, type(None)),
        "pytest_sweep_make_pruner": (contracts.Pruner, type(None)),
    }
    assert vars(loop)["Pruner"] is LoopPruner is contracts.Pruner
    assert vars(loop)["DataBundle"] is vars(batches)["DataBundle"] is data.DataBundle is contracts.DataBundle
    assert type(load_dataset("digits")) is contracts.DataBundle

    def methods(cls: type) -> dict[str, str]:
        return {n: str(inspect.signature(getattr(cls, n))) for n in ("before_step", "after_step", "sparsity")}

    for builtin in (NoPruning, ScheduledPruner, StatePruning):
        assert methods(builtin) == methods(contracts.Pruner), builtin.__name__
