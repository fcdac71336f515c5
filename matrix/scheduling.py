"""The built-in early-stopping rules: asynchronous successive halving (ASHA) and the median rule.

Both decide from a :class:`~pytest_sweep.matrix.rungs.RungStore` shared by every process of the
sweep; neither ever waits for another trial.

- **ASHA** (Ray Tune's ASHA in stopping mode, Optuna's ``SuccessiveHalvingPruner`` cutoff): rungs
  at ``grace × η^k`` epochs below the trial's ``CONFIG_NUM_EPOCHS``.  At a rung a trial goes on
  only if its metric is within the top ``max(1, n // η)`` of the ``n`` results recorded at that
  rung so far, its own included (ties go on); otherwise it stops there.  The first trial at a
  rung always goes on.
- **ASHA, promotion mode** (Ray Tune's and Syne Tune's "promotion" type): every trial pauses
  at each rung, checkpointed, and its worker goes on with other work; a paused trial is promoted
  (continued from its checkpoint to the next rung) if its metric is within the top
  ``max(1, n // η)`` of the ``n`` results recorded at that rung when its next stage starts.  The
  stages run as items in waves (:mod:`pytest_sweep.matrix.stages`), so most of a rung's results
  are in when the promotions are decided, whatever the order of the trials.
- **median** (Optuna's ``MedianPruner``): after ``grace`` epochs, and once ``startup`` trials
  have completed, a trial whose metric at an epoch is worse than the median of the other trials'
  metrics at the same epoch stops.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.rungs import PromotionStore, RungStore, Verdict
from pytest_sweep.matrix.trial import STAGE_KEY, Stage, Stop, Trial, TrialFailed

MODES = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """The metric a scheduler compares (a key of the per-epoch metrics) and its direction."""

    metric: str = "test_acc"
    mode: str = "max"

    def better(self, a: float, b: float) -> bool:
        """``a`` at least as good as ``b``."""
        return a >= b if self.mode == "max" else a <= b

    def show(self, value: float) -> str:
        return f"{value:.1f}%" if self.metric.endswith("_acc") else f"{value:.4g}"

    @property
    def worse(self) -> str:
        return "below" if self.mode == "max" else "above"

    def value(self, metrics: Mapping[str, Any]) -> float:
        raw = metrics.get(self.metric)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            have = ", ".join(sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))) or "none"
            raise TrialFailed(
                f"--sweep-metric={self.metric}: the trainer's epoch metrics have no number {self.metric} "
                f"(they have {have})"
            )
        try:
            return float(raw)
        except OverflowError:
            raise TrialFailed(
                f"--sweep-metric={self.metric}: the trainer's epoch metric {self.metric} is too large for a number"
            ) from None


def _rung(grace: int, eta: float, k: int) -> int:
    return round(grace * eta**k)


def _exponent(grace: int, eta: float, value: float) -> float:
    """The ``k`` where ``grace × η^k`` reaches ``value`` (logarithms of each: either may be huge)."""
    return (math.log(value) - math.log(grace)) / math.log(eta)


def is_rung(epoch: int, grace: int, eta: float, epochs: int | None = None) -> bool:
    """Whether ``epoch`` is a rung: ``round(grace × η^k) == epoch`` for a whole ``k ≥ 0``, below ``epochs``.

    In closed form: the values ``grace × η^k`` grow with ``k``, so the ones nearest to ``epoch`` have
    ``k`` next to ``log(epoch / grace) / log(η)``; a few neighbours cover rounding in the logarithm.
    """
    if epoch < grace or (epochs is not None and epoch >= epochs):
        return False
    centre = _exponent(grace, eta, epoch)
    if not math.isfinite(centre):
        return False
    k = math.floor(centre)
    return any(_rung(grace, eta, j) == epoch for j in range(max(0, k - 1), k + 3))


def rungs(grace: int, eta: float, epochs: int | None, limit: int = 64) -> list[int]:
    """The rung epochs ``grace × η^k`` below ``epochs`` (rounded; ``limit`` of them when unknown).

    Each rung is found from the last in closed form (a logarithm), never by stepping ``k`` through
    the values that round to the same epoch (there are ~10^12 of them for η = 1 + 1e-12).
    """
    found: list[int] = []
    k = 0
    while len(found) < limit:
        rung = _rung(grace, eta, k)
        if epochs is not None and rung >= epochs:
            break
        found.append(rung)
        # the first k whose value rounds above this rung: from the logarithm, then a step or two
        k = max(k + 1, math.floor(_exponent(grace, eta, rung + 0.5)) - 1)
        while _rung(grace, eta, k) <= rung:
            k += 1
    return found


def asha_verdict(value: float, others: list[float], eta: float, objective: Objective, epoch: int) -> Verdict:
    """ASHA's cutoff at a rung: go on within the top ``max(1, n // η)`` of the ``n`` results."""
    ordered = sorted([*others, value], reverse=objective.mode == "max")
    keep = max(1, int(len(ordered) // eta))
    cutoff = ordered[keep - 1]
    if objective.better(value, cutoff):
        return Verdict(False)
    return Verdict(
        True,
        f"stopped at epoch {epoch}: {objective.metric} {objective.show(value)} {objective.worse} the rung's "
        f"top-1/{eta:g} cutoff {objective.show(cutoff)} ({len(ordered)} results)",
    )


def median_verdict(value: float, others: list[float], objective: Objective, epoch: int) -> Verdict:
    """The median rule: worse than the median of the other trials at this epoch stops."""
    if not others:
        return Verdict(False)
    median = statistics.median(others)
    if objective.better(value, median):
        return Verdict(False)
    return Verdict(
        True,
        f"stopped at epoch {epoch}: {objective.metric} {objective.show(value)} {objective.worse} the median "
        f"{objective.show(median)} of {len(others)} other trials at this epoch",
    )


def _finite(value: float, objective: Objective, epoch: int, scheduler: str) -> float:
    """A metric a rule can rank; NaN or infinity fails the trial (its rung stays free of it)."""
    if not math.isfinite(value):
        word = "NaN" if math.isnan(value) else "infinite"
        raise TrialFailed(
            f"{objective.metric} is {word} at epoch {epoch} (the trainer's epoch metrics); "
            f"the {scheduler} scheduler cannot compare it with the other trials"
        )
    return value


#: The largest epoch number a scheduler takes (the rung store keeps it as a 64-bit integer).
MAX_EPOCH = 2**62


def _epoch(trial: Trial, metrics: Mapping[str, Any]) -> int:
    epoch = metrics.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise TrialFailed("the trainer's epoch metrics have no whole-number 'epoch'; the scheduler needs it")
    if epoch > MAX_EPOCH:
        raise TrialFailed(
            f"the trainer's epoch metrics have epoch {clip(str(epoch))}, not an epoch number (0 to 2**62)"
        )
    return epoch


class AshaScheduler:
    """Asynchronous successive halving in stopping mode (see the module's docstring)."""

    name = "asha"

    def __init__(self, store: RungStore, grace: int = 1, eta: float = 3.0, objective: Objective | None = None):
        self.store = store
        self.grace = grace
        self.eta = eta
        self.objective = objective or Objective()

    def epoch_ended(self, trial: Trial, metrics: Mapping[str, Any]) -> Stop | None:
        epoch = _epoch(trial, metrics)
        if not is_rung(epoch, self.grace, self.eta, trial.get("CONFIG_NUM_EPOCHS")):
            return None
        value = _finite(self.objective.value(metrics), self.objective, epoch, self.name)
        eta, objective = self.eta, self.objective
        verdict = self.store.decide(
            "rung", epoch, trial.folder, value, lambda v, others: asha_verdict(v, others, eta, objective, epoch)
        )
        return Stop(epoch, verdict.reason) if verdict.stop else None

    def trial_finished(self, trial: Trial, record: Mapping[str, Any]) -> None:
        if record.get("status") == "passed":
            self.store.finish(trial.folder)


def promotion_verdict(value: float, others: list[float], eta: float, objective: Objective, epoch: int) -> Verdict:
    """ASHA's promotion rule: the same cutoff as :func:`asha_verdict`, decided when the next stage starts."""
    verdict = asha_verdict(value, others, eta, objective, epoch)
    if not verdict.stop:
        return verdict
    return Verdict(True, verdict.reason.replace(f"stopped at epoch {epoch}", f"not promoted at epoch {epoch}", 1))


def stage_ends(grace: int, eta: float, epochs: int) -> list[int] | None:
    """Where a trial of ``epochs`` epochs ends its stages in promotion mode: its rungs, then ``epochs``."""
    ladder = rungs(grace, eta, epochs)
    return [*ladder, epochs] if ladder else None


class PromotionAsha:
    """ASHA in promotion mode (see the module's docstring): pauses at rungs, promotes later.

    Its values live in the store's ``prung`` rows, its decisions among its promotions.
    """

    name = "asha"
    KIND = "prung"

    def __init__(
        self, store: PromotionStore, grace: int = 1, eta: float = 3.0, objective: Objective | None = None
    ) -> None:
        self.store = store
        self.grace = grace
        self.eta = eta
        self.objective = objective or Objective()

    def epoch_ended(self, trial: Trial, metrics: Mapping[str, Any]) -> Stop | None:
        epoch = _epoch(trial, metrics)
        stage = trial.stash.get(STAGE_KEY, None)
        if stage is not None and stage.last and epoch >= stage.until:
            return None  # its last epoch: nothing left to decide
        if epoch not in rungs(self.grace, self.eta, trial.get("CONFIG_NUM_EPOCHS"), limit=epoch + 1):
            return None
        value = self.objective.value(metrics)
        self.store.record(self.KIND, epoch, trial.folder, value)
        if stage is not None and epoch == stage.until:
            return Stop(
                epoch,
                f"paused at epoch {epoch} with {self.objective.metric} {self.objective.show(value)}: waits for its "
                f"promotion (the top 1/{self.eta:g} of the rung go on)",
                pause=True,
            )
        # a rung on the way (its earlier stages did not run in this sweep, or it runs as one item)
        return self._decide(trial, epoch, value)

    def promote(self, trial: Trial, stage: Stage, metrics: Mapping[str, Any]) -> Stop | None:
        rung = stage.after if stage.after is not None else _epoch(trial, metrics)
        return self._decide(trial, rung, self.objective.value(metrics))

    def _decide(self, trial: Trial, epoch: int, value: float) -> Stop | None:
        eta, objective = self.eta, self.objective
        verdict = self.store.promote(
            self.KIND,
            epoch,
            trial.folder,
            value,
            lambda v, others: promotion_verdict(v, others, eta, objective, epoch),
        )
        return Stop(epoch, verdict.reason) if verdict.stop else None

    def trial_finished(self, trial: Trial, record: Mapping[str, Any]) -> None:
        if record.get("status") == "passed":
            self.store.finish(trial.folder)


class MedianScheduler:
    """Optuna's median rule (see the module's docstring)."""

    name = "median"

    def __init__(self, store: RungStore, grace: int = 1, startup: int = 3, objective: Objective | None = None):
        self.store = store
        self.grace = grace
        self.startup = startup
        self.objective = objective or Objective()

    def epoch_ended(self, trial: Trial, metrics: Mapping[str, Any]) -> Stop | None:
        epoch = _epoch(trial, metrics)
        value = self.objective.value(metrics)
        if epoch >= (trial.get("CONFIG_NUM_EPOCHS") or epoch + 1):
            return None  # the last epoch: nothing left to save
        value = _finite(value, self.objective, epoch, self.name)
        warm = epoch >= self.grace and self.store.finished() >= self.startup
        objective = self.objective

        def rule(v: float, others: list[float]) -> Verdict:
            return median_verdict(v, others, objective, epoch) if warm else Verdict(False)

        verdict = self.store.decide("epoch", epoch, trial.folder, value, rule)
        return Stop(epoch, verdict.reason) if verdict.stop else None

    def trial_finished(self, trial: Trial, record: Mapping[str, Any]) -> None:
        if record.get("status") == "passed":
            self.store.finish(trial.folder)
