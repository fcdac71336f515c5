"""The training loop: one model, one optimizer, one pruner, one dataset; cosine LR per epoch or a constant LR."""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_sweep.trainers.batches import TensorBatches, dataloader_batches
from pytest_sweep.trainers.checkpoint import (
    Checkpointing,
    Position,
    capture,
    data_generator,
    epoch_start_state,
    restore,
    set_rng_state,
)
from pytest_sweep.trainers.data import DataBundle
from pytest_sweep.trainers.errors import DeviceOutOfMemoryError, NonFiniteLossError
from pytest_sweep.trainers.names import LOADERS, LR_SCHEDULES
from pytest_sweep.trainers.pruning import Pruner


@dataclass
class TrainSettings:
    """How :func:`train` runs. ``amp`` (bf16 autocast) and ``channels_last`` act on CUDA only
    and are ignored on the CPU. ``lr``, when set, overrides the optimizer's learning rate before
    the schedule takes it as its start (``schedule``: ``"cosine"``, annealed per epoch to
    ``eta_min``, or ``"constant"``). ``nan_check_every`` is how often (in steps) a CUDA
    run copies its loss flag to the host, without blocking (it is read once the copy has landed,
    so a NaN stops the run a few checks late at most); CPU runs check every step.
    ``num_workers`` is the DataLoader's worker count (``loader="dataloader"`` only)."""

    epochs: int
    batch_size: int
    lr: float | None = None
    device: str = "cpu"
    seed: int = 0
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    loader: str = "tensor"
    eta_min: float = 0.0
    schedule: str = "cosine"
    grad_clip: float | None = None
    num_workers: int = 0
    nan_check_every: int = 20

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if self.loader not in LOADERS:
            raise ValueError(f"unknown loader {self.loader!r}; valid: {', '.join(LOADERS)}")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(LR_SCHEDULES)}")


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's RNGs; call it before building the model for reproducible runs."""
    random.seed(seed)
    torch.manual_seed(seed)


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool = False) -> int:
    """Optimizer steps per epoch of :func:`train` (it keeps the last partial batch)."""
    return n_train // batch_size if drop_last else math.ceil(n_train / batch_size)


def _batches(data: DataBundle, split: str, s: TrainSettings, device: torch.device, cl: bool) -> Iterable[Any]:
    if s.loader == "dataloader":
        return dataloader_batches(data, split, s.batch_size, device, s.seed, s.num_workers, channels_last=cl)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(s.seed + (0 if split == "train" else 1))
    return TensorBatches(data, split, s.batch_size, device, gen, channels_last=cl)  # type: ignore[arg-type]


class _LossWatch:
    """Notices the first non-finite training loss of an epoch without a host sync per step.

    The flag and the step it first went bad stay on the device.  On the CPU they are read every
    step (reading costs nothing there).  On CUDA, every ``every`` steps the pair is copied into
    pinned host memory without blocking, and a later check reads it once a CUDA event says that
    the copy has landed: a NaN is reported some tens of steps late at most, and the steady state
    has no host sync.  :meth:`final` (at the end of an epoch) reads the flag synchronously.
    """

    def __init__(self, device: torch.device, every: int) -> None:
        self.cuda = device.type == "cuda"
        self.every = max(1, every) if self.cuda else 1
        self.bad = torch.zeros((), device=device, dtype=torch.bool)
        self.bad_step = torch.zeros((), device=device, dtype=torch.int64)
        self.host = torch.zeros(2, dtype=torch.int64, pin_memory=self.cuda)
        self.landed: torch.cuda.Event | None = None

    def new_epoch(self) -> None:
        self.bad.zero_()
        self.bad_step.zero_()
        self.landed = None

    def record(self, loss: torch.Tensor, global_step: int) -> None:
        newly_bad = ~torch.isfinite(loss) & ~self.bad
        self.bad_step = torch.where(newly_bad, global_step, self.bad_step)
        self.bad |= newly_bad

    def poll(self, epoch: int, global_step: int) -> None:
        if global_step % self.every:
            return
        if not self.cuda:
            self._raise_if_bad(bool(self.bad), int(self.bad_step), epoch)
            return
        if self.landed is not None:
            if not self.landed.query():  # type: ignore[no-untyped-call]
                return
            self._raise_if_bad(bool(self.host[0]), int(self.host[1]), epoch)
        self.host.copy_(torch.stack([self.bad.long(), self.bad_step]), non_blocking=True)
        self.landed = torch.cuda.Event()  # type: ignore[no-untyped-call]
        self.landed.record()

    def final(self, epoch: int) -> None:
        self.landed = None
        self._raise_if_bad(bool(self.bad), int(self.bad_step), epoch)

    @staticmethod
    def _raise_if_bad(bad: bool, step: int, epoch: int) -> None:
        # Raised without binding it to a name: a local holding the exception would make a cycle
        # (frame -> exception -> traceback -> frame) that keeps the model alive until gc runs.
        if bad:
            raise NonFiniteLossError(f"loss became nan/inf at epoch {epoch}, step {step}; lower the learning rate")


def _check_steps_per_epoch(actual: int, pruner: Pruner, optimizer: torch.optim.Optimizer) -> None:
    """A pruning schedule built for another batch count would end its ramp at the wrong step."""
    for owner, built_for in (
        ("pruner", getattr(pruner, "steps_per_epoch", None)),
        ("optimizer", getattr(getattr(optimizer, "settings", None), "steps_per_epoch", None)),
    ):
        if built_for is not None and built_for != actual:
            raise ValueError(
                f"the {owner}'s pruning schedule was built for {built_for} steps per epoch, "
                f"but this run has {actual}; use trainers.loop.steps_per_epoch()"
            )


def make_update(optimizer: torch.optim.Optimizer, pruner: Pruner, grad_clip: float | None) -> Callable[[int], None]:
    """The half of a training step after ``backward()``, as :func:`train` takes it.

    ``update(global_step)``: ``pruner.before_step()`` -> ``optimizer.prepare_gradients()`` (if the
    optimizer has it) -> clip to ``grad_clip`` -> ``optimizer.step()`` ->
    ``pruner.after_step(global_step)``.  With the flags a CUDA run gets (fused optimizers) the
    number of operations it dispatches does not depend on the number of layers.
    """
    params = [p for g in optimizer.param_groups for p in g["params"]]
    prepare: Callable[[], None] | None = getattr(optimizer, "prepare_gradients", None)

    def update(global_step: int) -> None:
        pruner.before_step()
        if prepare is not None:
            prepare()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        pruner.after_step(global_step)

    return update


def _evaluate(model: nn.Module, batches: Iterable[Any], autocast: Any, device: torch.device) -> tuple[float, float]:
    model.eval()
    seen = 0
    with torch.inference_mode():
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for xb, yb in batches:
            with autocast():
                out = model(xb)
            loss_sum += nn.functional.cross_entropy(out.float(), yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
            seen += yb.shape[0]
        return float(loss_sum) / max(seen, 1), 100.0 * int(correct) / max(seen, 1)


def _step_marker(profiling: bool) -> contextlib.AbstractContextManager[Any]:
    """A ``pytest_sweep::train_step`` range for ``torch.profiler`` (bench/gpu_check.py counts
    the kernel launches and host syncs inside it); nothing when no profiler is running."""
    return torch.profiler.record_function("pytest_sweep::train_step") if profiling else contextlib.nullcontext()


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    pruner: Pruner,
    data: DataBundle,
    settings: TrainSettings,
    *,
    on_epoch: Callable[[dict[str, Any]], bool] | None = None,
    log: Callable[[str], None] = print,
    checkpoint: Checkpointing | None = None,
    resume: Any = None,
) -> dict[str, Any]:
    """Train ``model`` for ``settings.epochs`` epochs and evaluate on the test split each epoch.

    ``checkpoint``: after every step and every epoch, when ``checkpoint.due()``, the loop saves
    its whole state (:func:`trainers.checkpoint.capture`) there.  ``resume``: such a state; the
    run goes on from it (the objects passed in are built as for a fresh run, then loaded), and
    gives the numbers the uninterrupted run gives.  A state that does not fit raises
    :class:`trainers.checkpoint.ResumeMismatch` before anything trains.

    Returns ``{"history", "final_acc", "best_acc", "best_epoch", "final_sparsity", "total_time",
    "epochs_run", "stopped_early", "peak_memory_bytes", "images_per_s", "compile_s"}``;
    accuracies are in %, sparsity a fraction. ``on_epoch(metrics)`` returning True stops after
    that epoch.  Raises :class:`NonFiniteLossError` when the loss becomes NaN/inf and
    :class:`DeviceOutOfMemoryError` (one line, naming the batch) when the device runs out of memory.

    Each step: ``backward()`` then :func:`make_update` (masks, spike check, clipping, the
    optimizer step, the pruner).  With ``settings.compile`` the first step (where
    ``torch.compile`` does its work) is timed on its own: epoch 1 reports it as ``compile_s`` and
    its ``images_per_s`` counts the other steps only.  On CUDA the run sets
    ``torch.backends.cudnn.benchmark`` (the shapes are fixed) and restores it at the end.
    Build the model after :func:`seed_everything` for a reproducible run; on the CPU a fixed
    seed gives bit-for-bit identical metrics.
    """
    device = torch.device(settings.device)
    cuda = device.type == "cuda"
    benchmark = torch.backends.cudnn.benchmark
    if cuda:
        torch.backends.cudnn.benchmark = True
    try:
        return _train(model, optimizer, pruner, data, settings, device, on_epoch, log, checkpoint, resume)
    finally:
        torch.backends.cudnn.benchmark = benchmark


def _train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    pruner: Pruner,
    data: DataBundle,
    s: TrainSettings,
    device: torch.device,
    on_epoch: Callable[[dict[str, Any]], bool] | None,
    log: Callable[[str], None],
    checkpoint: Checkpointing | None = None,
    resume: Any = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    cuda = device.type == "cuda"
    cl = s.channels_last and cuda
    torch.manual_seed(s.seed)
    if (s.amp or s.channels_last) and not cuda:
        log(f"note: amp/channels_last apply to CUDA only; ignored on {device}")
    model.to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    if cuda:
        # Only once the model is there: in a process where nothing has used CUDA yet, resetting
        # the peak statistics first raises "Invalid device argument 0: did you call init?".
        torch.cuda.reset_peak_memory_stats(device)
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if s.compile else model
    if s.lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = s.lr
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs, eta_min=s.eta_min)
        if s.schedule == "cosine"
        else None
    )
    amp_on = s.amp and cuda

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if amp_on else contextlib.nullcontext()

    train_batches = _batches(data, "train", s, device, cl)
    test_batches = _batches(data, "test", s, device, cl)
    _check_steps_per_epoch(len(train_batches), pruner, optimizer)  # type: ignore[arg-type]
    update = make_update(optimizer, pruner, s.grad_clip)
    watch = _LossWatch(device, s.nan_check_every)
    profiling = torch.autograd._profiler_enabled()  # type: ignore[attr-defined]
    history: list[dict[str, Any]] = []
    global_step = 0
    stopped_early = False
    compile_s: float | None = None
    signature = {
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "loader": s.loader,
        "schedule": s.schedule,
        "steps_per_epoch": len(train_batches),  # type: ignore[arg-type]
        "optimizer": type(optimizer).__name__,
        "pruner": type(pruner).__name__,
        "model": type(model).__name__,
    }
    objects: dict[str, Any] = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "pruner": pruner}
    at: Position | None = None
    if resume is not None:
        at = restore(resume, signature=signature, **objects)
        history, global_step = at.history, at.global_step
        if at.batch is None:  # at an epoch boundary: the generators as they were
            _set_data(train_batches, at.data_now)
            for note in set_rng_state(at.rng):
                log(f"note: {note}; the continuation may differ from an uninterrupted run")
        if s.loader == "dataloader" and s.num_workers > 0:
            log(
                "note: the DataLoader's worker processes draw from generators a checkpoint cannot hold; "
                "this continuation is not bit-exact"
            )

    def save(epochs_done: int, **where: Any) -> None:
        assert checkpoint is not None
        checkpoint.save(
            capture(
                **objects,
                batches=train_batches,
                signature=signature,
                epochs_done=epochs_done,
                global_step=global_step,
                history=history,
                **where,
            )
        )

    for epoch in range((at.epochs_done if at is not None else 0) + 1, s.epochs + 1):
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        model.train()
        watch.new_epoch()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = batch = 0
        timed_from, untimed = t0, 0  # images/s leaves out the compiling first step
        out_of_memory = None
        evaluating = False
        if at is not None and at.batch is not None:  # mid-epoch: this epoch's draws again, then skip
            assert at.loop is not None and at.epoch_start is not None
            epoch_start = at.epoch_start
            batches = _resume_pass(train_batches, at, log)
            loss_sum.copy_(at.loop["loss_sum"])
            correct.copy_(at.loop["correct"])
            watch.bad.copy_(at.loop["bad"])
            watch.bad_step.copy_(at.loop["bad_step"])
            seen, batch = int(at.loop["seen"]), at.batch
        else:
            epoch_start = epoch_start_state(train_batches) if checkpoint is not None else {}
            batches = iter(train_batches)
        at = None
        try:
            for xb, yb in batches:
                batch += 1
                with _step_marker(profiling):
                    optimizer.zero_grad(set_to_none=True)
                    with autocast():
                        out = net(xb)
                    loss = nn.functional.cross_entropy(out.float(), yb)
                    loss.backward()  # type: ignore[no-untyped-call]
                    global_step += 1
                    update(global_step)
                    detached = loss.detach()
                    watch.record(detached, global_step)
                    loss_sum += detached * yb.shape[0]
                    correct += (out.detach().argmax(1) == yb).sum()
                    seen += yb.shape[0]
                    watch.poll(epoch, global_step)
                if checkpoint is not None and checkpoint.due():  # a step boundary (SIGTERM, or by time)
                    loop = {"loss_sum": loss_sum.clone(), "correct": correct.clone(), "seen": seen}
                    loop.update(bad=watch.bad.clone(), bad_step=watch.bad_step.clone())
                    save(epoch - 1, batch=batch, loop=loop, epoch_start=epoch_start)
                if s.compile and global_step == 1:
                    _synchronize(device)
                    timed_from, untimed = time.perf_counter(), seen
                    compile_s = timed_from - t0
            watch.final(epoch)
            train_loss, train_acc = float(loss_sum) / max(seen, 1), 100.0 * int(correct) / max(seen, 1)
            _synchronize(device)
            train_time = time.perf_counter() - timed_from
            if seen == untimed:  # the compiling step was the only one
                train_time, untimed = time.perf_counter() - t0, 0
            evaluating = True
            test_loss, test_acc = _evaluate(net, test_batches, autocast, device)  # type: ignore[arg-type]
        except torch.OutOfMemoryError as exc:
            # Only the message is made here; the error is raised below, outside this block: raised
            # in here it would carry this exception, whose traceback holds the activations.
            where = " while evaluating" if evaluating else f", batch {batch}"
            out_of_memory = f"{device.type.upper()} out of memory at epoch {epoch}{where} (batch size {s.batch_size})"
            detail = str(exc).strip()
            log(f"{out_of_memory}: {detail.splitlines()[0] if detail else type(exc).__name__}")
        if out_of_memory is not None:
            raise DeviceOutOfMemoryError(out_of_memory)
        if scheduler is not None:
            scheduler.step()
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "sparsity": pruner.sparsity(),
            "lr": lr,
            "epoch_time": time.perf_counter() - t0,
            "images_per_s": (seen - untimed) / max(train_time, 1e-9),
        }
        if epoch == 1 and compile_s is not None:
            metrics["compile_s"] = compile_s
        history.append(metrics)
        log(
            f"epoch {epoch}/{s.epochs}  train_loss {train_loss:.3f}  train_acc {train_acc:.1f}%  "
            f"test_loss {test_loss:.3f}  test_acc {test_acc:.1f}%  sparsity {metrics['sparsity']:.2f}  "
            f"lr {lr:.4g}  {metrics['epoch_time']:.1f}s  {metrics['images_per_s']:.0f} img/s"
            + (f"  (compile {compile_s:.1f}s, not in img/s)" if "compile_s" in metrics else "")
        )
        stop = on_epoch is not None and on_epoch(metrics)
        if checkpoint is not None and checkpoint.due(final=epoch == s.epochs):
            save(epoch)
        if stop and epoch < s.epochs:
            stopped_early = True
            break
    if not history:
        raise ValueError(f"nothing to train: the checkpoint is at the run's last epoch ({s.epochs})")
    best = max(history, key=lambda m: m["test_acc"])
    return {
        "history": history,
        "final_acc": history[-1]["test_acc"],
        "best_acc": best["test_acc"],
        "best_epoch": best["epoch"],
        "final_sparsity": history[-1]["sparsity"],
        "total_time": time.perf_counter() - started,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else None,
        "images_per_s": sum(m["images_per_s"] for m in history) / len(history),
        "compile_s": compile_s,
    }


def _set_data(batches: Any, state: torch.Tensor | None) -> None:
    gen = data_generator(batches)
    if gen is not None and state is not None:
        gen.set_state(state)


def _resume_pass(batches: Any, at: Position, log: Callable[[str], None]) -> Iterator[Any]:
    """The rest of an epoch a checkpoint left after ``at.batch`` batches, as the whole pass serves it.

    The pass's draws are made again from the generators as they were when the epoch began; the
    tensor path then starts at the batch (nothing is computed for the skipped ones), the
    DataLoader path serves and drops them (its transforms draw from torch's generator in turn).
    Then the global generators are set as they were at the save.
    """
    assert at.epoch_start is not None and at.batch is not None
    _set_data(batches, at.epoch_start["data"])
    if isinstance(batches, TensorBatches):
        rest = batches.iterate(at.batch)
        first = next(rest, None)  # the draws happen here
        for note in set_rng_state(at.rng):
            log(f"note: {note}; the continuation may differ from an uninterrupted run")
        return itertools.chain([] if first is None else [first], rest)
    torch.set_rng_state(at.epoch_start["torch"])
    it: Iterator[Any] = iter(batches)
    for _ in range(at.batch):
        next(it, None)
    for note in set_rng_state(at.rng):
        log(f"note: {note}; the continuation may differ from an uninterrupted run")
    return it


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
