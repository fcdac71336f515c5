"""Every swept symbol reaches the code that uses it (the reference's worst fault: it never did).

One real sweep, in a subprocess: one range config per symbol (a few per family of
``*_SELECT_*`` switches), each sweeping that symbol over two values with everything else
fixed, 1 epoch of LeNet-5 (or a narrow ResNet-18) on the digits data.  A recorder
``conftest.py`` in the run's folder wraps the factory hooks
(``pytest_sweep_make_model`` / ``_make_optimizer`` / ``_make_pruner`` / ``_make_dataset``)
and the epoch / trial hooks, and writes what was really built into one JSON file per
trial: the optimizer's class and param groups (weights vs. biases/norms), AdamWPrune's
``settings`` and the steps at which it recomputed its masks, the pruner, the model,
the optimizer steps taken, the epochs run, the trial seed.  Three points below the hooks
are observed too, because nothing above them sees the value: the ``TrainSettings`` that
``trainers.loop.train`` receives, calls of ``torch.compile`` (stubbed: compiling on a
busy CPU takes minutes) and of ``trainers.loop.dataloader_batches``, and the arguments of
``trainers.data.load_dataset`` (a download is refused there: no network in tests).

Each check asserts that the two trials differ exactly as the swept values say.  The last
test fails when a built-in plugin declares a symbol that is neither swept here nor in
:data:`ALLOWED_UNSWEPT` with a reason.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_sweep.plugins.reference_symbols import reference_symbols

from sweep_helpers import SweepPytester, SweepTools

HAVE_TORCHVISION = importlib.util.find_spec("torchvision") is not None

#: The recorder plugin of the inner run (its ``conftest.py``).
RECORDER = r'''
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

OUT = Path(__file__).parent / "obs"
OBS = {}
CURRENT = {"key": None}
PRUNERS = {}


def _key(trial):
    return f"{Path(str(trial.source)).stem}__{trial.name}"


def _obs(trial):
    return OBS.setdefault(_key(trial), {})


def _current():
    return OBS.setdefault(CURRENT["key"], {}) if CURRENT["key"] else {}


def _patch_once():
    """Observe three consumers that no hook sees (done once, when the first trial starts)."""
    import torch
    import pytest_sweep.trainers.data
    import pytest_sweep.trainers.loop
    from pytest_sweep import trainers
    if getattr(trainers.loop, "_reach_patched", False):
        return
    trainers.loop._reach_patched = True
    real_train = trainers.loop.train
    real_dl = trainers.loop.dataloader_batches
    real_load = trainers.data.load_dataset

    def train(model, optimizer, pruner, data, settings, **kwargs):
        _current()["train"] = dataclasses.asdict(settings)
        return real_train(model, optimizer, pruner, data, settings, **kwargs)

    def dataloader_batches(*args, **kwargs):
        obs = _current()
        obs["dataloader_calls"] = obs.get("dataloader_calls", 0) + 1
        obs["dataloader_workers"] = args[5] if len(args) > 5 else kwargs.get("num_workers", 0)
        return real_dl(*args, **kwargs)

    real_cosine = torch.optim.lr_scheduler.CosineAnnealingLR

    class CosineAnnealingLR(real_cosine):
        def __init__(self, optimizer, T_max, eta_min=0.0, *args, **kwargs):
            _current()["scheduler"] = {"class": "CosineAnnealingLR", "T_max": T_max, "eta_min": eta_min}
            super().__init__(optimizer, T_max, eta_min, *args, **kwargs)

    def compile_stub(model, *args, **kwargs):
        # record the call; compiling for real takes minutes on a busy CPU
        obs = _current()
        obs["compile_calls"] = obs.get("compile_calls", 0) + 1
        return model

    def load_dataset(name, *, data_dir="data", download=False):
        _current()["load_dataset"] = {"name": name, "data_dir": str(data_dir), "download": bool(download)}
        if download and name != "digits":
            raise trainers.data.DataUnavailableError("reach test: download refused (no network in tests)")
        return real_load(name, data_dir=data_dir, download=download)

    trainers.loop.train = train
    trainers.loop.dataloader_batches = dataloader_batches
    trainers.data.load_dataset = load_dataset
    torch.compile = compile_stub
    torch.optim.lr_scheduler.CosineAnnealingLR = CosineAnnealingLR


@pytest.hookimpl
def pytest_sweep_trial_started(trial):
    CURRENT["key"] = _key(trial)
    obs = _obs(trial)
    obs.update(seed=trial.seed, compile_calls=0, dataloader_calls=0, epochs=[], mask_updates=[], scheduler=None)
    _patch_once()


def _digest(tensors):
    digest = hashlib.sha1()
    for t in tensors:
        digest.update(t.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _prunable(model):
    import torch

    return [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


@pytest.hookimpl(wrapper=True)
def pytest_sweep_make_dataset(trial):
    try:
        data = yield
    except BaseException as exc:
        _obs(trial)["data"] = {"error": str(exc)}
        raise
    _obs(trial)["data"] = {"name": data.name, "train": len(data.train_y)}
    return data


@pytest.hookimpl(wrapper=True)
def pytest_sweep_make_model(trial, data):
    model = yield
    import torch

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    digest = hashlib.sha1()
    for p in model.parameters():
        digest.update(p.detach().cpu().numpy().tobytes())
    _obs(trial)["model"] = {
        "class": type(model).__name__,
        "params": sum(p.numel() for p in model.parameters()),
        "first_conv_out": convs[0].out_channels if convs else None,
        "digest": digest.hexdigest(),
        "prunable_digest": _digest(_prunable(model)),
    }
    return model


def _mask_recorder(obj, obs, get_step):
    real = obj.update_masks

    def update_masks(*args, **kwargs):
        out = real(*args, **kwargs)
        obs["mask_updates"].append([get_step(args), float(obj.current_sparsity)])
        return out

    obj.update_masks = update_masks


@pytest.hookimpl(wrapper=True)
def pytest_sweep_make_optimizer(trial, model, steps_per_epoch):
    opt = yield
    import torch

    obs = _obs(trial)
    weights = {id(m.weight) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    groups = []
    for g in opt.param_groups:
        ids = {id(p) for p in g["params"]}
        kind = "weights" if ids <= weights else ("other" if not ids & weights else "mixed")
        groups.append({
            "kind": kind,
            "lr": g.get("lr"),
            "betas": list(g["betas"]) if "betas" in g else None,
            "weight_decay": g.get("weight_decay"),
            "amsgrad": g.get("amsgrad"),
            "momentum": g.get("momentum"),
            "decoupled_weight_decay": g.get("decoupled_weight_decay"),
        })
    settings = getattr(opt, "settings", None)
    guard = getattr(opt, "guard", None) or getattr(opt, "spam", None)
    obs["optimizer"] = {
        "class": type(opt).__name__,
        "steps_per_epoch_arg": steps_per_epoch,
        "groups": groups,
        "settings": dataclasses.asdict(settings) if settings is not None else None,
        "ramp_end_step": getattr(settings, "ramp_end_step", None),
        "spam": None if guard is None else {"theta": guard.theta, "interval": guard.interval, "clip": guard.clip},
    }
    obs["optimizer_steps"] = 0

    def count(*_):
        obs["optimizer_steps"] += 1

    opt.register_step_post_hook(count)
    if hasattr(opt, "update_masks"):
        _mask_recorder(opt, obs, lambda args: opt.prune_step)
    return opt


@pytest.hookimpl(wrapper=True)
def pytest_sweep_make_pruner(trial, model, optimizer, steps_per_epoch):
    pruner = yield
    obs = _obs(trial)
    obs["pruner"] = {
        "class": type(pruner).__name__,
        **{k: getattr(pruner, k, None) for k in ("method", "target", "warmup", "frequency", "ramp_end_step", "ramp")},
    }
    if type(pruner).__name__ == "ScheduledPruner":
        _mask_recorder(pruner, obs, lambda args: args[0])
    if getattr(pruner, "w0", None) is not None:
        obs["pruner"]["w0_digest"] = _digest(pruner.w0)
        PRUNERS[_key(trial)] = pruner
    return pruner


@pytest.hookimpl
def pytest_sweep_epoch_ended(trial, metrics):
    _obs(trial)["epochs"].append({k: metrics[k] for k in ("epoch", "lr", "sparsity")})


@pytest.hookimpl
def pytest_sweep_trial_finished(trial, record):
    obs = _obs(trial)
    obs.update(status=record["status"], error=record.get("error"), final_sparsity=record.get("final_sparsity"),
               epochs_run=record.get("epochs_run"), record_seed=record.get("seed"))
    pruner = PRUNERS.pop(_key(trial), None)
    if pruner is not None:
        obs["pruner"]["w0_digest_at_end"] = _digest(pruner.w0)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{_key(trial)}.json").write_text(json.dumps(obs, indent=1, default=str), encoding="utf-8")
    CURRENT["key"] = None
'''

#: Every trial: LeNet-5 on the digits data, CPU, 1 epoch of 12 steps (1437 images / 128).
BASE = {
    "CONFIG_MODEL": '"lenet5"',
    "CONFIG_DATASET": '"digits"',
    "CONFIG_DEVICE": '"cpu"',
    "CONFIG_OPTIMIZER": '"adamw"',
    "CONFIG_NUM_EPOCHS": "1",
    "CONFIG_BATCH_SIZE": "128",
}
STEPS = 12
#: AdamWPrune state pruning that reaches its target within the one epoch.
STATE = {
    **BASE,
    "CONFIG_OPTIMIZER": '"adamwprune"',
    "CONFIG_PRUNING_METHOD": '"state"',
    "CONFIG_PRUNING_WARMUP": "2",
    "CONFIG_PRUNING_FREQUENCY": "2",
    "CONFIG_PRUNING_RAMP_END_EPOCH": "1",
    "CONFIG_TARGET_SPARSITY": "0.5",
}
SPAM = {**BASE, "CONFIG_OPTIMIZER": '"adamwspam"', "CONFIG_SPAM_ENABLE_CLIP": "y"}
NO_DATA = "nodata"  # a folder that does not exist in the run's directory

#: Symbols declared by the built-in plugins that no case sweeps, and why.
ALLOWED_UNSWEPT = {
    # CUDA only: the trainer forces both off on the CPU (``cuda and CONFIG_AMP``), so a CPU run
    # cannot observe them; they need a GPU check (this machine has none).
    "CONFIG_AMP": "CUDA-only (bf16 autocast); forced off on the CPU",
    "CONFIG_CHANNELS_LAST": "CUDA-only (memory format); forced off on the CPU",
}


@dataclass(frozen=True)
class Obs:
    """One trial: the recorder's JSON (empty for a skipped trial) plus its summary record."""

    record: dict[str, Any]
    seen: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.seen[key]

    @property
    def name(self) -> str:
        return str(self.record["config_file"])

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def error(self) -> str:
        return str(self.record.get("error") or "")

    @property
    def opt(self) -> dict[str, Any]:
        opt: dict[str, Any] = self.seen["optimizer"]
        return opt

    def group(self, kind: str) -> dict[str, Any]:
        found = [g for g in self.opt["groups"] if g["kind"] == kind]
        assert len(found) == 1, f"{self.name}: expected one '{kind}' param group, got {self.opt['groups']}"
        group: dict[str, Any] = found[0]
        return group

    @property
    def weights(self) -> dict[str, Any]:
        return self.group("weights")

    @property
    def others(self) -> dict[str, Any]:
        """Biases and norm parameters."""
        return self.group("other")

    @property
    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] | None = self.opt["settings"]
        assert settings is not None, f"{self.name}: not AdamWPrune ({self.opt['class']})"
        return settings

    @property
    def updates(self) -> list[int]:
        """Optimizer steps after which the pruning masks were recomputed."""
        return [step for step, _ in self.seen["mask_updates"]]

    def groups(self, key: str) -> set[Any]:
        return {json.dumps(g[key]) for g in self.opt["groups"]}


Check = Callable[[dict[str, Obs]], None]


@dataclass(frozen=True)
class Case:
    name: str
    config: dict[str, str]
    check: Check
    vision: bool = False  # a trial loads MNIST or takes the dataloader path: torchvision (the vision extra)

    @property
    def swept(self) -> set[str]:
        return {k for k, v in self.config.items() if "|" in v}

    @property
    def text(self) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.config.items() if v is not None)


CASES: dict[str, Case] = {}


def case(
    name: str,
    base: dict[str, str],
    *,
    vision: bool = False,
    keys: dict[str, str | None] | None = None,
    **swept: str | None,
) -> Callable[[Check], Check]:
    """Register a check; ``swept`` (then ``keys``, for names built in code) overrides ``base`` (``None`` removes a key)."""

    def register(check: Check) -> Check:
        config = dict(base)
        for key, value in {**swept, **(keys or {})}.items():
            config.pop(key, None)
            if value is not None:
                config[key] = value
        CASES[name] = Case(name, config, check, vision)
        return check

    return register


def one_swept(trials: dict[str, Obs], key: str, count: int = 2) -> dict[str, Obs]:
    """The trials of a one-key case by the swept value (``count`` of them), all passed."""
    by_value: dict[str, Obs] = {}
    for obs in trials.values():
        assert obs.status == "passed", f"{obs.name} {obs.status}: {obs.error}"
        by_value[str(obs.record["config"][key])] = obs
    assert len(by_value) == count, by_value.keys()
    return by_value


def close(a: float, b: float, tol: float = 1e-12) -> bool:
    return abs(float(a) - float(b)) <= tol


def near_target(obs: Obs, target: float) -> None:
    """Final sparsity within 0.5 percentage points of ``target``."""
    assert abs(obs.record["final_sparsity"] - target) <= 0.005, (obs.name, obs.record["final_sparsity"], target)


def swept_float(key: str, a: str, b: str, get: Callable[[Obs], Any]) -> Check:
    """A check: ``get(trial)`` equals the swept float value in both trials (and they differ)."""

    def check(trials: dict[str, Obs]) -> None:
        got = {v: get(o) for v, o in one_swept(trials, key).items()}
        assert set(got) == {a, b}
        for value, seen in got.items():
            assert close(seen, float(value)), f"{key}={value} but the optimizer got {seen}"
        assert not close(got[a], got[b])

    return check


# -- AdamWPrune -------------------------------------------------------------------------


@case("adamwprune_beta1", STATE, CONFIG_ADAMWPRUNE_BETA1="0.8|0.95")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAMWPRUNE_BETA1").items():
        assert o.opt["class"] == "AdamWPrune"
        assert o.groups("betas") == {json.dumps([float(value), 0.999])}, (value, o.opt["groups"])


@case("adamwprune_beta2", STATE, CONFIG_ADAMWPRUNE_BETA2="0.99|0.9999")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAMWPRUNE_BETA2").items():
        assert o.groups("betas") == {json.dumps([0.9, float(value)])}, (value, o.opt["groups"])


@case("adamwprune_weight_decay", STATE, CONFIG_ADAMWPRUNE_WEIGHT_DECAY="0.0|0.05")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAMWPRUNE_WEIGHT_DECAY").items():
        assert o.weights["weight_decay"] == float(value)
        assert o.others["weight_decay"] == 0.0  # biases and batch norm never decay
        assert o.weights["decoupled_weight_decay"] is True  # base adamw: decoupled


@case("adamwprune_amsgrad", STATE, CONFIG_ADAMWPRUNE_AMSGRAD="n|y")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAMWPRUNE_AMSGRAD").items():
        assert o.groups("amsgrad") == {json.dumps(value == "y")}, (value, o.opt["groups"])


@case("adamwprune_base", STATE, CONFIG_ADAMWPRUNE_BASE_OPTIMIZER='"adam"|"adamwspam"')
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_ADAMWPRUNE_BASE_OPTIMIZER")
    adam, spam = t["adam"], t["adamwspam"]
    assert adam.settings["base"] == "adam" and spam.settings["base"] == "adamwspam"
    # adam couples the decay into the gradient; the AdamW family decouples it
    assert adam.groups("decoupled_weight_decay") == {"false"}
    assert spam.groups("decoupled_weight_decay") == {"true"}
    # adamwspam implies AMSGrad, the spike guard, gradient clipping and the cosine floor
    assert adam.groups("amsgrad") == {"false"} and spam.groups("amsgrad") == {"true"}
    assert adam.opt["spam"] is None
    assert spam.opt["spam"] == {"theta": 50.0, "interval": 0, "clip": False}
    assert (adam["train"]["grad_clip"], spam["train"]["grad_clip"]) == (None, 1.0)
    assert (adam["train"]["eta_min"], spam["train"]["eta_min"]) == (0.0, 1e-6)


@case("adamwprune_variant", STATE, CONFIG_ADAMWPRUNE_VARIANT='"bitter0"|"bitter7"')
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAMWPRUNE_VARIANT").items():
        assert o.settings["variant"] == value
        assert o.updates, f"{value}: the masks were never recomputed"
        near_target(o, 0.5)


# -- the pruning schedule (AdamWPrune's settings and its real mask updates) ---------------


def expected_updates(warmup: int, frequency: int, ramp_end_step: int, steps: int = STEPS) -> list[int]:
    return [s for s in range(1, steps + 1) if s > warmup and (s % frequency == 0 or s == ramp_end_step)]


@case("pruning_warmup", STATE, CONFIG_PRUNING_WARMUP="2|5")
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_PRUNING_WARMUP")
    for value, o in t.items():
        assert o.settings["warmup"] == int(value)
        assert o.updates == expected_updates(int(value), 2, STEPS), (value, o.updates)
    assert t["2"].updates[0] == 4 and t["5"].updates[0] == 6


@case("pruning_ramp_end_epoch", STATE, CONFIG_PRUNING_RAMP_END_EPOCH="1|2")
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_PRUNING_RAMP_END_EPOCH")
    assert t["1"].settings["ramp_end_epoch"] == 1 and t["2"].settings["ramp_end_epoch"] == 2
    assert t["1"].opt["ramp_end_step"] == STEPS and t["2"].opt["ramp_end_step"] == 2 * STEPS
    near_target(t["1"], 0.5)  # the ramp ended within the run
    # cubic ramp halfway: (10/22)**3 of the target after the run's last step
    ramp2 = 0.5 * ((STEPS - 2) / (2 * STEPS - 2)) ** 3
    assert abs(t["2"].record["final_sparsity"] - ramp2) <= 0.005, t["2"].record["final_sparsity"]


@case("pruning_frequency", STATE, CONFIG_PRUNING_FREQUENCY="3|5")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_PRUNING_FREQUENCY").items():
        assert o.settings["frequency"] == int(value)
        assert o.updates == expected_updates(2, int(value), STEPS), (value, o.updates)


@case("target_sparsity", STATE, CONFIG_TARGET_SPARSITY="0.3|0.6")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_TARGET_SPARSITY").items():
        assert o.settings["target_sparsity"] == float(value)
        near_target(o, float(value))
        assert close(o["mask_updates"][-1][1], float(value))


@case(
    "pruning_method",
    BASE,
    CONFIG_PRUNING_METHOD='"magnitude"|"movement"',
    CONFIG_PRUNING_WARMUP="2",
    CONFIG_PRUNING_FREQUENCY="2",
    CONFIG_PRUNING_RAMP_END_EPOCH="1",
    CONFIG_TARGET_SPARSITY="0.6",
)
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_PRUNING_METHOD").items():
        assert o.opt["class"] == "AdamW" and o.opt["settings"] is None
        p = o["pruner"]
        assert (p["class"], p["method"]) == ("ScheduledPruner", value)
        assert p["ramp"] == {"magnitude": "cubic", "movement": "linear"}[value]
        assert (p["target"], p["warmup"], p["frequency"], p["ramp_end_step"]) == (0.6, 2, 2, STEPS)
        assert o.updates == expected_updates(2, 2, STEPS)
        near_target(o, 0.6)


@case(
    "pruning_ramp",
    BASE,
    CONFIG_PRUNING_METHOD='"movement"',
    CONFIG_PRUNING_RAMP='"cubic"|"linear"',
    CONFIG_PRUNING_WARMUP="2",
    CONFIG_PRUNING_FREQUENCY="2",
    CONFIG_PRUNING_RAMP_END_EPOCH="2",
    CONFIG_TARGET_SPARSITY="0.6",
)
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_PRUNING_RAMP")
    for value, o in t.items():
        assert o["pruner"]["ramp"] == value  # movement's own shape is linear; the symbol overrides it
        assert o.updates == expected_updates(2, 2, 2 * STEPS)
    # after the last step (12 of a ramp from 2 to 24): progress 10/22, cubed or not
    progress = (STEPS - 2) / (2 * STEPS - 2)
    assert close(t["cubic"]["mask_updates"][-1][1], 0.6 * progress**3)
    assert close(t["linear"]["mask_updates"][-1][1], 0.6 * progress)


@case("pruning_ramp_state", STATE, CONFIG_PRUNING_RAMP='"cubic"|"linear"', CONFIG_PRUNING_RAMP_END_EPOCH="2")
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_PRUNING_RAMP")
    progress = (STEPS - 2) / (2 * STEPS - 2)
    for value, o in t.items():
        assert o.settings["ramp"] == value
        assert close(o["mask_updates"][-1][1], 0.5 * (progress**3 if value == "cubic" else progress))


@case("pruning_ramp_end_step", STATE, CONFIG_PRUNING_RAMP_END_EPOCH="2", CONFIG_PRUNING_RAMP_END_STEP="7|12")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_PRUNING_RAMP_END_STEP").items():
        step = int(value)
        assert o.settings["ramp_end_at_step"] == step and o.opt["ramp_end_step"] == step  # not epoch 2 (24)
        assert o.updates == expected_updates(2, 2, step), (value, o.updates)
        near_target(o, 0.5)  # the ramp ended within the run


@case(
    "pruning_ramp_end_step_scheduled",
    BASE,
    CONFIG_PRUNING_METHOD='"magnitude"',
    CONFIG_PRUNING_WARMUP="2",
    CONFIG_PRUNING_FREQUENCY="4",
    CONFIG_TARGET_SPARSITY="0.6",
    CONFIG_PRUNING_RAMP_END_STEP="6|11",
)
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_PRUNING_RAMP_END_STEP").items():
        assert o["pruner"]["ramp_end_step"] == int(value)
        assert o.updates == expected_updates(2, 4, int(value)), (value, o.updates)
        near_target(o, 0.6)


# -- the training loop and the optimizer's common settings --------------------------------


@case("learning_rate", BASE, CONFIG_LEARNING_RATE="0.001|0.004")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_LEARNING_RATE").items():
        assert o.groups("lr") == {json.dumps(float(value))}
        assert o["train"]["lr"] == float(value)
        assert o["epochs"][0]["lr"] == float(value)  # what epoch 1 trained with
    # one seed for every trial (CONFIG_SEED): the two start from the same weights
    first, second = trials.values()
    assert first["seed"] == second["seed"] == 42
    assert first["model"]["digest"] == second["model"]["digest"]


@case(
    "lr_schedule", BASE, CONFIG_NUM_EPOCHS="2", CONFIG_LEARNING_RATE="0.002", CONFIG_LR_SCHEDULE='"cosine"|"constant"'
)
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_LR_SCHEDULE")
    assert t["cosine"]["scheduler"] == {"class": "CosineAnnealingLR", "T_max": 2, "eta_min": 0.0}
    assert t["constant"]["scheduler"] is None
    assert [e["lr"] for e in t["cosine"]["epochs"]] == [0.002, 0.001]  # halfway down the cosine
    assert [e["lr"] for e in t["constant"]["epochs"]] == [0.002, 0.002]


@case(
    "lr_eta_min",
    BASE,
    CONFIG_NUM_EPOCHS="2",
    CONFIG_LEARNING_RATE="0.002",
    CONFIG_LR_SCHEDULE='"cosine"',
    CONFIG_LR_ETA_MIN="0.0|0.0006",
)
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_LR_ETA_MIN").items():
        eta = float(value)
        assert o["train"]["eta_min"] == eta and o["scheduler"]["eta_min"] == eta
        assert close(o["epochs"][1]["lr"], (0.002 + eta) / 2)


@case(
    "reference_lr",
    BASE,
    CONFIG_MODEL='"resnet18"',
    CONFIG_MODEL_WIDTH="4",
    CONFIG_LEARNING_RATE="0.1",
    CONFIG_REFERENCE_LR="n|y",
)
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_REFERENCE_LR")
    assert t["n"].groups("lr") == {json.dumps(0.1)}
    assert t["y"].groups("lr") == {json.dumps(0.1 * 0.001)}  # the reference's ResNet-18 script: lr x 0.001
    assert t["y"]["epochs"][0]["lr"] == 0.1 * 0.001


@case("batch_size", BASE, CONFIG_BATCH_SIZE="64|128")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_BATCH_SIZE").items():
        steps = -(-1437 // int(value))  # 23 | 12
        assert o["train"]["batch_size"] == int(value)
        assert o.opt["steps_per_epoch_arg"] == steps
        assert o["optimizer_steps"] == steps  # counted on the optimizer itself


@case("num_epochs", BASE, CONFIG_NUM_EPOCHS="1|2")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_NUM_EPOCHS").items():
        n = int(value)
        assert [e["epoch"] for e in o["epochs"]] == list(range(1, n + 1))
        assert o.record["epochs_run"] == n
        assert o["optimizer_steps"] == n * STEPS


@case("weight_decay", BASE, CONFIG_WEIGHT_DECAY="0.0|0.05")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_WEIGHT_DECAY").items():
        assert o.opt["class"] == "AdamW"
        assert o.weights["weight_decay"] == float(value)
        assert o.others["weight_decay"] == 0.0


@case("adam_beta1", BASE, CONFIG_ADAM_BETA1="0.8|0.95")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAM_BETA1").items():
        assert o.opt["class"] == "AdamW"
        assert o.groups("betas") == {json.dumps([float(value), 0.999])}


@case("adam_beta2", BASE, CONFIG_ADAM_BETA2="0.99|0.9999")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_ADAM_BETA2").items():
        assert o.groups("betas") == {json.dumps([0.9, float(value)])}


@case("sgd_momentum", BASE, CONFIG_OPTIMIZER='"sgd"', CONFIG_SGD_MOMENTUM="0.5|0.9")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_SGD_MOMENTUM").items():
        assert o.opt["class"] == "SGD"
        assert o.groups("momentum") == {json.dumps(float(value))}
        assert o["epochs"][0]["lr"] == 1e-3  # SGD's default learning rate on LeNet-5 (the reference's)
        assert o.weights["weight_decay"] == 1e-4 and o.others["weight_decay"] == 0.0


@case("optimizer", BASE, CONFIG_OPTIMIZER='"adam"|"adamw"')
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_OPTIMIZER")
    assert t["adam"].opt["class"] == "Adam" and t["adamw"].opt["class"] == "AdamW"
    # default decay on LeNet-5: none for Adam, 1e-4 on the weights for AdamW (the reference's)
    assert t["adam"].weights["weight_decay"] == 0.0 and t["adamw"].weights["weight_decay"] == 1e-4


@case("spam_theta", SPAM, CONFIG_SPAM_THETA="10.0|50.0")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_SPAM_THETA").items():
        assert o.opt["class"] == "AdamWSpam"
        assert o.opt["spam"] == {"theta": float(value), "interval": 0, "clip": True}


@case("spam_interval", SPAM, CONFIG_SPAM_INTERVAL="0|5")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_SPAM_INTERVAL").items():
        assert o.opt["spam"] == {"theta": 50.0, "interval": int(value), "clip": True}


@case("spam_enable_clip", SPAM, CONFIG_SPAM_ENABLE_CLIP="n|y")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_SPAM_ENABLE_CLIP").items():
        assert o.opt["spam"] == {"theta": 50.0, "interval": 0, "clip": value == "y"}


@case("seed", BASE, CONFIG_SEED="1|2")
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_SEED")
    for value, o in t.items():
        # every trial trains with CONFIG_SEED itself (not the default 42, not a seed derived from its name)
        assert o["seed"] == int(value) != 42
        assert o["train"]["seed"] == o["seed"] == o.record["seed"]
    assert t["1"]["model"]["digest"] != t["2"]["model"]["digest"]  # other initial weights


@case("device", BASE, CONFIG_DEVICE='"cpu"|"cuda"')
def _(trials: dict[str, Obs]) -> None:
    by = {o.record["config"]["CONFIG_DEVICE"]: o for o in trials.values()}
    assert by["cpu"].status == "passed" and by["cpu"]["train"]["device"] == "cpu"
    cuda = by["cuda"]
    if cuda.status == "passed":  # a machine with a GPU
        assert cuda["train"]["device"] == "cuda"
    else:
        assert "CONFIG_DEVICE=cuda but CUDA is not available" in cuda.error, cuda.error


@case("compile", BASE, CONFIG_COMPILE="n|y")
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_COMPILE").items():
        assert o["train"]["compile"] is (value == "y")
        assert o["compile_calls"] == (1 if value == "y" else 0)


@case("data_loader", BASE, vision=True, CONFIG_DATA_LOADER='"tensor"|"dataloader"')
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_DATA_LOADER").items():
        assert o["train"]["loader"] == value
        assert o["dataloader_calls"] == (2 if value == "dataloader" else 0)  # train and test splits


@case("num_workers", BASE, vision=True, CONFIG_DATA_LOADER='"tensor"|"dataloader"', CONFIG_NUM_WORKERS="0|1")
def _(trials: dict[str, Obs]) -> None:
    by = {
        (o.record["config"]["CONFIG_DATA_LOADER"], o.record["config"]["CONFIG_NUM_WORKERS"]): o for o in trials.values()
    }
    for workers in ("0", "1"):
        o = by["dataloader", workers]
        assert o.status == "passed", o.error
        assert o["train"]["num_workers"] == int(workers) == o["dataloader_workers"]
    assert by["tensor", "0"].status == "passed" and by["tensor", "0"]["train"]["num_workers"] == 0
    # the tensor path has no workers: asking for some is a mistake, not a silent no-op
    assert by["tensor", "1"].status == "skipped"
    assert "CONFIG_NUM_WORKERS=1 needs CONFIG_DATA_LOADER=dataloader" in by["tensor", "1"].error


@case("model_mode_single", BASE, CONFIG_MODEL_MODE_SINGLE="y|n")
def _(trials: dict[str, Obs]) -> None:
    by = {o.record["config"]["CONFIG_MODEL_MODE_SINGLE"]: o for o in trials.values()}
    assert by["y"].status == "passed" and by["y"]["model"]["class"] == "LeNet5"
    assert by["n"].status == "skipped"
    assert "CONFIG_MODEL_MODE_SINGLE=n (several models per trial) is not supported" in by["n"].error


# -- model and data -----------------------------------------------------------------------


@case("model_width", BASE, CONFIG_MODEL='"resnet18"', CONFIG_MODEL_WIDTH="4|8")
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_MODEL_WIDTH")
    for value, o in t.items():
        assert o["model"]["class"] == "ResNet18" and o["model"]["first_conv_out"] == int(value)
    # almost all parameters are conv weights, which grow with the square of the width
    assert 3.5 < t["8"]["model"]["params"] / t["4"]["model"]["params"] < 4.1


@case("model", BASE, CONFIG_MODEL='"lenet5"|"resnet18"', CONFIG_MODEL_WIDTH="4")
def _(trials: dict[str, Obs]) -> None:
    t = one_swept(trials, "CONFIG_MODEL")
    assert t["lenet5"]["model"]["class"] == "LeNet5" and t["resnet18"]["model"]["class"] == "ResNet18"


@case(
    "model_select",
    BASE,
    CONFIG_MODEL=None,
    CONFIG_MODEL_WIDTH="4",
    CONFIG_MODEL_SELECT_LENET5="y|n",
    CONFIG_MODEL_SELECT_RESNET18="y|n",
)
def _(trials: dict[str, Obs]) -> None:
    by = {
        (o.record["config"]["CONFIG_MODEL_SELECT_LENET5"], o.record["config"]["CONFIG_MODEL_SELECT_RESNET18"]): o
        for o in trials.values()
    }
    assert by["y", "n"]["model"]["class"] == "LeNet5"
    assert by["n", "y"]["model"]["class"] == "ResNet18"
    assert by["n", "n"]["model"]["class"] == "ResNet18"  # the default
    # RESNET18 selects the default model, so it shows where it contradicts LENET5
    assert by["y", "y"].status == "skipped"
    error = by["y", "y"].error
    assert "are both y" in error and "CONFIG_MODEL_SELECT_LENET5" in error and "CONFIG_MODEL_SELECT_RESNET18" in error


OPTIMIZER_SELECTS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamwadv": "AdamW",
    "adamwspam": "AdamWSpam",
    "adamwprune": "AdamWPrune",
}


@case(
    "optimizer_select",
    STATE,
    CONFIG_OPTIMIZER=None,
    CONFIG_PRUNING_METHOD=None,  # default: state with AdamWPrune, none otherwise
    keys={f"CONFIG_OPTIMIZER_SELECT_{n.upper()}": "y|n" for n in OPTIMIZER_SELECTS},
)
def _(trials: dict[str, Obs]) -> None:
    keys = [f"CONFIG_OPTIMIZER_SELECT_{n.upper()}" for n in OPTIMIZER_SELECTS]
    assert len(trials) == 2 ** len(keys)
    ran = 0
    for o in trials.values():
        chosen = [n for n, k in zip(OPTIMIZER_SELECTS, keys, strict=False) if o.record["config"][k] == "y"]
        if len(chosen) > 1:  # a contradiction is skipped, naming every selection
            assert o.status == "skipped", (o.name, chosen)
            assert all(f"CONFIG_OPTIMIZER_SELECT_{n.upper()}" in o.error for n in chosen), o.error
            continue
        ran += 1
        assert o.status == "passed", (o.name, o.error)
        name = chosen[0] if chosen else "adamwprune"
        assert o.opt["class"] == OPTIMIZER_SELECTS[name], (chosen, o.opt["class"])
        if name == "sgd":
            assert o.groups("momentum") == {"0.9"}
        else:
            assert o.groups("amsgrad") == {json.dumps(name in ("adamwadv", "adamwspam"))}
        assert o["pruner"]["class"] == ("StatePruning" if name == "adamwprune" else "NoPruning")
    assert ran == len(keys) + 1


@case("dataset", BASE, vision=True, CONFIG_DATASET='"digits"|"mnist"', CONFIG_DATA_DIR=f'"{NO_DATA}"')
def _(trials: dict[str, Obs]) -> None:
    by = {o.record["config"]["CONFIG_DATASET"]: o for o in trials.values()}
    assert by["digits"].status == "passed" and by["digits"]["data"]["name"] == "digits"
    assert by["mnist"]["load_dataset"]["name"] == "mnist"
    assert by["mnist"].status == "failed" and "MNIST not found under" in by["mnist"].error


@case(
    "dataset_select",
    BASE,
    vision=True,
    CONFIG_DATASET=None,
    CONFIG_DATA_DIR=f'"{NO_DATA}"',
    CONFIG_DATASET_SELECT_DIGITS="y|n",
    CONFIG_DATASET_SELECT_MNIST="y|n",
    CONFIG_DATASET_SELECT_CIFAR10="y|n",
)
def _(trials: dict[str, Obs]) -> None:
    names = ("digits", "mnist", "cifar10")
    labels = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
    assert len(trials) == 8
    for o in trials.values():
        chosen = [n for n in names if o.record["config"][f"CONFIG_DATASET_SELECT_{n.upper()}"] == "y"]
        if len(chosen) > 1:
            assert o.status == "skipped" and "are both y" in o.error, (o.name, o.error)
            continue
        name = chosen[0] if chosen else "mnist"  # LeNet-5's default dataset
        assert o["load_dataset"]["name"] == name, (chosen, o["load_dataset"])
        if name == "digits":
            assert o.status == "passed" and o["data"]["name"] == "digits"
        else:
            assert o.status == "failed" and f"{labels[name]} not found under" in o.error, o.error


@case("data_dir", BASE, vision=True, CONFIG_DATASET='"mnist"', CONFIG_DATA_DIR='"nodata_a"|"nodata_b"')
def _(trials: dict[str, Obs]) -> None:
    by = {o.record["config"]["CONFIG_DATA_DIR"]: o for o in trials.values()}
    assert set(by) == {"nodata_a", "nodata_b"}
    for value, o in by.items():
        assert o["load_dataset"]["data_dir"] == value
        assert o.status == "failed"
        assert re.search(rf"MNIST not found under \S*/{value};", o.error), o.error


@case(
    "data_download",
    BASE,
    vision=True,
    CONFIG_DATASET='"mnist"',
    CONFIG_DATA_DIR=f'"{NO_DATA}"',
    CONFIG_DATA_DOWNLOAD="n|y",
)
def _(trials: dict[str, Obs]) -> None:
    by = {o.record["config"]["CONFIG_DATA_DOWNLOAD"]: o for o in trials.values()}
    assert by["n"]["load_dataset"]["download"] is False and by["y"]["load_dataset"]["download"] is True
    assert "MNIST not found under" in by["n"].error
    assert "download refused" in by["y"].error  # the recorder refuses it: no network in tests


# -- the defaults: what the reference's code trains, on the objects built ------------------

ALL_OPTIMIZERS = '"sgd"|"adam"|"adamw"|"adamwadv"|"adamwspam"|"adamwprune"'
#: optimizer -> (lr, weight decay on weights, schedule T_max/eta_min or None, gradient clip), per model
DEFAULTS: dict[str, dict[str, tuple[float, float, float | None, float | None]]] = {
    "lenet5": {
        "sgd": (1e-3, 1e-4, None, None),
        "adam": (1e-3, 0.0, None, None),
        "adamw": (1e-3, 1e-4, None, None),
        "adamwadv": (1e-3, 1e-4, 1e-6, 1.0),
        "adamwspam": (1e-3, 1e-4, 1e-6, 1.0),
        "adamwprune": (1e-3, 0.01, None, None),
    },
    "resnet18": {
        "sgd": (0.1, 5e-4, 0.0, None),
        "adam": (1e-4, 0.0, 0.0, None),
        "adamw": (1e-4, 5e-4, 0.0, None),
        "adamwadv": (1e-4, 5e-4, 0.0, 1.0),
        "adamwspam": (1e-4, 5e-4, 0.0, 1.0),
        "adamwprune": (1e-4, 0.01, 0.0, None),
    },
}


def check_defaults(model: str) -> Check:
    def check(trials: dict[str, Obs]) -> None:
        for name, o in one_swept(trials, "CONFIG_OPTIMIZER", count=6).items():
            lr, wd, eta_min, clip = DEFAULTS[model][name]
            assert o.groups("lr") == {json.dumps(lr)}, (model, name, o.opt["groups"])
            assert o.weights["weight_decay"] == wd and o.others["weight_decay"] == 0.0, (model, name)
            expected = None if eta_min is None else {"class": "CosineAnnealingLR", "T_max": 1, "eta_min": eta_min}
            assert o["scheduler"] == expected, (model, name, o["scheduler"])
            assert o["train"]["schedule"] == ("constant" if eta_min is None else "cosine")
            assert o["train"]["grad_clip"] == clip, (model, name)

    return check


case("defaults_lenet5", BASE, CONFIG_OPTIMIZER=ALL_OPTIMIZERS, CONFIG_PRUNING_METHOD='"none"')(check_defaults("lenet5"))
case(
    "defaults_resnet18",
    BASE,
    CONFIG_MODEL='"resnet18"',
    CONFIG_MODEL_WIDTH="4",
    CONFIG_OPTIMIZER=ALL_OPTIMIZERS,
    CONFIG_PRUNING_METHOD='"none"',
)(check_defaults("resnet18"))


@case(
    "defaults_pruning_lenet5",
    BASE,
    CONFIG_NUM_EPOCHS=None,
    CONFIG_PRUNING_METHOD='"magnitude"|"movement"',
    CONFIG_PRUNING_WARMUP="2",
    CONFIG_TARGET_SPARSITY="0.6",
)
def _(trials: dict[str, Obs]) -> None:
    for value, o in one_swept(trials, "CONFIG_PRUNING_METHOD").items():
        assert o.record["epochs_run"] == 10 and o["train"]["epochs"] == 10  # LeNet-5 trains 10 epochs
        p = o["pruner"]
        # the frequency stays 50; the ramp ends at epoch 8 on LeNet-5 (12 steps an epoch here)
        assert (p["frequency"], p["ramp_end_step"], p["ramp"]) == (
            50,
            8 * STEPS,
            {"magnitude": "cubic", "movement": "linear"}[value],
        )
        assert o.updates == expected_updates(2, 50, 8 * STEPS, steps=10 * STEPS)
        near_target(o, 0.6)
        if value == "movement":
            # w0 is the weights at initialisation (the reference's), never re-taken
            assert p["w0_digest"] == o["model"]["prunable_digest"] == p["w0_digest_at_end"]


# -- the run --------------------------------------------------------------------------------


@dataclass
class Reach:
    result: pytest.RunResult
    trials: dict[str, dict[str, Obs]]  # case -> trial node id -> observation


def _runs(c: Case) -> bool:
    """Whether the case runs here: the vision cases need torchvision (``tox -e minimums`` has none)."""
    return not c.vision or HAVE_TORCHVISION


@pytest.fixture(scope="module")
def reach(tmp_path_factory: pytest.TempPathFactory, sweep_tools: SweepTools) -> Reach:
    """The one real run: every case's range config on one command line."""
    cwd = tmp_path_factory.mktemp("reach")
    (cwd / "conftest.py").write_text(RECORDER, encoding="utf-8")
    args = []
    for c in filter(_runs, CASES.values()):
        (cwd / f"{c.name}.rc").write_text(c.text, encoding="utf-8")
        args.append(f"--range-config={c.name}.rc")
    result = sweep_tools.run_process(cwd, *args, "--sweep-output=out", "--sweep-progress=none", "-q")
    out = cwd / "out"
    assert sweep_tools.sweep_dirs(out), "\n".join(result.outlines[-40:] + result.errlines[-40:])
    trials: dict[str, dict[str, Obs]] = {c.name: {} for c in filter(_runs, CASES.values())}
    for rec in sweep_tools.summary(sweep_tools.only_sweep_dir(out)):
        source = rec["nodeid"].split("::")[0].removesuffix(".rc")
        path = cwd / "obs" / f"{source}__{rec['config_file']}.json"
        seen = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        trials[source][rec["nodeid"]] = Obs(rec, seen)
    return Reach(result, trials)


def test_every_case_ran_and_only_the_expected_trials_failed(reach: Reach) -> None:
    failed = {(c, o.name) for c, ts in reach.trials.items() for o in ts.values() if o.status == "failed"}
    expected = {
        ("device", "config_002"),
        ("dataset", "config_002"),
        ("data_dir", "config_001"),
        ("data_dir", "config_002"),
        ("data_download", "config_001"),
        ("data_download", "config_002"),
    }
    expected |= {
        ("dataset_select", o.name)
        for o in reach.trials.get("dataset_select", {}).values()
        if o.status != "skipped" and o.record["config"]["CONFIG_DATASET_SELECT_DIGITS"] == "n"
    }
    expected = {(c, name) for c, name in expected if c in reach.trials}
    if any(o.status == "passed" for o in reach.trials["device"].values() if o.name == "config_002"):
        expected.discard(("device", "config_002"))  # a machine with CUDA
    assert failed == expected, "\n".join(reach.result.outlines[-60:])
    for name, c in CASES.items():
        if not _runs(c):
            continue
        assert len(reach.trials[name]) == math.prod(len(c.config[k].split("|")) for k in c.swept), name
    assert "Traceback" not in reach.result.stdout.str()


@pytest.mark.parametrize("name", sorted(CASES))
def test_swept_symbol_reaches_its_consumer(reach: Reach, name: str) -> None:
    if not _runs(CASES[name]):
        pytest.skip("needs torchvision: pip install -e '.[vision]'")
    CASES[name].check({o.record["nodeid"]: o for o in reach.trials[name].values()})


def test_every_declared_symbol_is_swept_here_or_allowed(sweep_pytester: SweepPytester) -> None:
    result = sweep_pytester.run("--sweep-symbols")
    assert result.ret == 0
    declared = set(re.findall(r"^  (CONFIG_[A-Z0-9_]+) \(", result.stdout.str(), flags=re.M))
    assert len(declared) > 40, result.stdout.str()  # the listing's format still parses
    # the reference's defconfig symbols never reach a trainer: sweep.reference rewrites them into the
    # symbols above before expansion, or refuses to sweep them (tests/test_reference.py)
    declared -= {s.name for s in reference_symbols()}
    swept = set().union(*(c.swept for c in CASES.values()))
    assert not swept & set(ALLOWED_UNSWEPT), "swept here: drop it from ALLOWED_UNSWEPT"
    missing = declared - swept - set(ALLOWED_UNSWEPT)
    assert not missing, f"declared but never swept by a reach case (add a case, or an allow-list reason): {missing}"
    unknown = (swept | set(ALLOWED_UNSWEPT)) - declared
    assert not unknown, f"no plugin declares {unknown}"
