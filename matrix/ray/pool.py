"""The Ray actors of a ``--sweep-backend=ray`` run: the Ray backend's :class:`~..remote.protocol.Dispatcher`.

Ray's own retries are off (``max_restarts=0``, ``max_task_retries=0``; no plain remote tasks are
used, so ``max_retries`` never applies): what happens to a trial is the backend loop's decision
(:mod:`pytest_sweep.matrix.remote.loop`), from the event this pool makes of what Ray reports:

=============================================  =======================================
Ray's answer                                   event
=============================================  =======================================
``ready()`` returned                           ``WorkerReady``
``ready()`` raised (the actor died starting)   ``WorkerStartFailed``
``run(nodeid)`` returned, files to fetch       ``TrialReturned``, then ``TrialReport``
                                               once every file is in
``run(nodeid)`` returned, nothing to fetch     ``TrialReport``
``ActorUnavailableError``                      ``WorkerUnresponsive``
``RayActorError``, the actor's node alive      ``WorkerCrashed``
``RayActorError``, the actor's node dead       ``NodeLost``
any other ``RayError``                         ``WorkerError``
=============================================  =======================================

A node without the sweep folder ships the trial's files after ``run`` (:mod:`.shipping`) and each
checkpoint as it is written (:mod:`.inbox`); a trial that runs again elsewhere gets its newest
checkpoint first (:meth:`ActorPool.carry`).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import cloudpickle
from ray.exceptions import ActorUnavailableError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pytest_sweep.matrix import scheduler_hook, storage
from pytest_sweep.matrix import search as sweep_search
from pytest_sweep.matrix.checkpoints import FOLDER, checkpoint_files
from pytest_sweep.matrix.options import format_size, sweep_options
from pytest_sweep.matrix.preempt import PREEMPTION_KEY
from pytest_sweep.matrix.ray import inbox as ray_inbox
from pytest_sweep.matrix.ray import state as ray_state
from pytest_sweep.matrix.ray import worker as ray_worker
from pytest_sweep.matrix.ray.plan import ActorPlan, plan_actors
from pytest_sweep.matrix.ray.shipping import DEPTH, PIECE, Download, over_limit, pieces
from pytest_sweep.matrix.remote.protocol import (
    NodeLost,
    PutEvent,
    Startup,
    TrialReport,
    TrialReturned,
    WorkerCrashed,
    WorkerError,
    WorkerReady,
    WorkerStartFailed,
    WorkerUnresponsive,
)
from pytest_sweep.matrix.runner import one_line

#: How long a worker session may take to finish at the end of a run before its actor is killed.
STOP_SECONDS = 30.0
#: How often the checkpoints that nodes sent are copied into the sweep folder.
SYNC_SECONDS = 2.0
#: The "ray" logger's level without ``--sweep-ray-verbose``: above CRITICAL, so nothing passes.
SILENT = logging.CRITICAL + 10
#: ``(worker id, worker count, token, test run id) -> the actor's spec`` (see ``SweepWorker``).
WorkerSpec = Callable[[str, int, str, str], dict[str, Any]]


@dataclass
class Shipment:
    """A finished trial's files on their way from its actor (the report waits for them)."""

    worker: str
    nodeid: str
    trial_dir: str | None
    result: dict[str, Any]
    todo: deque[tuple[Download, int, int]] = field(default_factory=deque)  # (file, offset, length) to request
    files: list[Download] = field(default_factory=list)
    asked: int = 0  # pieces requested and not yet in


def probe(address: str, seconds: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` address, or None (other addresses are Ray's to resolve)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return None
    try:
        with socket.create_connection((host.removeprefix("[").removesuffix("]"), int(port)), timeout=seconds):
            return None
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or exc})"


class RayQuiet:
    """Ray's own messages off in this process, while the run is connected (``--sweep-ray-verbose`` keeps them).

    ``log_to_driver=False`` stops the actors' output, and the "ray" logger's level (:data:`SILENT`)
    its log lines ("Connecting to existing Ray cluster", token warnings).  The raylets' and GCS's
    error messages (a worker died, a node was marked dead, an out-of-memory kill) still reach the
    driver: its error-listener thread prints them to ``sys.stdout``, through the same function as
    the actors' output, which Ray switches off with ``ray._private.worker._worker_logs_enabled``
    while its debugger runs.  The sweep reports each of those events in its own lines.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.level = logging.getLogger("ray").level

    def start(self) -> None:
        if self.quiet:
            _set_worker_logs(False)

    def stop(self) -> None:
        if self.quiet:
            _set_worker_logs(True)
        logging.getLogger("ray").setLevel(self.level)  # ray.init set it


def _set_worker_logs(enabled: bool) -> None:
    worker_module = getattr(getattr(ray, "_private", None), "worker", None)
    if worker_module is not None and hasattr(worker_module, "_worker_logs_enabled"):
        worker_module._worker_logs_enabled = enabled  # Ray's own switch (see RayQuiet)


class ActorPool:
    """Starts the actors, hands them node ids and turns what Ray reports into events.

    :param sweep_dir: the controller's sweep folder (its visibility token goes there).
    :param putevent: where the events go (the backend loop's queue).
    :param spec: builds each actor's spec.
    """

    def __init__(self, config: pytest.Config, sweep_dir: Path, putevent: PutEvent, spec: WorkerSpec) -> None:
        self.config = config
        self.sweep_dir = sweep_dir
        self.putevent = putevent
        self.spec = spec
        ray_settings = sweep_options(config).ray
        assert ray_settings is not None, "--sweep-backend=ray resolves the Ray settings"
        self.ray = ray_settings
        self.cpus_per_trial = self.ray.cpus_per_trial
        self.token = uuid.uuid4().hex
        self.testrunuid = uuid.uuid4().hex
        self.handles: dict[str, Any] = {}  # every actor started, dead ones included
        self.node_ids: dict[str, str | None] = {}  # actor -> its Ray node, once ready
        self.inflight: dict[Any, tuple[str, str | None]] = {}  # object ref -> (actor, node id; None: ready())
        self.trial_dirs: dict[str, str | None] = {}  # actor -> the trial folder of the item it runs
        self.ships: set[str] = set()  # actors writing into a folder of their own
        self.shipments: dict[str, Shipment] = {}  # actor -> its trial's files on the way
        self.pieces: dict[Any, tuple[Shipment, Download, int]] = {}  # object ref -> (shipment, file, offset)
        self.inbox: Any = None  # the CheckpointInbox actor, on this process's node
        self.ship_limit = self.ray.ship_limit
        self.synced = 0  # the inbox's commits copied into the sweep folder
        self.stop_sent = False  # the inbox has the controller's stop request (preemption)
        self.next_sync = 0.0
        self.count = 0
        self.actor_class: Any = None
        self.plan = ActorPlan(0, {})
        self.connected = False
        self.quiet = RayQuiet(False)
        self.state: Any = None  # the state actor (ray/state.py), when a scheduler or a search needs one
        self.state_name: dict[str, str] | None = None

    # -- start ------------------------------------------------------------------------------
    def connect(self) -> None:
        """``ray.init``, keeping this process's SIGTERM handler (Ray replaces it)."""
        address = self.ray.address
        unreachable = probe(address)
        if unreachable:  # ray.init would wait for minutes
            raise pytest.UsageError(f"--sweep-ray-address={address}: {unreachable}; is the Ray cluster up?")
        main = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
        verbose = self.ray.verbose
        self.quiet = RayQuiet(not verbose)
        try:
            ray.init(address=address, log_to_driver=verbose, logging_level=logging.INFO if verbose else SILENT)
        except (ConnectionError, RuntimeError, RayError) as exc:  # no cluster there, or its token is missing
            self.quiet.stop()
            raise pytest.UsageError(
                f"--sweep-backend=ray: cannot connect to the Ray cluster at {address}: {one_line(exc)} "
                "(start one with `ray start --head`, or pass --sweep-ray-address=local for one that lives as "
                "long as this run; a cluster with token authentication needs RAY_AUTH_MODE=token and its token here)"
            ) from None
        finally:
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self.quiet.start()
        self.connected = True

    def start(self, items: int) -> Startup:
        self.connect()
        cluster = ray.cluster_resources()
        self.plan = plan_actors(cluster, self.cpus_per_trial, items, sweep_options(self.config).workers_per_gpu)
        resources = self.plan.resources
        # shipped by value, like xdist's remote.py: see ray.worker's docstring
        cloudpickle.register_pickle_by_value(ray_worker)
        cloudpickle.register_pickle_by_value(ray_inbox)
        # checkpoints stay with the controller: on its node (Ray's stubs do not list this strategy)
        here: Any = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.inbox = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=here)(
            ray_inbox.CheckpointInbox
        ).remote()
        self.actor_class = ray.remote(
            num_gpus=resources.get("GPU", 0),
            num_cpus=resources.get("CPU", 0),
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
        )(ray_worker.SweepWorker)
        sweep_dir = self.sweep_dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage.write_text_atomic(storage.sweep_path(sweep_dir, ray_worker.TOKEN_FILE), self.token)
        self.start_state()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        address = ray.get_runtime_context().gcs_address
        gpus, cpus = cluster.get("GPU", 0), cluster.get("CPU", 0)
        banner = (
            f"Ray cluster at {address}: {nodes} node{'s' if nodes != 1 else ''}, {gpus:g} GPUs, "
            f"{cpus:g} CPUs; starting {self.plan.describe()}"
        )
        return Startup(banner, self.plan.count)

    def start_state(self) -> None:
        """The rung store and the search study, on an actor of this node (ray/state.py), if the sweep has either."""
        study = self.config.stash.get(sweep_search.STUDY_KEY, None)
        if scheduler_hook.scheduler_name(self.config) == "none" and study is None:
            return
        actor_class = ray.remote(ray_state.SweepState)
        self.state, self.state_name = ray_state.start(actor_class, self.sweep_dir, study)
        try:
            ray.get(self.state.ping.remote(), timeout=ray_state.START_SECONDS)
        except RayError as exc:
            raise pytest.UsageError(
                f"--sweep-backend=ray: the actor holding the sweep's rung store and study did not start on "
                f"this node: {one_line(exc)}"
            ) from None

    def spawn(self) -> str:
        self.count += 1
        worker = f"ray{self.count}"
        spec = self.spec(worker, self.plan.count, self.token, self.testrunuid)
        limit = self.ship_limit
        spec.update(inbox=self.inbox, chunk=PIECE, ship_limit=limit, ship_limit_text=limit and format_size(limit))
        if self.state_name is not None:
            spec["workerinput"][ray_state.WORKERINPUT_KEY] = self.state_name
        handle = self.actor_class.remote(spec)
        self.handles[worker] = handle
        self.inflight[handle.ready.remote()] = (worker, None)
        return worker

    # -- run ------------------------------------------------------------------------------
    def submit(self, worker: str, nodeid: str, trial_dir: str | None = None) -> None:
        self.trial_dirs[worker] = trial_dir
        if worker in self.ships and trial_dir is not None:
            self.carry(worker, trial_dir)  # an actor runs its calls in order: before run()
        elif trial_dir is not None and self.ships:  # it reads the sweep folder: put a lost node's checkpoint there
            self.pull(trial_dir)
        self.inflight[self.handles[worker].run.remote(nodeid)] = (worker, nodeid)

    def carry(self, worker: str, trial_dir: str) -> None:
        """Give an actor with a folder of its own the trial's newest checkpoint: from the inbox (its
        earlier node died), else from the sweep folder (``--sweep-resume``)."""
        handle = self.handles[worker]
        try:
            held = ray.get(self.inbox.describe.remote(trial_dir), timeout=60)
        except (RayError, TimeoutError):
            held = None
        if held is not None:
            rel, sizes = held
            offset, total = 0, sum(sizes)
            for index, size in enumerate(sizes):  # inbox to actor through Ray's object store
                handle.accept.remote(rel, offset, self.inbox.chunk.remote(trial_dir, rel, index), total)
                offset += size
            return
        try:
            newest = checkpoint_files(storage.sweep_path(self.sweep_dir, trial_dir))[:1]
        except storage.UnsafePath:
            return
        for path in newest:
            rel = path.relative_to(self.sweep_dir).as_posix()
            size = path.stat().st_size
            if self.ship_limit is not None and size > self.ship_limit:
                return  # the trial starts over there rather than fail for an old checkpoint
            with open(path, "rb") as fh:
                for offset, length in pieces(size):
                    handle.accept.remote(rel, offset, fh.read(length), size)

    def seed(self, worker: str, files: dict[str, bytes]) -> None:
        self.handles[worker].seed.remote(files)  # an actor runs its calls in order: before its first run()

    def kill(self, worker: str) -> None:
        for ref in [ref for ref, (owner, _) in self.inflight.items() if owner == worker]:
            del self.inflight[ref]
        self.abandon(worker)
        ray.kill(self.handles[worker], no_restart=True)

    def poll(self, timeout: float) -> None:
        self.send_stop()
        if not self.inflight and not self.pieces:
            return
        done, _ = ray.wait([*self.inflight, *self.pieces], num_returns=1, timeout=timeout)
        for ref in done:
            if ref in self.pieces:
                self.arrive(ref)
            else:
                self.settle(ref)
        self.sync()

    def send_stop(self) -> None:
        """After SIGTERM (the plugin's handler notes it; no Ray call is made inside a signal
        handler), the stop request goes to the inbox, where every actor's session looks for it at
        its trial's step boundaries: the actors need not see the sweep folder's flag file."""
        preemption = self.config.stash.get(PREEMPTION_KEY, None)
        if self.stop_sent or self.inbox is None or preemption is None or preemption.reason is None:
            return
        self.stop_sent = True
        try:
            self.inbox.request_stop.remote(preemption.reason)
        except RayError:
            pass  # the actors are stopped after the grace period instead

    def settle(self, ref: Any) -> None:
        """The event for one finished call."""
        worker, nodeid = self.inflight.pop(ref)
        if nodeid is None:
            try:
                info = ray.get(ref)
            except RayError as exc:
                self.putevent(WorkerStartFailed(worker, exc))
                return
            self.node_ids[worker] = info.get("node_id")
            if info.get("ship"):
                self.ships.add(worker)
            self.putevent(WorkerReady(worker, info))
            return
        try:
            result = ray.get(ref)
        except RayError as exc:
            self.lost(worker, nodeid, exc)
        else:
            self.ship(worker, nodeid, result)

    def lost(self, worker: str, nodeid: str, exc: RayError) -> None:
        """The event for a call of a trial's that raised (its ``run`` or the fetch of its files)."""
        if isinstance(exc, ActorUnavailableError):
            self.putevent(WorkerUnresponsive(worker, nodeid, exc))
        elif isinstance(exc, RayActorError):
            lost = WorkerCrashed if self.node_alive(worker) else NodeLost
            self.putevent(lost(worker, nodeid, exc))
        else:  # an error in the actor's own code
            self.putevent(WorkerError(worker, nodeid, exc))

    # -- files crossing the wire (shipping.py) ------------------------------------------------
    def ship(self, worker: str, nodeid: str, result: dict[str, Any]) -> None:
        """A trial's ``run`` returned: fetch its files (from a node-local folder), then report it."""
        files: list[tuple[str, int]] = [(str(rel), int(size)) for rel, size in result.get("files") or []]
        trial_dir = self.trial_dirs.pop(worker, None)
        refused = over_limit(files, self.ship_limit)
        shipment = Shipment(worker, nodeid, trial_dir, result)
        if refused is None:
            for rel, size in files:
                try:
                    download = Download(self.sweep_dir, rel, size)
                except storage.UnsafePath:
                    continue  # never outside the sweep folder: no "..", no link on the way
                shipment.files.append(download)
                shipment.todo.extend((download, offset, length) for offset, length in pieces(size))
        self.shipments[worker] = shipment
        self.request(shipment)
        if not shipment.asked:
            self.delivered(shipment, refused)
        else:
            self.putevent(TrialReturned(worker, nodeid))

    def request(self, shipment: Shipment) -> None:
        handle = self.handles[shipment.worker]
        while shipment.todo and shipment.asked < DEPTH:
            download, offset, length = shipment.todo.popleft()
            self.pieces[handle.read.remote(download.rel, offset, length)] = (shipment, download, offset)
            shipment.asked += 1

    def arrive(self, ref: Any) -> None:
        """One piece of a shipped file came back: written in place; the report once all are in."""
        shipment, download, offset = self.pieces.pop(ref)
        shipment.asked -= 1
        try:
            data = ray.get(ref)
        except RayError as exc:  # the actor (or its node) died before its files were in
            self.abandon(shipment.worker)
            self.lost(shipment.worker, shipment.nodeid, exc)
            return
        download.write(offset, data)
        self.request(shipment)
        if not shipment.asked:
            self.delivered(shipment, None)

    def delivered(self, shipment: Shipment, refused: str | None) -> None:
        del self.shipments[shipment.worker]
        error = refused
        for download in shipment.files:
            try:
                download.finish()
            except OSError as exc:
                error = error or f"its file {download.rel} could not be written here ({exc.strerror or exc})"
        if shipment.trial_dir is not None and self.inbox is not None:
            self.inbox.drop.remote(shipment.trial_dir)  # its own files came back: checkpoints included
        shipped = shipment.result.get("files") is not None  # None: the actor wrote into the sweep folder itself
        if shipment.trial_dir is not None and refused is None and shipped:
            self.prune(shipment.trial_dir, {download.rel for download in shipment.files})
        result = shipment.result
        self.putevent(
            TrialReport(
                shipment.worker,
                shipment.nodeid,
                result.get("reports", []),
                result.get("error"),
                warnings=result.get("warnings", []),
                stderr=result.get("stderr", ""),
                refused=error,
            )
        )

    def prune(self, trial_dir: str, shipped: set[str]) -> None:
        """Checkpoints here that the trial's node no longer has (it completed, or kept only newer
        ones) go, as they would from a shared folder."""
        try:
            folder = storage.sweep_path(self.sweep_dir, trial_dir)
        except storage.UnsafePath:
            return
        for path in checkpoint_files(folder):
            if path.relative_to(self.sweep_dir).as_posix() not in shipped:
                path.unlink(missing_ok=True)
        try:
            (folder / FOLDER).rmdir()
        except OSError:
            pass  # files remain, or none was there

    def abandon(self, worker: str) -> None:
        """The worker's files will not come: their temp files go."""
        shipment = self.shipments.pop(worker, None)
        if shipment is None:
            return
        for ref in [ref for ref, (s, _, _) in self.pieces.items() if s is shipment]:
            del self.pieces[ref]
        for download in shipment.files:
            download.abandon()

    def sync(self) -> None:
        """Every :data:`SYNC_SECONDS` while nodes ship: the checkpoints that reached the inbox go
        into the sweep folder, the durable copy (``--sweep-resume`` after a crash of this process)."""
        now = time.monotonic()
        if not self.ships or now < self.next_sync:
            return
        self.next_sync = now + SYNC_SECONDS
        try:
            self.synced, folders = ray.get(self.inbox.changed.remote(self.synced), timeout=60)
        except (RayError, TimeoutError):
            return
        for folder in folders:
            self.pull(folder)

    def drain(self) -> None:
        """The run ends: checkpoints still in the inbox (trials preempted, interrupted or lost for
        good on a node without the sweep folder) go into the sweep folder, for ``--sweep-resume``."""
        try:
            folders = ray.get(self.inbox.folders.remote(), timeout=60)
        except (RayError, TimeoutError):
            return
        for folder in folders:
            self.pull(folder)

    def pull(self, trial_dir: str) -> None:
        """The inbox's checkpoint of a trial, into its folder here (replacing older ones), piece by piece."""
        try:
            held = ray.get(self.inbox.describe.remote(trial_dir), timeout=60)
            if held is None:
                return
            rel, sizes = held
            download = Download(self.sweep_dir, rel, sum(sizes))
            try:
                offset = 0
                for index, size in enumerate(sizes):
                    download.write(offset, ray.get(self.inbox.chunk.remote(trial_dir, rel, index), timeout=600))
                    offset += size
                download.finish()
            except BaseException:
                download.abandon()
                raise
            self.prune(trial_dir, {rel})
            self.inbox.drop.remote(trial_dir, rel)
        except (RayError, TimeoutError, OSError):
            pass  # a checkpoint is a cache of work: the trial starts over

    def node_alive(self, worker: str) -> bool:
        node_id = self.node_ids.get(worker)
        return any(n.get("NodeID") == node_id and n.get("Alive") for n in ray.nodes())

    def why_waiting(self) -> str:
        needs = " + ".join(f"{v:g} {k}" for k, v in self.plan.resources.items())
        return f"Ray cannot place one yet ({needs} each, available now: {ray.available_resources()})"

    # -- end --------------------------------------------------------------------------------
    def close(self, finish: Collection[str]) -> None:
        """Kill every actor and disconnect, so that no actor outlives the run.

        The ``finish`` actors' worker sessions first finish as xdist workers do (their
        ``pytest_sessionfinish``), for at most :data:`STOP_SECONDS`.
        """
        if not self.connected:
            return
        for worker in list(self.shipments):
            self.abandon(worker)
        if self.inbox is not None:
            self.drain()
        try:
            finishing = [self.handles[worker].stop.remote(STOP_SECONDS) for worker in finish]
            if finishing:
                ray.wait(finishing, num_returns=len(finishing), timeout=STOP_SECONDS + 5)
        except RayError:
            pass
        finally:
            if self.state is not None:  # after the workers: its files are whole before it goes
                try:
                    ray.get(self.state.close.remote(), timeout=STOP_SECONDS)
                except RayError:
                    pass
            others = [actor for actor in (self.state, self.inbox) if actor is not None]
            for handle in [*self.handles.values(), *others]:
                try:
                    ray.kill(handle, no_restart=True)
                except (RayError, ValueError):
                    pass
            self.inflight.clear()
            ray.shutdown()
            self.quiet.stop()
            (self.sweep_dir / ray_worker.TOKEN_FILE).unlink(missing_ok=True)
