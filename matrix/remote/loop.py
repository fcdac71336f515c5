"""The backend loop: the controller's ``pytest_runtestloop`` when trials run on a backend's workers.

The controller stays the user's pytest process: it collects and selects (``-k``, ``--lf``, ``-x``),
owns the terminal, ``--junitxml``, the cache and the sweep summary.  Only the run loop changes, as
in pytest-xdist's ``DSession``: :meth:`BackendLoop.loop_once` hands idle workers the node ids of
the selected items, then takes one event off its queue (:mod:`.protocol`; a backend's
:class:`~.protocol.Dispatcher` puts them there) and calls its handler, ``worker_<event>``.  A
worker answers with the item's reports in xdist's wire format (``pytest_report_to_serializable``),
which the loop feeds through pytest's own report hooks (``pytest_runtest_logstart`` →
``pytest_report_from_serializable`` → ``pytest_runtest_logreport`` → ``pytest_runtest_logfinish``),
so every reporter, junitxml and :class:`.Controller` see what a serial run shows them, and the
record still travels in ``user_properties``.

Every decision about a fault is taken here:

=====================================  ===========================================================
the worker's process died, node alive  the trial fails as ``worker 'rayN' crashed while running
(:class:`~.protocol.WorkerCrashed`)    '<node id>'`` (xdist's wording and record); a fresh worker
                                       replaces it
its node died (:class:`~.protocol.     the trial runs again on another worker, at most
NodeLost`)                             ``--sweep-ray-node-retries`` times (Ray's; default 1); its
                                       record lists why under ``requeued``
the worker stopped answering           it is killed first, then as a dead node (the trial may have
(:class:`~.protocol.                   run twice: trial files are written atomically, the last
WorkerUnresponsive`)                   complete result wins)
it overran ``--sweep-trial-timeout``   the worker enforces the limit itself (``SIGALRM``); one that
by :func:`overrun_margin`              does not return (a hang inside a CUDA kernel or NCCL) is
(:class:`~.protocol.TrialOverrun`)     killed and the trial fails
Ctrl-C on the controller               every worker is killed; the summary lists the rest as not run
SIGTERM on the controller              a preemption: no new trial starts, the running ones reach a
                                       checkpoint, the summary is written, the run exits 75
=====================================  ===========================================================

A lost worker is replaced by a fresh one (``rayN`` counts on) while trials still wait; the fresh one
may wait for the cluster to find it a GPU.
"""

from __future__ import annotations

import json
import queue
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, assert_never

import pytest

from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.records import TrialRecord
from pytest_sweep.matrix.remote.protocol import (
    Connect,
    Dispatcher,
    Event,
    NodeLost,
    TrialOverrun,
    TrialReport,
    TrialReturned,
    WorkerCrashed,
    WorkerError,
    WorkerInfo,
    WorkerReady,
    WorkerStartFailed,
    WorkerUnresponsive,
)
from pytest_sweep.matrix.runner import one_line

if TYPE_CHECKING:
    from pytest_sweep.matrix.controller import Controller
    from pytest_sweep.matrix.progress import TrialTicker

#: How often the loop wakes up (Ctrl-C, overrun checks) while it waits for results.
POLL_SECONDS = 0.5
#: Workers that die while starting, one after another, before the sweep gives up.
START_FAILURES = 3
#: Seconds trials wait without any live worker before the terminal says so.
WAIT_NOTICE_SECONDS = 60.0


def overrun_margin(timeout: float) -> float:
    """How long past ``--sweep-trial-timeout`` a worker may take to return before it is killed."""
    return 10.0 + 0.1 * timeout


def warning_message(data: dict[str, Any]) -> warnings.WarningMessage:
    """A worker's warning (``warning_data``) as this process's ``WarningMessage``.

    Its category is looked up among the modules already imported here, never imported: the
    controller loaded the same plugins and conftest files.  One not found becomes a
    ``UserWarning`` whose message names it.
    """
    module, qualname = data["category"]
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    text = str(data["message"])
    message: Warning | None = None
    if isinstance(found, type) and issubclass(found, Warning):
        try:
            message = found(text)
        except Exception:  # a warning class with a constructor of its own
            message = None
    if message is None:
        message = UserWarning(f"{module}.{qualname}: {text}")
    return warnings.WarningMessage(message, type(message), data["filename"], data["lineno"], line=data.get("line"))


def annotate(data: dict[str, Any], fields: dict[str, Any]) -> None:
    """Add ``fields`` to the sweep record inside a serialized report (``user_properties``)."""
    props = data.get("user_properties") or []
    for i, prop in enumerate(props):
        key, value = prop
        if key == TrialRecord.WIRE_KEY:
            record = json.loads(value)
            record.update(fields)
            props[i] = TrialRecord.wire(record)


def refuse(reports: list[dict[str, Any]], why: str) -> None:
    """Fail a trial's reports with ``why`` (its files did not reach the sweep folder); the record
    keeps what the trial measured."""
    for data in reports:
        annotate(data, {"status": "failed", "error": why})
        if data.get("when") == "call":
            data["outcome"] = "failed"
            data["longrepr"] = why


@dataclass
class Worker:
    """One worker as the loop sees it."""

    id: str
    info: WorkerInfo | None = None  # None while it starts
    nodeid: str | None = None  # the item it runs; None while starting or idle
    started: float = 0.0  # when it was handed that item (the loop's clock)
    returned: bool = False  # that item's run returned; its files are on the way
    alive: bool = True

    @property
    def ready(self) -> bool:
        return self.alive and self.info is not None

    @property
    def where(self) -> str:
        return str(self.fields()["node"] or "?")

    def fields(self) -> dict[str, Any]:
        """What a record run by this worker says about where it ran."""
        info = self.info
        return {
            "worker": self.id,
            "node": info.get("ip") if info is not None else None,
            "node_id": info.get("node_id") if info is not None else None,
        }


class BackendLoop:
    """The controller's run loop over a backend's workers (one instance per run, registered as a plugin).

    :param connect: makes the backend's :class:`~.protocol.Dispatcher`, given where its events go.
    :param label: the backend's name in messages (``Ray``).
    :param node_retries: how often a trial whose node died runs again, and the option that says so.
    :param clock: the loop's clock (trial deadlines, the waiting notice).
    """

    def __init__(
        self,
        config: pytest.Config,
        controller: Controller,
        ticker: TrialTicker | None,
        connect: Connect,
        *,
        label: str,
        node_retries: tuple[int, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.controller = controller
        self.ticker = ticker
        self.connect = connect
        self.label = label
        self.clock = clock
        opts = sweep_options(config)
        self.timeout = opts.trial_timeout
        self.node_retries, self.retries_option = node_retries
        self.resume = opts.resume is not None
        self.queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.items: dict[str, pytest.Item] = {}
        self.pending: deque[str] = deque()
        self.requeued: dict[str, list[str]] = {}
        self.workers: dict[str, Worker] = {}  # every worker started, dead ones included
        self.idle: list[Worker] = []
        self.start_failures = 0
        self.waiting_since: float | None = None
        self._session: pytest.Session | None = None
        self._dispatcher: Dispatcher | None = None

    @property
    def session(self) -> pytest.Session:
        assert self._session is not None, "the loop has not started"
        return self._session

    @property
    def dispatcher(self) -> Dispatcher:
        assert self._dispatcher is not None, "the loop has not started"
        return self._dispatcher

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None  # pytest's own loop stops the run with its message
        if session.config.option.collectonly:
            return None
        if not session.items:
            return True
        self._session = session
        self.items = {item.nodeid: item for item in session.items}
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            reporter.showfspath = False  # as xdist does: results arrive in any order
        dispatcher = self._dispatcher = self.connect(self.queue.put)
        try:
            self.start([item.nodeid for item in session.items])
            while self.loop_once():
                pass
        except BaseException:  # Ctrl-C, SIGTERM, a usage error: kill the workers at once
            dispatcher.close(finish=())
            raise
        dispatcher.close(finish=[worker.id for worker in self.idle])  # their sessions finish first
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def start(self, nodeids: list[str]) -> None:
        startup = self.dispatcher.start(len(nodeids))
        self.say(f"sweep: {startup.banner}")
        self.pending.extend(nodeids)
        for _ in range(startup.workers):
            self.spawn()

    def loop_once(self) -> bool:
        """Hand idle workers trials, then handle one event (waiting up to a poll interval for one).

        False when the run is over: nothing runs and nothing waits, or no worker is left to run
        what waits.
        """
        if not self.pending and not any(w.nodeid for w in self.workers.values()):
            return False
        session = self.session
        if session.shouldfail or session.shouldstop:
            self.pending.clear()  # -x / --maxfail: what runs finishes, nothing new starts
        self.dispatch()
        if not any(w.alive and (w.info is None or w.nodeid) for w in self.workers.values()):
            return False  # no worker starts or runs a trial: none could take what waits
        if self.queue.empty():
            self.dispatcher.poll(self.poll_seconds())
        if not self.queue.empty():
            self.handle(self.queue.get_nowait())
        self.check_overruns()
        self.check_waiting()
        return True

    def handle(self, event: Event) -> None:
        """Call the event's handler (xdist's ``worker_<event>``)."""
        match event:
            case WorkerReady():
                self.worker_ready(event)
            case WorkerStartFailed():
                self.worker_start_failed(event)
            case TrialReturned():
                self.worker_returned(event)
            case TrialReport():
                self.worker_report(event)
            case WorkerCrashed():
                self.worker_crashed(event)
            case NodeLost():
                self.worker_node_lost(event)
            case WorkerUnresponsive():
                self.worker_unresponsive(event)
            case WorkerError():
                self.worker_error(event)
            case TrialOverrun():
                self.worker_overrun(event)
            case _:
                assert_never(event)

    # -- the handlers, one per event ----------------------------------------------------------
    def worker_ready(self, event: WorkerReady) -> None:
        worker = self.workers[event.worker]
        self.start_failures = 0
        info = worker.info = event.info
        if info["error"]:
            raise pytest.UsageError(f"sweep: worker {worker.id!r} on {info['host']} could not start: {info['error']}")
        gpus = f", GPU {info['gpus']}" if info.get("gpus") else ""
        ship = "; trial files shipped back (node-local output)" if info["ship"] else ""
        self.say(
            f"sweep: {worker.id} ready on {info['host']} ({info['ip']}{gpus}): "
            f"{info['items']} items collected in {info['seconds']:.1f} s{ship}"
        )
        for error in info["collect_errors"]:
            self.say(f"sweep: {worker.id} collection error: {error}", yellow=True)
        if info["ship"] and self.resume:
            self.dispatcher.seed(worker.id, self.finished_files())  # before its first trial
        self.idle.append(worker)
        self.workers_ready()

    def worker_start_failed(self, event: WorkerStartFailed) -> None:
        worker = self.workers[event.worker]
        self.start_failures += 1
        self.lose(worker)
        if self.start_failures >= START_FAILURES:
            pytest.exit(
                f"sweep: {self.start_failures} {self.label} workers died while starting; the last: "
                f"{one_line(event.error, 500)}",
                returncode=pytest.ExitCode.INTERNAL_ERROR,
            )
        starting = self.replace()
        self.say(f"sweep: worker {worker.id!r} died while starting ({one_line(event.error)}){starting}")

    def worker_returned(self, event: TrialReturned) -> None:
        worker = self.workers[event.worker]
        if worker.nodeid == event.nodeid:
            worker.returned = True  # its files cross now: past --sweep-trial-timeout's reach

    def worker_report(self, event: TrialReport) -> None:
        worker, nodeid = self.workers[event.worker], event.nodeid
        worker.nodeid = None
        if event.error is not None:
            self.fail(nodeid, event.error, "", self.fields(nodeid, worker))
        else:
            self.forward(event)
            if event.refused is not None and any(data.get("outcome") == "failed" for data in event.reports):
                self.say(f"sweep: {self.name(nodeid)}: {event.refused}", yellow=True)  # failed for its own reason
            elif event.refused is not None:
                refuse(event.reports, event.refused)
            self.feed(nodeid, event.reports, self.fields(nodeid, worker))
        self.idle.append(worker)

    def worker_crashed(self, event: WorkerCrashed) -> None:
        worker, nodeid = self.workers[event.worker], event.nodeid
        worker.nodeid = None
        self.lose(worker)
        message = f"worker {worker.id!r} crashed while running {nodeid!r}"
        starting = self.replace()
        self.say(f"sweep: {message}{starting}", red=True)
        self.fail(nodeid, message, str(event.error), self.fields(nodeid, worker), crashed=True)

    def worker_node_lost(self, event: NodeLost) -> None:
        worker = self.workers[event.worker]
        worker.nodeid = None
        reason = f"node {worker.where} of worker {worker.id!r} died"
        self.requeue_or_fail(event.nodeid, worker, reason, event.error)

    def worker_unresponsive(self, event: WorkerUnresponsive) -> None:
        worker = self.workers[event.worker]
        worker.nodeid = None
        self.dispatcher.kill(worker.id)
        reason = f"worker {worker.id!r} on {worker.where} stopped answering"
        self.requeue_or_fail(event.nodeid, worker, reason, event.error)

    def worker_error(self, event: WorkerError) -> None:
        """An error in the worker's own code (not the trial's): its session may be broken."""
        worker, nodeid = self.workers[event.worker], event.nodeid
        worker.nodeid = None
        self.dispatcher.kill(worker.id)
        self.lose(worker)
        error = f"worker {worker.id!r} failed: {one_line(event.error)}"
        starting = self.replace()
        self.say(f"sweep: {error}{starting}", red=True)
        self.fail(nodeid, error, str(event.error), self.fields(nodeid, worker))

    def worker_overrun(self, event: TrialOverrun) -> None:
        worker, nodeid = self.workers[event.worker], event.nodeid
        if worker.nodeid != nodeid:
            return  # it returned meanwhile
        worker.nodeid = None
        self.dispatcher.kill(worker.id)
        self.lose(worker)
        error = (
            f"timed out after {event.timeout:g} s (--sweep-trial-timeout); worker {worker.id!r} did not "
            f"return and was killed after {event.seconds:.0f} s"
        )
        starting = self.replace()
        self.say(f"sweep: {error}{starting}", red=True)
        self.fail(nodeid, error, "", self.fields(nodeid, worker))

    # -- the policy -----------------------------------------------------------------------------
    def requeue_or_fail(self, nodeid: str, worker: Worker, reason: str, error: BaseException) -> None:
        """The trial's node died (or its worker stopped answering): run it again elsewhere, or fail it."""
        self.lose(worker)
        done = self.requeued.setdefault(nodeid, [])
        name = self.name(nodeid)
        if len(done) < self.node_retries:
            done.append(reason)
            self.pending.appendleft(nodeid)
            again = f"; {name} runs again ({len(done)} of {self.node_retries})"
            starting = self.replace()
            self.say(f"sweep: {reason} while running {name}{again}{starting}", yellow=True)
        else:
            message = f"{reason} while running it; not run again ({self.retries_option}={self.node_retries})"
            starting = self.replace()
            self.say(f"sweep: {message}{starting}", red=True)
            self.fail(nodeid, message, str(error), self.fields(nodeid, worker))

    def dispatch(self) -> None:
        while self.idle and self.pending:
            worker = self.idle.pop(0)
            worker.nodeid = self.pending.popleft()
            worker.started = self.clock()
            worker.returned = False
            trial = getattr(self.items[worker.nodeid], "trial", None)
            self.dispatcher.submit(worker.id, worker.nodeid, None if trial is None else str(trial.folder))

    def spawn(self) -> str:
        worker_id = self.dispatcher.spawn()
        self.workers[worker_id] = Worker(worker_id)
        return worker_id

    def replace(self) -> str:
        """A fresh worker for a lost one, while there is work it could do: ``"; starting rayN"``, else ``""``."""
        if not self.pending:
            return ""
        return f"; starting {self.spawn()}"

    def lose(self, worker: Worker) -> None:
        worker.alive = False
        if worker in self.idle:
            self.idle.remove(worker)
        self.workers_ready()

    def workers_ready(self) -> None:
        if self.ticker is not None:
            self.ticker.workers = sum(1 for w in self.workers.values() if w.ready)

    def fields(self, nodeid: str, worker: Worker) -> dict[str, Any]:
        fields = worker.fields()
        if nodeid in self.requeued:
            fields["requeued"] = list(self.requeued[nodeid])
        return fields

    def poll_seconds(self) -> float:
        if self.timeout is None:
            return POLL_SECONDS
        now = self.clock()
        limit = self.timeout + overrun_margin(self.timeout)
        deadlines = [w.started + limit - now for w in self.workers.values() if w.nodeid and not w.returned]
        return max(0.05, min([POLL_SECONDS, *deadlines]))

    def check_overruns(self) -> None:
        """The loop's own events: trials that ran past ``--sweep-trial-timeout`` and its margin."""
        if self.timeout is None:
            return
        now = self.clock()
        limit = self.timeout + overrun_margin(self.timeout)
        for worker in list(self.workers.values()):
            if worker.nodeid is not None and not worker.returned and now - worker.started > limit:
                self.handle(TrialOverrun(worker.id, worker.nodeid, self.timeout, now - worker.started))

    def check_waiting(self) -> None:
        """Say once when trials wait and no worker is up (the cluster lacks the resources for one)."""
        if not self.pending or any(w.ready for w in self.workers.values()):
            self.waiting_since = None
            return
        now = self.clock()
        if self.waiting_since is None:
            self.waiting_since = now
        elif now - self.waiting_since > WAIT_NOTICE_SECONDS:
            self.say(
                f"sweep: {len(self.pending)} trials wait for a worker; {self.dispatcher.why_waiting()}; "
                "Ctrl-C stops the sweep and writes its summary",
                yellow=True,
            )
            self.waiting_since = float("inf")

    # -- results, through pytest's hooks ------------------------------------------------------
    def say(self, line: str, **markup: bool) -> None:
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is None:
            return
        writer = getattr(reporter, "_tw", None)  # pytest's progress leaves its line open
        if writer is not None and int(getattr(writer, "width_of_current_line", 0)):
            reporter.write("\n")
        reporter.write_line(line, **markup)

    def name(self, nodeid: str) -> str:
        """A trial's config name (``config_002``), else the item's name."""
        item = self.items[nodeid]
        trial = getattr(item, "trial", None)
        return str(trial.name) if trial is not None else item.name

    def forward(self, event: TrialReport) -> None:
        """The trial's warnings into this session's warnings summary (as xdist's
        ``worker_warning_recorded``), and its uncaptured stderr (``-s``) to this process's stderr."""
        for data in event.warnings:
            location = data.get("location")
            self.config.hook.pytest_warning_recorded.call_historic(
                kwargs={
                    "warning_message": warning_message(data),
                    "when": "runtest",
                    "nodeid": data.get("nodeid", event.nodeid),
                    "location": tuple(location) if location else None,
                }
            )
        if event.stderr:
            sys.stderr.write(event.stderr)
            sys.stderr.flush()

    def feed(self, nodeid: str, reports: list[dict[str, Any]], fields: dict[str, Any]) -> None:
        """A worker's reports for ``nodeid``, through pytest's report hooks as if run here."""
        item = self.items[nodeid]
        item.ihook.pytest_runtest_logstart(nodeid=nodeid, location=item.location)
        for data in reports:
            annotate(data, fields)
            report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)

    def fail(self, nodeid: str, error: str, detail: str, fields: dict[str, Any], *, crashed: bool = False) -> None:
        """A trial that no worker reported on (its process or node died, it was killed): fails here.

        A crash is recorded as xdist records one (``Controller.crash``, error ``worker crashed: ...``).
        """
        item = self.items[nodeid]
        record = self.controller.expected_record(nodeid)
        props: list[tuple[str, object]] = []
        if record is not None:
            record.update(status="failed", error=f"worker crashed: {error}" if crashed else error, **fields)
            props.append(TrialRecord.wire(record))
        if crashed:
            self.controller.crash(nodeid, error)
        report = pytest.TestReport(
            nodeid=nodeid,
            location=item.location,
            keywords={},
            outcome="failed",
            longrepr=f"{error}\n{detail}".strip(),  # xdist's crash line first, then what the backend said
            when="call",
            user_properties=props,
        )
        item.ihook.pytest_runtest_logstart(nodeid=nodeid, location=item.location)
        item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)

    def finished_files(self) -> dict[str, bytes]:
        """``--sweep-resume`` from a node-local folder: the finished trials' metrics to seed it with."""
        found: dict[str, bytes] = {}
        for path in sorted(self.controller.dir.glob("*/training_metrics.json")):
            found[path.relative_to(self.controller.dir).as_posix()] = path.read_bytes()
        return found
