"""The Ray actors of a ``--sweep-backend=ray`` run: the Ray backend's :class:`~..remote.protocol.Dispatcher`.

Ray's own retries are off (``max_restarts=0``, ``max_task_retries=0``; no plain remote tasks are
used, so ``max_retries`` never applies): what happens to a trial is the backend loop's decision
(:mod:`pytest_sweep.matrix.remote.loop`), from the event this pool makes of what Ray reports:

=============================================  =====================================
Ray's answer                                   event
=============================================  =====================================
``ready()`` returned                           ``WorkerReady``
``ready()`` raised (the actor died starting)   ``WorkerStartFailed``
``run(nodeid)`` returned                       ``TrialReport``
``ActorUnavailableError``                      ``WorkerUnresponsive``
``RayActorError``, the actor's node alive      ``WorkerCrashed``
``RayActorError``, the actor's node dead       ``NodeLost``
any other ``RayError``                         ``WorkerError``
=============================================  =====================================
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import cloudpickle
from ray.exceptions import ActorUnavailableError, RayActorError, RayError

from pytest_sweep.matrix import scheduler_hook, storage
from pytest_sweep.matrix import search as sweep_search
from pytest_sweep.matrix.options import sweep_options
from pytest_sweep.matrix.ray import state as ray_state
from pytest_sweep.matrix.ray import worker as ray_worker
from pytest_sweep.matrix.ray.plan import ActorPlan, plan_actors
from pytest_sweep.matrix.remote.protocol import (
    NodeLost,
    PutEvent,
    Startup,
    TrialReport,
    WorkerCrashed,
    WorkerError,
    WorkerReady,
    WorkerStartFailed,
    WorkerUnresponsive,
)
from pytest_sweep.matrix.runner import one_line

#: How long a worker session may take to finish at the end of a run before its actor is killed.
STOP_SECONDS = 30.0
#: The "ray" logger's level without ``--sweep-ray-verbose``: above CRITICAL, so nothing passes.
SILENT = logging.CRITICAL + 10
#: ``(worker id, worker count, token, test run id) -> the actor's spec`` (see ``SweepWorker``).
WorkerSpec = Callable[[str, int, str, str], dict[str, Any]]


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
        if self.state_name is not None:
            spec["workerinput"][ray_state.WORKERINPUT_KEY] = self.state_name
        handle = self.actor_class.remote(spec)
        self.handles[worker] = handle
        self.inflight[handle.ready.remote()] = (worker, None)
        return worker

    # -- run ------------------------------------------------------------------------------
    def submit(self, worker: str, nodeid: str) -> None:
        self.inflight[self.handles[worker].run.remote(nodeid)] = (worker, nodeid)

    def seed(self, worker: str, files: dict[str, bytes]) -> None:
        self.handles[worker].seed.remote(files)  # an actor runs its calls in order: before its first run()

    def kill(self, worker: str) -> None:
        for ref in [ref for ref, (owner, _) in self.inflight.items() if owner == worker]:
            del self.inflight[ref]
        ray.kill(self.handles[worker], no_restart=True)

    def poll(self, timeout: float) -> None:
        if not self.inflight:
            return
        done, _ = ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        for ref in done:
            self.settle(ref)

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
            self.putevent(WorkerReady(worker, info))
            return
        try:
            result = ray.get(ref)
        except ActorUnavailableError as exc:
            self.putevent(WorkerUnresponsive(worker, nodeid, exc))
        except RayActorError as exc:
            lost = WorkerCrashed if self.node_alive(worker) else NodeLost
            self.putevent(lost(worker, nodeid, exc))
        except RayError as exc:  # an error in the actor's own code
            self.putevent(WorkerError(worker, nodeid, exc))
        else:
            self.putevent(
                TrialReport(
                    worker,
                    nodeid,
                    result.get("reports", []),
                    result.get("files"),
                    result.get("error"),
                    warnings=result.get("warnings", []),
                    stderr=result.get("stderr", ""),
                )
            )

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
            for handle in [*self.handles.values(), *([self.state] if self.state is not None else [])]:
                try:
                    ray.kill(handle, no_restart=True)
                except (RayError, ValueError):
                    pass
            self.inflight.clear()
            ray.shutdown()
            self.quiet.stop()
            (self.sweep_dir / ray_worker.TOKEN_FILE).unlink(missing_ok=True)
