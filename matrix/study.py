"""The search study: Optuna's ask-and-tell behind one small interface, :class:`SearchStore`.

A sampled sweep's items ask the store for their configuration when they start
(:meth:`SearchStore.propose`) and tell it each result when they end (:meth:`SearchStore.report`).
:class:`JournalSearchStore` keeps the study in Optuna's journal storage in the sweep folder
(``search_study.journal``: an append-only log that many processes may write, where SQLite fails
with "database is locked"), and serialises every ask and tell with an ``flock`` on
``search_study.lock``, so a proposal, its duplicate check and its bookkeeping are one step for all
xdist workers and Ray actors that share the folder.  ``--sweep-resume`` opens the same study and
continues it.  On Ray one actor on the controller's node holds the store and the trials call it
(``pytest_sweep.matrix.ray.state``; the journal stays the durable copy).

What the store guarantees:

- one Optuna trial per item (``trial_007``): every seed of a swept ``CONFIG_SEED`` runs the same
  configuration, and the sampler is told the mean over the seeds once the last one reports;
- no configuration runs twice: a proposal equal to a finished configuration is told that result
  and drawn again (up to :data:`MAX_DRAWS` times, or once when the space is used up); one equal to
  a configuration still running elsewhere is told "failed" and drawn again; after the last draw
  the item reuses the finished result (it is skipped: nothing trained);
- a resumed item finds its trial: a finished seed is reused, a failed configuration runs again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_sweep.matrix import files
from pytest_sweep.matrix.objectives import METRICS, Constraint, Objective
from pytest_sweep.matrix.space import SearchSpace

if TYPE_CHECKING:
    import optuna

JOURNAL_FILE = files.STUDY_JOURNAL
LOCK_FILE = files.STUDY_LOCK
STUDY_NAME = "sweep"
#: Draws per item before a duplicate proposal is accepted (its result reused).
MAX_DRAWS = 20
#: The packages each sampler needs beyond Optuna (module name, pip name).
PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "random": (),
    "qmc": (("scipy", "scipy"),),
    "tpe": (),
    "gp": (("torch", "torch"), ("scipy", "scipy")),
    "cmaes": (("cmaes", "cmaes"),),
    "nsga2": (),
}


def missing_packages(search: str) -> list[str]:
    """The pip names of what ``--sweep-search=search`` needs and this environment lacks."""
    need = (("optuna", "optuna"), *PACKAGES.get(search, ()))
    return [pip for module, pip in need if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked in sys.modules
        return False


@dataclass(frozen=True)
class Proposal:
    """What an item runs: the configuration's raw values, its study trial, and what to reuse.

    :ivar reuse: this seed's finished result (a resumed item): the item trains nothing.
    :ivar duplicate_of: the item whose configuration this is (every draw repeated a finished one).
    """

    raw: dict[str, str]
    number: int
    reuse: dict[str, Any] | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class SeedResult:
    """One seed's outcome, as the study keeps it (a user attribute of the trial)."""

    status: str
    values: dict[str, float | None]
    record: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "values": self.values, "record": self.record}


class SearchStore(Protocol):
    """The calls a sampled item makes; every implementation serialises them across processes."""

    def propose(self, slot: str, seed: str) -> Proposal:
        """The configuration item ``slot`` runs with seed ``seed`` ("" when seeds are not swept)."""
        ...

    def report(self, slot: str, seed: str, number: int, result: SeedResult) -> None:
        """One seed of ``slot`` ended; the sampler is told once every seed of the slot has."""
        ...


class StudyError(Exception):
    """The study cannot be opened or used (a damaged journal, another search's study)."""


def make_sampler(
    search: str, seed: int, objectives: tuple[Objective, ...], constraints: tuple[Constraint, ...], trials: int
) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for ``search``.

    Constraints reach the samplers that use them (tpe, gp, nsga2) through each trial's constraint
    values (``Trial.set_constraint``, which Optuna 5 prefers to a ``constraints_func``).
    """
    import optuna.samplers as s

    if search == "random":
        return s.RandomSampler(seed=seed)
    if search == "qmc":
        return s.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False, warn_asynchronous_seeding=False)
    if search == "tpe":
        return s.TPESampler(seed=seed, multivariate=True)
    if search == "gp":
        return s.GPSampler(seed=seed, warn_independent_sampling=False)
    if search == "cmaes":
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if search == "nsga2":
        return s.NSGAIISampler(seed=seed, population_size=min(50, max(4, trials // 4)))
    raise ValueError(f"unknown search {search!r}")


def _key(raw: dict[str, str]) -> str:
    return json.dumps(raw, sort_keys=True)


def _mean(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(v for v in values if v is not None)


class JournalSearchStore:
    """:class:`SearchStore` in Optuna's journal storage in the sweep folder (one machine or a shared disk).

    :param worker_index: 0 for the first process (serial run, ``gw0``, ``ray1``): the sampler's seed
        is offset by it (and by the trials already in the study), so parallel workers and a resumed
        run do not repeat each other's draws; QMC keeps one seed (its sequence is shared).
    """

    def __init__(
        self,
        folder: Path,
        space: SearchSpace,
        search: str,
        *,
        seed: int,
        objectives: tuple[Objective, ...],
        constraints: tuple[Constraint, ...] = (),
        trials: int = 1,
        worker_index: int = 0,
    ) -> None:
        self.folder = folder
        self.space = space
        self.search = search
        self.seed = seed
        self.objectives = objectives
        self.constraints = constraints
        self.trials = trials
        self.worker_index = worker_index
        self.seeds = space.seeds or ("",)
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The settings without the opened study (the Ray backend ships the store to the actor holding it)."""
        return {**self.__dict__, "_study": None}

    # -- the study -----------------------------------------------------------------------------
    @property
    def journal(self) -> Path:
        return self.folder / JOURNAL_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.name == "posix":
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)  # released by the OS if this process dies
            with warnings.catch_warnings():
                import optuna

                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def open(self) -> optuna.Study:
        """Create or load the study (call under the lock); :class:`StudyError` when it is unusable."""
        if self._study is not None:
            return self._study
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            storage = JournalStorage(JournalFileBackend(str(self.journal)))
            study = optuna.create_study(
                study_name=STUDY_NAME,
                storage=storage,
                directions=["maximize" if o.direction == "max" else "minimize" for o in self.objectives],
                load_if_exists=True,
            )
            trials = study.get_trials(deepcopy=False)
        except Exception as exc:
            raise StudyError(f"the study {self.journal} cannot be read ({type(exc).__name__}: {exc})") from None
        self._check_identity(study)
        offset = 0 if self.search == "qmc" else self.worker_index * 7919 + len(trials)
        study.sampler = make_sampler(
            self.search, (self.seed + offset) % 2**32, self.objectives, self.constraints, self.trials
        )
        self._study = study
        return study

    def _check_identity(self, study: optuna.Study) -> None:
        identity = {
            "search": self.search,
            "space": self.space.signature(),
            "objectives": [str(o) for o in self.objectives],
        }
        known = study.user_attrs.get("identity")
        if known is None:
            study.set_user_attr("identity", identity)
        elif known != identity:
            diff = ", ".join(f"{k} {known.get(k)} -> {v}" for k, v in identity.items() if known.get(k) != v)
            raise StudyError(f"the study in {self.folder} was made by another search ({diff})")

    def check(self) -> int:
        """Open the study (a resumed sweep's, before anything runs); how many trials it holds."""
        with self._locked():
            return len(self.open().get_trials(deepcopy=False))

    # -- ask -----------------------------------------------------------------------------------
    def propose(self, slot: str, seed: str) -> Proposal:
        with self._locked():
            study = self.open()
            trials = study.get_trials(deepcopy=False)
            mine = [t for t in trials if t.user_attrs.get("slot") == slot]
            if mine:
                last = mine[-1]
                if last.state.name != "FAIL" or last.user_attrs.get("dup_of"):
                    return self._from(last, seed)
                return self._from(self._again(study, last), seed)  # a failed configuration runs again
            return self._draw(study, trials, slot, seed)

    def _from(self, trial: optuna.trial.FrozenTrial, seed: str) -> Proposal:
        result = trial.user_attrs.get(f"seed:{seed}")
        reuse = result if isinstance(result, dict) and result.get("status") in ("passed", "stopped") else None
        return Proposal(dict(trial.user_attrs["raw"]), trial.number, reuse, trial.user_attrs.get("dup_of"))

    def _handle(self, study: optuna.Study, number: int) -> optuna.trial.Trial:
        import optuna

        frozen = study.get_trials(deepcopy=False)[number]
        return optuna.trial.Trial(study, frozen._trial_id)  # the public Trial, on a trial asked elsewhere

    def _again(self, study: optuna.Study, failed: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        study.enqueue_trial(dict(failed.params), skip_if_exists=False)
        trial = study.ask(self.space.distributions())  # ours: every ask holds the lock
        for key, value in failed.user_attrs.items():
            if key in ("slot", "raw", "key") or (
                key.startswith("seed:") and isinstance(value, dict) and value.get("status") in ("passed", "stopped")
            ):
                trial.set_user_attr(key, value)
        trial.set_user_attr("rerun_of", failed.number)
        return study.get_trials(deepcopy=False)[trial.number]

    def _draw(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial], slot: str, seed: str) -> Proposal:
        owners = [t for t in trials if "slot" in t.user_attrs and t.state.name != "FAIL"]
        finished = {t.user_attrs.get("key") for t in owners if t.state.name in ("COMPLETE", "PRUNED")}
        exhausted = len(finished) >= self.space.size
        dists = self.space.distributions()
        draws = 1 if exhausted else MAX_DRAWS
        for draw in range(draws):
            trial = study.ask(dists)
            raw = self.space.raw(trial.params)
            key = _key(raw)
            trial.set_user_attr("raw", raw)
            trial.set_user_attr("key", key)
            same = [t for t in owners if t.user_attrs.get("key") == key]
            last = draw == draws - 1
            if not same or (last and same[-1].state.name == "RUNNING"):
                trial.set_user_attr("slot", slot)
                return Proposal(raw, trial.number)
            original = same[-1]
            if original.state.name == "RUNNING":
                trial.set_user_attr("dup_of_running", original.user_attrs["slot"])
                study.tell(trial.number, state=_state("FAIL"))
                continue
            trial.set_user_attr("dup_of", original.user_attrs["slot"])
            for name, value in (original.user_attrs.get("constraints") or {}).items():
                trial.set_user_attr("constraints", original.user_attrs["constraints"])
                trial.set_constraint(name, float(value))
            if last:
                trial.set_user_attr("slot", slot)
                for key_, value in original.user_attrs.items():
                    if key_.startswith("seed:"):
                        trial.set_user_attr(key_, value)
            if original.state.name == "COMPLETE":
                study.tell(trial.number, list(original.values))
            else:
                study.tell(trial.number, state=_state("PRUNED"))
            if last:
                return self._from(study.get_trials(deepcopy=False)[trial.number], seed)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- tell ----------------------------------------------------------------------------------
    def report(self, slot: str, seed: str, number: int, result: SeedResult) -> None:
        with self._locked():
            study = self.open()
            frozen = study.get_trials(deepcopy=False)[number]
            if frozen.state.is_finished():
                return  # told already (a duplicate, or a seed reported twice)
            handle = self._handle(study, number)
            handle.set_user_attr(f"seed:{seed}", result.to_json())
            results = {**frozen.user_attrs, f"seed:{seed}": result.to_json()}
            got = [results.get(f"seed:{s}") for s in self.seeds]
            if any(r is None for r in got):
                return  # other seeds still to come
            done = [r for r in got if r is not None]
            statuses = {r["status"] for r in done}
            means = {m: _mean([r["values"].get(m) for r in done]) for m in METRICS}
            if self.constraints:
                violations = {str(c): c.violation(means.get(c.metric)) for c in self.constraints}
                handle.set_user_attr("constraints", violations)
                for name, value in violations.items():
                    handle.set_constraint(name, value)
            handle.set_user_attr("means", means)
            if statuses - {"passed", "stopped"}:
                study.tell(number, state=_state("FAIL"))
            elif "stopped" in statuses:
                study.tell(number, state=_state("PRUNED"))
            else:
                values = [means.get(o.metric) for o in self.objectives]
                if any(v is None or not math.isfinite(v) for v in values):
                    handle.set_user_attr(
                        "missing", [o.metric for o, v in zip(self.objectives, values, strict=True) if v is None]
                    )
                    study.tell(number, state=_state("FAIL"))
                else:
                    study.tell(number, [float(v) for v in values if v is not None])

    # -- for reports, tests and benchmarks -----------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Trials by state, and the items (slots) among them."""
        with self._locked():
            trials = self.open().get_trials(deepcopy=False)
        out: dict[str, int] = {}
        for t in trials:
            out[t.state.name] = out.get(t.state.name, 0) + 1
        out["slots"] = len({t.user_attrs["slot"] for t in trials if "slot" in t.user_attrs})
        return out


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


def worker_index(worker: str) -> int:
    """``main`` -> 0, ``gw3`` -> 3, ``ray2`` -> 2; anything else a stable number."""
    digits = "".join(ch for ch in worker if ch.isdigit())
    if worker == "main":
        return 0
    return int(digits) if digits else zlib.crc32(worker.encode()) % 1000
