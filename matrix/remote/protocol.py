"""What the backend loop needs from a backend: a :class:`Dispatcher`, and the events it emits.

As xdist's nodes put ``(name, kwargs)`` onto ``DSession.queue``, a dispatcher puts one event per
thing that happened to a worker onto the loop's queue (``putevent``), from :meth:`Dispatcher.poll`.
It only reports; every decision (run a trial again, fail it, replace the worker, stop) is the
loop's.  The loop adds one event of its own, :class:`TrialOverrun`, from its clock.

=============================  =============================================================
:class:`WorkerReady`           a worker started and collected; ``info`` says where and what
:class:`WorkerStartFailed`     a worker died before it was ready
:class:`TrialReturned`         a worker's trial returned; its files are on the way (the report follows)
:class:`TrialReport`           a worker ran a trial: its reports (or why it could not run it)
:class:`WorkerCrashed`         a worker's process died during a trial; its node is alive
:class:`NodeLost`              a worker's node died during a trial
:class:`WorkerUnresponsive`    a worker stopped answering during a trial
:class:`WorkerError`           running a trial raised in the worker's own code (not the trial's)
:class:`TrialOverrun`          (the loop's clock) a trial ran past its limit and did not return
=============================  =============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict


class WorkerInfo(TypedDict):
    """What a ready worker says about itself (the Ray actor's ``ready()``)."""

    pid: int
    host: str
    ip: str
    node_id: str | None
    gpus: str | None  # the GPU ids it sees (CUDA_VISIBLE_DEVICES), None for none
    items: int  # items its session collected
    collect_errors: list[str]
    ship: bool  # it writes into a folder of its own and ships trial files back
    error: str | None  # why its session cannot run anything (the run stops with a usage error)
    seconds: float  # how long it took to start and collect


@dataclass(frozen=True)
class WorkerReady:
    worker: str
    info: WorkerInfo


@dataclass(frozen=True)
class WorkerStartFailed:
    worker: str
    error: BaseException


@dataclass(frozen=True)
class TrialReturned:
    """The trial ran to its end on the worker, whose files now cross to the controller: its time
    limit no longer applies (a large file may take long); :class:`TrialReport` follows."""

    worker: str
    nodeid: str


@dataclass(frozen=True)
class TrialReport:
    """``reports``: the item's reports as ``pytest_report_to_serializable`` made them; ``error``: why
    the worker did not run the item (then there are no reports); ``warnings``: the warnings its
    session recorded while running it (the worker's ``warning_data``); ``stderr``: what the trial
    wrote to ``sys.stderr`` past pytest's capture (``-s``); ``refused``: why the trial's files did
    not reach the sweep folder (a file over ``--sweep-ray-ship-limit``): the trial fails with it."""

    worker: str
    nodeid: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""
    refused: str | None = None


@dataclass(frozen=True)
class _TrialLost:
    """A worker's trial that ended without its report; each subclass says how."""

    worker: str
    nodeid: str
    error: BaseException


class WorkerCrashed(_TrialLost):
    """The worker's process died."""


class NodeLost(_TrialLost):
    """The worker's node left the cluster."""


class WorkerUnresponsive(_TrialLost):
    """The worker stopped answering."""


class WorkerError(_TrialLost):
    """An error in the worker's own code (not the trial's) while it ran the trial."""


@dataclass(frozen=True)
class TrialOverrun:
    worker: str
    nodeid: str
    timeout: float  # --sweep-trial-timeout
    seconds: float  # how long it has run


Event = (
    WorkerReady
    | WorkerStartFailed
    | TrialReturned
    | TrialReport
    | WorkerCrashed
    | NodeLost
    | WorkerUnresponsive
    | WorkerError
    | TrialOverrun
)
#: Where a dispatcher puts its events (the loop's ``queue.put``).
PutEvent = Callable[[Event], None]


@dataclass(frozen=True)
class Startup:
    """What :meth:`Dispatcher.start` found: a line for the terminal, and how many workers to start."""

    banner: str
    workers: int


class Dispatcher(Protocol):
    """A backend's pool of workers, as the loop sees it (one implementation per backend).

    Workers are named by the ids :meth:`spawn` returns (``ray1``, ``ray2``...).  Every method but
    :meth:`poll` returns at once; what comes of it arrives later as events.
    """

    def start(self, items: int) -> Startup:
        """Connect to the cluster and size the pool for ``items`` trials (a usage error if it cannot)."""
        ...

    def spawn(self) -> str:
        """Start one more worker; :class:`WorkerReady` or :class:`WorkerStartFailed` follows."""
        ...

    def submit(self, worker: str, nodeid: str, trial_dir: str | None = None) -> None:
        """Hand an idle, ready worker one trial (in the sweep folder's ``trial_dir``, None for an item
        that is not a trial); one trial event about it follows, once its files are in."""
        ...

    def seed(self, worker: str, files: dict[str, bytes]) -> None:
        """Give a worker with a folder of its own the finished trials' files, before its first trial."""
        ...

    def kill(self, worker: str) -> None:
        """Kill a worker at once; nothing more is heard from it."""
        ...

    def poll(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for something to happen; put it on the queue."""
        ...

    def why_waiting(self) -> str:
        """Why no worker is up while trials wait (the cluster's free resources), for the terminal."""
        ...

    def close(self, finish: Collection[str]) -> None:
        """Stop every worker and disconnect; the ``finish`` ones first end their sessions."""
        ...


#: How a backend makes its dispatcher, given where to put events.
Connect = Callable[[PutEvent], Dispatcher]
