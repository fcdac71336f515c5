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
from pytest_sweep.trainers.contracts import DataBundle, Pruner
from pytest_sweep.trainers.errors import DeviceOutOfMemoryError, NonFiniteLossError
from pytest_sweep.trainers.names import LOADERS, LR_SCHEDULES


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
    run = _Run(model, optimizer, pruner, data, s, device, log, checkpoint)
    at = run.restore(resume) if resume is not None else None
    for epoch in range((at.epochs_done if at is not None else 0) + 1, s.epochs + 1):
        metrics = run.epoch(epoch, at)
        at = None
        stop = on_epoch is not None and on_epoch(metrics)
        if checkpoint is not None and checkpoint.due(final=epoch == s.epochs):
            run.save(epoch)
        if stop and epoch < s.epochs:
            run.stopped_early = True
            break
    return run.result(started)


@dataclass
class _Epoch:
    """One epoch's training pass as it goes: its sums stay on the device until the epoch ends."""

    number: int
    t0: float
    lr: float
    loss_sum: torch.Tensor
    correct: torch.Tensor
    #: the generators' state when the epoch began (what a mid-epoch checkpoint needs to draw it again)
    epoch_start: dict[str, Any]
    seen: int = 0
    batch: int = 0
    #: images/s leaves out the compiling first step: the clock starts after it, its images do not count
    timed_from: float = 0.0
    untimed: int = 0
    evaluating: bool = False


class _Run:
    """The state of one :func:`train` call, and its steps: set up, restore, one epoch, save, the result."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        pruner: Pruner,
        data: DataBundle,
        s: TrainSettings,
        device: torch.device,
        log: Callable[[str], None],
        checkpoint: Checkpointing | None,
    ) -> None:
        self.model, self.optimizer, self.pruner, self.s = model, optimizer, pruner, s
        self.device, self.log, self.checkpoint = device, log, checkpoint
        self.cuda = device.type == "cuda"
        cl = s.channels_last and self.cuda
        torch.manual_seed(s.seed)
        self.net = self._place_model(cl)
        if s.lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = s.lr
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs, eta_min=s.eta_min)
            if s.schedule == "cosine"
            else None
        )
        self.amp_on = s.amp and self.cuda
        self.train_batches = _batches(data, "train", s, device, cl)
        self.test_batches = _batches(data, "test", s, device, cl)
        _check_steps_per_epoch(len(self.train_batches), pruner, optimizer)  # type: ignore[arg-type]
        self.update = make_update(optimizer, pruner, s.grad_clip)
        self.watch = _LossWatch(device, s.nan_check_every)
        self.profiling = torch.autograd._profiler_enabled()  # type: ignore[attr-defined]
        self.history: list[dict[str, Any]] = []
        self.global_step = 0
        self.stopped_early = False
        self.compile_s: float | None = None
        self.signature = {
            "epochs": s.epochs,
            "batch_size": s.batch_size,
            "loader": s.loader,
            "schedule": s.schedule,
            "steps_per_epoch": len(self.train_batches),  # type: ignore[arg-type]
            "optimizer": type(optimizer).__name__,
            "pruner": type(pruner).__name__,
            "model": type(model).__name__,
        }
        self.objects: dict[str, Any] = {
            "model": model,
            "optimizer": optimizer,
            "scheduler": self.scheduler,
            "pruner": pruner,
        }

    def _place_model(self, cl: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model on the device (channels-last if asked), compiled if asked."""
        s, device = self.s, self.device
        if (s.amp or s.channels_last) and not self.cuda:
            self.log(f"note: amp/channels_last apply to CUDA only; ignored on {device}")
        self.model.to(device)
        if cl:
            self.model.to(memory_format=torch.channels_last)
        if self.cuda:
            # Only once the model is there: in a process where nothing has used CUDA yet, resetting
            # the peak statistics first raises "Invalid device argument 0: did you call init?".
            torch.cuda.reset_peak_memory_stats(device)
        net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(self.model) if s.compile else self.model
        return net

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp_on else contextlib.nullcontext()

    def restore(self, resume: Any) -> Position:
        """Load a checkpoint's state into the objects; where the run goes on from."""
        at = restore(resume, signature=self.signature, **self.objects)
        self.history, self.global_step = at.history, at.global_step
        if at.batch is None:  # at an epoch boundary: the generators as they were
            _set_data(self.train_batches, at.data_now)
            for note in set_rng_state(at.rng):
                self.log(f"note: {note}; the continuation may differ from an uninterrupted run")
        if self.s.loader == "dataloader" and self.s.num_workers > 0:
            self.log(
                "note: the DataLoader's worker processes draw from generators a checkpoint cannot hold; "
                "this continuation is not bit-exact"
            )
        return at

    def save(self, epochs_done: int, **where: Any) -> None:
        assert self.checkpoint is not None
        self.checkpoint.save(
            capture(
                **self.objects,
                batches=self.train_batches,
                signature=self.signature,
                epochs_done=epochs_done,
                global_step=self.global_step,
                history=self.history,
                **where,
            )
        )

    def epoch(self, epoch: int, at: Position | None) -> dict[str, Any]:
        """Train one epoch (from a mid-epoch checkpoint ``at``, if it holds one), evaluate, log; its metrics."""
        ep, batches = self._start_epoch(epoch, at)
        out_of_memory = None
        try:
            for xb, yb in batches:
                self._step(ep, xb, yb)
            train_loss, train_acc, train_time = self._end_pass(ep)
            ep.evaluating = True
            test_loss, test_acc = _evaluate(self.net, self.test_batches, self.autocast, self.device)  # type: ignore[arg-type]
        except torch.OutOfMemoryError as exc:
            # Only the message is made here; the error is raised below, outside this block: raised
            # in here it would carry this exception, whose traceback holds the activations.
            out_of_memory = self._out_of_memory(ep, exc)
        if out_of_memory is not None:
            raise DeviceOutOfMemoryError(out_of_memory)
        if self.scheduler is not None:
            self.scheduler.step()
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "sparsity": self.pruner.sparsity(),
            "lr": ep.lr,
            "epoch_time": time.perf_counter() - ep.t0,
            "images_per_s": (ep.seen - ep.untimed) / max(train_time, 1e-9),
        }
        if epoch == 1 and self.compile_s is not None:
            metrics["compile_s"] = self.compile_s
        self.history.append(metrics)
        self.log(_epoch_line(metrics, self.s.epochs))
        return metrics

    def _start_epoch(self, epoch: int, at: Position | None) -> tuple[_Epoch, Iterator[Any]]:
        """The epoch's counters and its batches: from the start, or where a mid-epoch checkpoint left it."""
        t0 = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.model.train()
        self.watch.new_epoch()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        if at is not None and at.batch is not None:  # mid-epoch: this epoch's draws again, then skip
            assert at.loop is not None and at.epoch_start is not None
            ep = _Epoch(epoch, t0, lr, loss_sum, correct, at.epoch_start, timed_from=t0)
            batches = _resume_pass(self.train_batches, at, self.log)
            ep.loss_sum.copy_(at.loop["loss_sum"])
            ep.correct.copy_(at.loop["correct"])
            self.watch.bad.copy_(at.loop["bad"])
            self.watch.bad_step.copy_(at.loop["bad_step"])
            ep.seen, ep.batch = int(at.loop["seen"]), at.batch
            return ep, batches
        epoch_start = epoch_start_state(self.train_batches) if self.checkpoint is not None else {}
        return _Epoch(epoch, t0, lr, loss_sum, correct, epoch_start, timed_from=t0), iter(self.train_batches)

    def _step(self, ep: _Epoch, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """One optimizer step on a batch; then a checkpoint when one is due, and the compile timing."""
        ep.batch += 1
        with _step_marker(self.profiling):
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                out = self.net(xb)
            loss = nn.functional.cross_entropy(out.float(), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            self.global_step += 1
            self.update(self.global_step)
            detached = loss.detach()
            self.watch.record(detached, self.global_step)
            ep.loss_sum += detached * yb.shape[0]
            ep.correct += (out.detach().argmax(1) == yb).sum()
            ep.seen += yb.shape[0]
            self.watch.poll(ep.number, self.global_step)
        if self.checkpoint is not None and self.checkpoint.due():  # a step boundary (SIGTERM, or by time)
            loop = {"loss_sum": ep.loss_sum.clone(), "correct": ep.correct.clone(), "seen": ep.seen}
            loop.update(bad=self.watch.bad.clone(), bad_step=self.watch.bad_step.clone())
            self.save(ep.number - 1, batch=ep.batch, loop=loop, epoch_start=ep.epoch_start)
        if self.s.compile and self.global_step == 1:
            _synchronize(self.device)
            ep.timed_from, ep.untimed = time.perf_counter(), ep.seen
            self.compile_s = ep.timed_from - ep.t0

    def _end_pass(self, ep: _Epoch) -> tuple[float, float, float]:
        """The training pass's loss, accuracy and time (a NaN loss raises here at the latest)."""
        self.watch.final(ep.number)
        train_loss, train_acc = float(ep.loss_sum) / max(ep.seen, 1), 100.0 * int(ep.correct) / max(ep.seen, 1)
        _synchronize(self.device)
        train_time = time.perf_counter() - ep.timed_from
        if ep.seen == ep.untimed:  # the compiling step was the only one
            train_time, ep.untimed = time.perf_counter() - ep.t0, 0
        return train_loss, train_acc, train_time

    def _out_of_memory(self, ep: _Epoch, exc: torch.OutOfMemoryError) -> str:
        """The one-line error for running out of device memory (logged with the device's own first line)."""
        where = " while evaluating" if ep.evaluating else f", batch {ep.batch}"
        message = (
            f"{self.device.type.upper()} out of memory at epoch {ep.number}{where} (batch size {self.s.batch_size})"
        )
        detail = str(exc).strip()
        self.log(f"{message}: {detail.splitlines()[0] if detail else type(exc).__name__}")
        return message

    def result(self, started: float) -> dict[str, Any]:
        """What :func:`train` returns."""
        history = self.history
        if not history:
            raise ValueError(f"nothing to train: the checkpoint is at the run's last epoch ({self.s.epochs})")
        best = max(history, key=lambda m: m["test_acc"])
        return {
            "history": history,
            "final_acc": history[-1]["test_acc"],
            "best_acc": best["test_acc"],
            "best_epoch": best["epoch"],
            "final_sparsity": history[-1]["sparsity"],
            "total_time": time.perf_counter() - started,
            "epochs_run": len(history),
            "stopped_early": self.stopped_early,
            "peak_memory_bytes": int(torch.cuda.max_memory_allocated(self.device)) if self.cuda else None,
            "images_per_s": sum(m["images_per_s"] for m in history) / len(history),
            "compile_s": self.compile_s,
        }


def _epoch_line(metrics: dict[str, Any], epochs: int) -> str:
    """The log line of an epoch."""
    m = metrics
    return (
        f"epoch {m['epoch']}/{epochs}  train_loss {m['train_loss']:.3f}  train_acc {m['train_acc']:.1f}%  "
        f"test_loss {m['test_loss']:.3f}  test_acc {m['test_acc']:.1f}%  sparsity {m['sparsity']:.2f}  "
        f"lr {m['lr']:.4g}  {m['epoch_time']:.1f}s  {m['images_per_s']:.0f} img/s"
        + (f"  (compile {m['compile_s']:.1f}s, not in img/s)" if "compile_s" in m else "")
    )


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
