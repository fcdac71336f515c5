"""The built-in trainer: ResNet-18 / LeNet-5 on CIFAR-10 / MNIST / digits.

A pytest plugin (``sweep.trainer``) that declares the model, data and
training-loop symbols and answers the factory hooks with ``trylast`` implementations,
so any plugin can replace the trainer, the model or the dataset.  It imports torch
only when a trial runs, never during collection.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import subprocess
import sys
from collections import OrderedDict
from typing import Any

import pytest

from pytest_sweep.matrix import Symbol, Trial, TrialFailed
from pytest_sweep.matrix.checkpoints import unsupported, walk
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.trial import UNSAFE_KEY, TrialContext
from pytest_sweep.plugins.choices import choices, select_symbols
from pytest_sweep.trainers.names import (
    DATASETS,
    IMAGE_SHAPES,
    LOADERS,
    LR_SCHEDULES,
    MODELS,
    REFERENCE_ONLY_MODELS,
    TEST_SIZES,
)

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def pytest_configure(config: pytest.Config) -> None:
    device = sweep_options(config).device
    if device is not None and not _DEVICE.match(device):
        raise pytest.UsageError(f"--sweep-device={device}: use auto, cpu, cuda or cuda:N")


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return [
        Symbol(
            "CONFIG_MODEL",
            "str",
            "resnet18",
            "Model to train (the reference's resnet50 and gpt2 are skipped)",
            choices=MODELS + REFERENCE_ONLY_MODELS,
        ),
        *select_symbols("CONFIG_MODEL", MODELS, "model"),
        Symbol("CONFIG_MODEL_MODE_SINGLE", "bool", True, "Train one model per trial (the only mode)"),
        Symbol("CONFIG_MODEL_WIDTH", "int", 64, "ResNet-18 base width (64 = the 11.2M-parameter model)", low=1),
        Symbol(
            "CONFIG_DATASET",
            "str",
            None,
            "Dataset (default: cifar10 for ResNet-18, mnist for LeNet-5)",
            choices=DATASETS,
        ),
        *select_symbols("CONFIG_DATASET", DATASETS, "dataset"),
        Symbol("CONFIG_DATA_DIR", "str", "data", "Folder holding CIFAR-10/MNIST"),
        Symbol("CONFIG_DATA_DOWNLOAD", "bool", False, "Download CIFAR-10/MNIST when missing"),
        Symbol(
            "CONFIG_DATA_LOADER",
            "str",
            "tensor",
            "Input path: tensor (whole dataset on the device, augmentation there) or dataloader (torchvision)",
            choices=LOADERS,
        ),
        Symbol(
            "CONFIG_NUM_WORKERS",
            "int",
            0,
            "DataLoader worker processes of the dataloader input path (0: load in the training process)",
            low=0,
        ),
        Symbol("CONFIG_NUM_EPOCHS", "int", None, "Training epochs (default: 100 ResNet-18, 10 LeNet-5)", low=1),
        Symbol(
            "CONFIG_LR_SCHEDULE",
            "str",
            None,
            "Learning-rate schedule per epoch (default: cosine on ResNet-18; on LeNet-5 cosine for "
            "AdamWAdv/AdamWSpam, constant otherwise)",
            choices=LR_SCHEDULES,
        ),
        Symbol(
            "CONFIG_LR_ETA_MIN",
            "float",
            None,
            "Floor of the cosine schedule (default: 0; 1e-6 for AdamWAdv/AdamWSpam on LeNet-5)",
            low=0.0,
        ),
        Symbol("CONFIG_BATCH_SIZE", "int", None, "Batch size (default: 128 ResNet-18, 512 LeNet-5)", low=1),
        Symbol("CONFIG_DEVICE", "str", "auto", "auto (CUDA when available), cpu, cuda or cuda:N"),
        Symbol("CONFIG_AMP", "bool", True, "bf16 autocast on CUDA (n: fp32, as the reference's ResNet-18)"),
        Symbol("CONFIG_CHANNELS_LAST", "bool", True, "channels_last memory format on CUDA (n: the reference's)"),
        Symbol("CONFIG_COMPILE", "bool", False, "torch.compile the model"),
    ]


@pytest.hookimpl
def pytest_sweep_validate_trial(trial: Trial) -> str | None:
    c = choices(trial)
    problems = c.problems_of("CONFIG_MODEL", "CONFIG_DATASET")
    if c.model in REFERENCE_ONLY_MODELS:
        problems.append(f"model {c.model} is the reference's; pytest-sweep trains {' and '.join(MODELS)}")
    if not trial.get("CONFIG_MODEL_MODE_SINGLE", True):
        problems.append("CONFIG_MODEL_MODE_SINGLE=n (several models per trial) is not supported")
    if not _DEVICE.match(str(trial["CONFIG_DEVICE"])):
        problems.append(f"CONFIG_DEVICE={trial['CONFIG_DEVICE']}: use auto, cpu, cuda or cuda:N")
    if trial["CONFIG_NUM_WORKERS"] and trial["CONFIG_DATA_LOADER"] != "dataloader":
        problems.append(
            f"CONFIG_NUM_WORKERS={trial['CONFIG_NUM_WORKERS']} needs CONFIG_DATA_LOADER=dataloader "
            f"(the {trial['CONFIG_DATA_LOADER']} input path has no worker processes)"
        )
    return "; ".join(problems) or None


def trains(trial: Trial, config: pytest.Config) -> bool:
    """Whether the built-in trainer trains ``trial`` (no plugin's ``pytest_sweep_make_trainer`` wins)."""
    impls = config.hook.pytest_sweep_make_trainer.get_hookimpls()
    if all(impl.function is pytest_sweep_make_trainer for impl in impls):
        return True  # ours is the only one: no need to build a trainer to find out
    return isinstance(config.hook.pytest_sweep_make_trainer(trial=trial, config=config), BuiltinTrainer)


@pytest.hookimpl(trylast=True)
def pytest_sweep_describe_trial(trial: Trial, config: pytest.Config) -> str | None:
    if not trains(trial, config):
        return None  # another plugin's trainer: the runner names it in the record
    c = choices(trial)
    model = c.model
    if model == "resnet18" and trial["CONFIG_MODEL_WIDTH"] != 64:
        model += f"-w{trial['CONFIG_MODEL_WIDTH']}"
    return f"{model}/{c.dataset}/{c.optimizer}/{c.pruning} e{c.epochs} b{c.batch_size}"


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_dataset(trial: Trial) -> Any:
    from pytest_sweep.trainers.data import load_dataset
    from pytest_sweep.trainers.errors import DataUnavailableError

    try:
        return load_dataset(
            choices(trial).dataset, data_dir=trial["CONFIG_DATA_DIR"], download=trial["CONFIG_DATA_DOWNLOAD"]
        )
    except DataUnavailableError as exc:
        raise TrialFailed(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_model(trial: Trial, data: Any) -> Any:
    from pytest_sweep.trainers.models import build_model

    return build_model(
        choices(trial).model,
        in_channels=data.in_channels,
        image_size=data.image_size,
        num_classes=data.num_classes,
        width=trial["CONFIG_MODEL_WIDTH"],
    )


#: The largest batch the runtime estimate times on a CPU (then scaled to the trial's batch).
CPU_TIMING_BATCH = 32
#: Seconds the runtime estimate's child process may take (torch's import included).
ESTIMATE_TIMEOUT = 120


@pytest.hookimpl(trylast=True)
def pytest_sweep_estimate_trial(trial: Trial, config: pytest.Config) -> float | None:
    """Seconds for a trial: a few timed optimizer steps of its model and batch on its device,
    times the steps of the whole run, plus evaluation after every epoch.

    Only when asked (``--sweep-estimate``): it takes seconds per trainer, and collection must not
    wait for it otherwise (the estimate then follows the first passed trial).  The steps run in a child process (``python -m pytest_sweep.trainers.timing``), so the
    controller never imports torch: collection stays torch-free, and an xdist controller does
    not hold torch's memory for a number.
    """
    from pytest_sweep.plugins.optimizers import optimizer_spec

    if not sweep_options(config).estimate:
        return None
    c = choices(trial)
    shape = IMAGE_SHAPES.get(c.dataset)
    if shape is None or c.steps_per_epoch is None:
        return None
    if not trains(trial, config):
        return None  # another plugin trains this trial: its time is not ours to guess
    name, prune, kwargs = optimizer_spec(trial, c.steps_per_epoch)
    spec = {
        "model": c.model,
        "width": int(trial["CONFIG_MODEL_WIDTH"]),
        "shape": list(shape),
        "optimizer": name,
        "prune": prune,
        "optimizer_kwargs": kwargs,
        "batch": c.batch_size,
        "device": str(trial["CONFIG_DEVICE"]),
        "cpu_batch": CPU_TIMING_BATCH,
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_sweep.trainers.timing"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=ESTIMATE_TIMEOUT,
            check=False,
        )
        times = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, TypeError, ValueError, subprocess.TimeoutExpired):
        times = None
    if not isinstance(times, dict):
        return None
    eval_batches = math.ceil(TEST_SIZES[c.dataset] / c.batch_size)
    return c.epochs * (c.steps_per_epoch * float(times["train_step"]) + eval_batches * float(times["eval_batch"]))


@pytest.hookimpl(trylast=True)
def pytest_sweep_make_trainer(trial: Trial, config: pytest.Config) -> Any:
    return BuiltinTrainer(config)


@pytest.hookimpl
def pytest_sweep_trial_finished(trial: Trial, record: dict[str, Any]) -> None:
    """Give memory back between trials (the reference never did).

    After a failed trial always: the runner has dropped the failure's frames by now, so a full
    ``gc.collect()`` frees the trial's model, optimizer and batches even where they sit in a
    reference cycle, and ``empty_cache()`` hands the GPU memory to the other workers on that GPU
    (``--sweep-workers-per-gpu``).  After a passed trial only where CUDA was used: a full
    collection with torch loaded costs ~0.4 s, which doubled the time of a CPU sweep of small
    trials.  Never after a trial whose import the timeout cut short (``UNSAFE_KEY``): the process
    ends without touching its objects.
    """
    if UNSAFE_KEY in trial.stash:
        return  # an import was cut short: collecting its half-built objects can crash the process
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_initialized()
    if cuda or record.get("status") == "failed":
        gc.collect()
    if cuda:
        torch.cuda.empty_cache()  # type: ignore[union-attr]


_warned: set[str] = set()


def _note_once(trial: Trial, key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        trial.log(message)


def cuda_index_problem(want: str, visible: int, worker: str = "main") -> str | None:
    """Why ``CONFIG_DEVICE=cuda:N`` cannot work in a process that sees ``visible`` GPUs (one line).

    CUDA numbers the GPUs a process sees from 0; an xdist worker sees exactly its own GPU
    (:mod:`plugins.gpu` sets its ``CUDA_VISIBLE_DEVICES``), so there only ``cuda:0`` exists.
    """
    _, _, index = want.partition(":")
    if not index or int(index) < visible:
        return None
    if worker != "main":
        return (
            f"CONFIG_DEVICE={want}, but xdist worker {worker} sees only the GPU it was given, as cuda:0 "
            f"(-n spreads the workers over the GPUs, --sweep-workers-per-gpu per GPU); use CONFIG_DEVICE=cuda"
        )
    seen = f"cuda:0..cuda:{visible - 1}" if visible > 1 else "cuda:0"
    return (
        f"CONFIG_DEVICE={want}, but this process sees {visible} GPU{'s' if visible != 1 else ''} ({seen}; "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}, numbered from 0); "
        f"use one of those or CONFIG_DEVICE=cuda"
    )


def resolve_device(trial: Trial) -> str:
    """The device a trial trains on; a ``cuda:N`` this process cannot see fails the trial in one line."""
    import torch

    want = str(trial["CONFIG_DEVICE"])
    if want == "auto":
        if torch.cuda.is_available():
            return "cuda"
        _note_once(
            trial, "cpu", "warning: CUDA is not available; training on the CPU (CONFIG_DEVICE=cpu silences this)"
        )
        return "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise TrialFailed(f"CONFIG_DEVICE={want} but CUDA is not available here; use CONFIG_DEVICE=auto or cpu")
    if want.startswith("cuda:"):
        problem = cuda_index_problem(want, torch.cuda.device_count(), trial.worker)
        if problem:
            raise TrialFailed(problem)
        if trial.worker != "main":
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "?")
            _note_once(trial, "index", f"note: {want} is this worker's own GPU (CUDA_VISIBLE_DEVICES={gpu})")
    return want


class BuiltinTrainer:
    """Trains one trial: dataset, model, optimizer and pruner come from the factory hooks.

    It checkpoints (``ctx.save_checkpoint``) everything a bit-exact continuation needs (see
    :mod:`pytest_sweep.trainers.checkpoint`) and continues from the trial's checkpoint when it
    has one (``ctx.load_checkpoint``).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def build(self, trial: Trial, data: Any, device: str, steps: int) -> tuple[Any, Any, Any]:
        """Model, optimizer and pruner, as a fresh trial builds them (the seed first)."""
        import torch

        hook = self.config.hook
        torch.manual_seed(trial.seed)
        model = hook.pytest_sweep_make_model(trial=trial, data=data)
        channels_last = device.startswith("cuda") and bool(trial["CONFIG_CHANNELS_LAST"])
        model = model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)
        optimizer = hook.pytest_sweep_make_optimizer(trial=trial, model=model, steps_per_epoch=steps)
        pruner = hook.pytest_sweep_make_pruner(trial=trial, model=model, optimizer=optimizer, steps_per_epoch=steps)
        return model, optimizer, pruner

    def run(self, trial: Trial, ctx: TrialContext) -> dict[str, Any]:
        import torch

        from pytest_sweep.trainers.checkpoint import ResumeMismatch
        from pytest_sweep.trainers.errors import DeviceOutOfMemoryError, NonFiniteLossError
        from pytest_sweep.trainers.loop import TrainSettings, steps_per_epoch, train
        from pytest_sweep.trainers.optimizers import default_grad_clip

        hook = self.config.hook
        c = choices(trial)
        device = resolve_device(trial)
        data = hook.pytest_sweep_make_dataset(trial=trial)
        cuda = device.startswith("cuda")
        channels_last = cuda and bool(trial["CONFIG_CHANNELS_LAST"])
        batch = c.batch_size
        steps = steps_per_epoch(len(data.train_y), batch)
        resume = ctx.load_checkpoint()
        model, optimizer, pruner = self.build(trial, data, device, steps)
        opt = c.optimizer
        base = trial["CONFIG_ADAMWPRUNE_BASE_OPTIMIZER"] if opt == "adamwprune" else None
        settings = TrainSettings(
            epochs=c.epochs,
            batch_size=batch,
            lr=c.learning_rate,
            device=device,
            seed=trial.seed,
            amp=cuda and bool(trial["CONFIG_AMP"]),
            channels_last=channels_last,
            compile=bool(trial["CONFIG_COMPILE"]),
            loader=str(trial["CONFIG_DATA_LOADER"]),
            num_workers=int(trial["CONFIG_NUM_WORKERS"]),
            eta_min=c.eta_min,
            schedule=c.lr_schedule,
            grad_clip=default_grad_clip(opt, base),
        )
        schedule = f"cosine to {c.eta_min:g}" if c.lr_schedule == "cosine" else "constant"
        ctx.log(
            f"{c.model} on {data.name} ({len(data.train_y)} train / {len(data.test_y)} test), "
            f"{opt}, {settings.epochs} epochs, batch {batch}, lr {settings.lr:g} ({schedule}), device {device}, "
            f"{torch.get_num_threads()} torch threads"
        )
        checkpoint = _Checkpoint(ctx)
        failure = None
        try:
            try:
                out = train(model, optimizer, pruner, data, settings, on_epoch=ctx.epoch_ended, log=ctx.log,
                            checkpoint=checkpoint, resume=resume)  # fmt: skip
            except ResumeMismatch as exc:  # before anything trained: start again from scratch
                ctx.discard_checkpoint(str(exc))
                del model, optimizer, pruner, resume
                model, optimizer, pruner = self.build(trial, data, device, steps)
                out = train(model, optimizer, pruner, data, settings, on_epoch=ctx.epoch_ended, log=ctx.log,
                            checkpoint=checkpoint)  # fmt: skip
        except NonFiniteLossError as exc:
            failure = str(exc)
        except DeviceOutOfMemoryError as exc:
            per_gpu = sweep_options(self.config).workers_per_gpu
            failure = f"{exc}; lower CONFIG_BATCH_SIZE" + (
                f" or --sweep-workers-per-gpu (now {per_gpu})" if cuda and per_gpu > 1 else ""
            )
        if failure is not None:  # raised out here, the error does not carry the one it replaces
            raise TrialFailed(failure)
        peak = out.get("peak_memory_bytes")
        return {
            "test_acc": out["final_acc"],
            "best_acc": out["best_acc"],
            "final_sparsity": out["final_sparsity"],
            "training_time": out["total_time"],
            "epochs_run": out["epochs_run"],
            "images_per_s": out.get("images_per_s"),
            "peak_memory_mb": round(peak / 2**20, 1) if peak else None,
            "torch_threads": torch.get_num_threads(),
            "device": device,
            "test_samples": len(data.test_y),
            "history": out["history"],
        }


class _Checkpoint:
    """The training loop's :class:`~pytest_sweep.trainers.checkpoint.Checkpointing`, on the trial's context."""

    def __init__(self, ctx: TrialContext) -> None:
        self.ctx = ctx

    def due(self, final: bool = False) -> bool:
        return self.ctx.checkpoint_due(final=final)

    def save(self, state: dict[str, Any]) -> None:
        self.ctx.save_checkpoint(state, force=True)


#: What a ``torch`` checkpoint may hold besides plain data.
def _torch_leaf(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, (torch.Tensor, torch.dtype, torch.Size, torch.device, OrderedDict))


class TorchCodec:
    """Checkpoint states holding torch tensors: ``torch.save``, read back with ``weights_only=True``
    (no code in a checkpoint runs) onto the CPU (``load_state_dict`` moves them to their device)."""

    name = "torch"

    def accepts(self, state: Any) -> str | None:
        if "torch" not in sys.modules:
            return "torch is not loaded"
        if not any(_torch_leaf(o) for _, o, _ in walk(state)):
            return "it holds no torch tensor"  # plain data: the plain codec (no torch needed to read it)
        return unsupported(state, _torch_leaf)

    def dumps(self, state: Any) -> bytes:
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import io

        import torch

        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


@pytest.hookimpl(trylast=True)
def pytest_sweep_checkpoint_codecs() -> list[Any]:
    return [TorchCodec()]
