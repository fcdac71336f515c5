"""The Ray actors of a ``--sweep-backend=ray`` run, and every decision about their faults.

Ray's own retries are off (``max_restarts=0``, ``max_task_retries=0``; no plain remote tasks are
used, so ``max_retries`` never applies): what happens to a trial is decided here, from what Ray
reports about the actor that ran it.

=====================================  ===========================================================
the actor's process died, node alive   the trial fails as ``worker 'rayN' crashed while running
                                       '<node id>'`` (xdist's wording and record); a fresh actor
                                       replaces it
its node died                          the trial runs again on another actor, at most
                                       ``--sweep-ray-node-retries`` times (default 1); its record
                                       lists why under ``requeued``
the actor stopped answering            it is killed first, then as a dead node (the trial may have
                                       run twice: trial files are written atomically, the last
                                       complete result wins)
it overran ``--sweep-trial-timeout``   the actor enforces the limit itself (``SIGALRM``); one that
by :func:`overrun_margin`              does not return (a hang inside a CUDA kernel or NCCL) is
                                       killed and the trial fails
Ctrl-C / SIGTERM on the controller     every actor is killed; the summary lists the rest as not run
=====================================  ===========================================================

A lost actor is replaced by a fresh one (``rayN`` counts on) while trials still wait; the fresh one
may wait for Ray to find it a GPU.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import ray
from ray import cloudpickle
from ray.exceptions import ActorUnavailableError, RayActorError, RayError

from pytest_sweep.matrix import options, ray_worker, storage
from pytest_sweep.matrix.ray_plan import ActorPlan, plan_actors
from pytest_sweep.matrix.runner import one_line

if TYPE_CHECKING:
    from pytest_sweep.matrix.ray_backend import RayBackend

#: How long a worker session may take to finish at the end of a run before its actor is killed.
STOP_SECONDS = 30.0
#: How often the loop wakes up (Ctrl-C, overrun checks) while it waits for results.
POLL_SECONDS = 0.5
#: Actors that die while starting, one after another, before the sweep gives up.
START_FAILURES = 3
#: Seconds trials wait without any live actor before the terminal says so.
WAIT_NOTICE_SECONDS = 60.0


def overrun_margin(timeout: float) -> float:
    """How long past ``--sweep-trial-timeout`` an actor may take to return before it is killed."""
    return 10.0 + 0.1 * timeout


def probe(address: str, seconds: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` address, or None (other addresses are Ray's to resolve)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            return None
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or exc})"


@dataclass
class Worker:
    """One actor and what it is doing."""

    id: str
    handle: Any
    info: dict[str, Any] = field(default_factory=dict)
    nodeid: str | None = None  # the item it runs; None while starting or idle
    started: float = 0.0

    @property
    def where(self) -> str:
        return str(self.info.get("ip") or "?")

    def fields(self) -> dict[str, Any]:
        """What a record run by this actor says about where it ran."""
        return {"worker": self.id, "node": self.info.get("ip"), "node_id": self.info.get("node_id")}


class ActorPool:
    """Starts the actors, hands out node ids, waits for results and decides what a fault means."""

    def __init__(self, backend: RayBackend, session: pytest.Session) -> None:
        self.backend = backend
        self.session = session
        config = backend.config
        self.timeout = options.trial_timeout(config)
        self.node_retries = options.ray_node_retries(config)
        self.cpus_per_trial = options.ray_cpus_per_trial(config)
        self.resume = config.getoption("sweep_resume") is not None
        self.token = uuid.uuid4().hex
        self.testrunuid = uuid.uuid4().hex
        self.pending: deque[str] = deque()
        self.requeued: dict[str, list[str]] = {}
        self.inflight: dict[Any, Worker] = {}  # object ref -> actor (ready() or run())
        self.idle: list[Worker] = []
        self.workers: list[Worker] = []  # every actor started, dead ones included
        self.alive: set[str] = set()
        self.start_failures = 0
        self.count = 0
        self.actor_class: Any = None
        self.plan = ActorPlan(0, {})
        self.connected = False
        self.waiting_since: float | None = None

    # -- start ------------------------------------------------------------------------------
    def connect(self) -> None:
        """``ray.init``, keeping this process's SIGTERM handler (Ray replaces it)."""
        address = options.ray_address(self.backend.config)
        unreachable = probe(address)
        if unreachable:  # ray.init would wait for minutes
            raise pytest.UsageError(f"--sweep-ray-address={address}: {unreachable}; is the Ray cluster up?")
        main = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, RayError) as exc:  # no cluster there, or its token is missing
            raise pytest.UsageError(
                f"--sweep-backend=ray: cannot connect to the Ray cluster at {address}: {one_line(exc)} "
                "(start one with `ray start --head`, or pass --sweep-ray-address=local for one that lives as "
                "long as this run; a cluster with token authentication needs RAY_AUTH_MODE=token and its token here)"
            ) from None
        finally:
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self.connected = True

    def start(self, nodeids: list[str]) -> None:
        self.connect()
        cluster = ray.cluster_resources()
        self.plan = plan_actors(cluster, self.cpus_per_trial, len(nodeids))
        resources = self.plan.resources
        # shipped by value, like xdist's remote.py: see ray_worker's docstring
        cloudpickle.register_pickle_by_value(ray_worker)
        self.actor_class = ray.remote(
            num_gpus=resources.get("GPU", 0),
            num_cpus=resources.get("CPU", 0),
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
        )(ray_worker.SweepWorker)
        sweep_dir = self.backend.controller.dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage.write_text_atomic(storage.sweep_path(sweep_dir, ray_worker.TOKEN_FILE), self.token)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        address = ray.get_runtime_context().gcs_address
        gpus, cpus = cluster.get("GPU", 0), cluster.get("CPU", 0)
        self.backend.say(
            f"sweep: Ray cluster at {address}: {nodes} node{'s' if nodes != 1 else ''}, {gpus:g} GPUs, "
            f"{cpus:g} CPUs; starting {self.plan.describe()}"
        )
        self.pending.extend(nodeids)
        for _ in range(self.plan.count):
            self.spawn()

    def spawn(self) -> str:
        self.count += 1
        worker_id = f"ray{self.count}"
        spec = self.backend.worker_spec(worker_id, self.plan.count, self.token, self.testrunuid)
        handle = self.actor_class.remote(spec)
        worker = Worker(worker_id, handle)
        self.workers.append(worker)
        self.alive.add(worker_id)
        self.inflight[handle.ready.remote()] = worker
        return worker_id

    def started(self, worker: Worker, ref: Any) -> None:
        try:
            info = ray.get(ref)
        except RayError as exc:
            self.start_failures += 1
            self.lose(worker)
            if self.start_failures >= START_FAILURES:
                pytest.exit(
                    f"sweep: {self.start_failures} Ray workers died while starting; the last: {one_line(exc, 500)}",
                    returncode=pytest.ExitCode.INTERNAL_ERROR,
                )
            self.backend.say(f"sweep: worker {worker.id!r} died while starting ({one_line(exc)}){self.replace()}")
            return
        self.start_failures = 0
        worker.info = info
        if info["error"]:
            raise pytest.UsageError(f"sweep: worker {worker.id!r} on {info['host']} could not start: {info['error']}")
        gpus = f", GPU {info['gpus']}" if info.get("gpus") else ""
        ship = "; trial files shipped back (node-local output)" if info["ship"] else ""
        self.backend.say(
            f"sweep: {worker.id} ready on {info['host']} ({info['ip']}{gpus}): "
            f"{info['items']} items collected in {info['seconds']:.1f} s{ship}"
        )
        for error in info["collect_errors"]:
            self.backend.say(f"sweep: {worker.id} collection error: {error}", yellow=True)
        if info["ship"] and self.resume:
            worker.handle.seed.remote(self.backend.finished_files())  # runs before its first run()
        self.idle.append(worker)
        self.backend.workers_ready(sum(1 for w in self.workers if w.info and w.id in self.alive))

    # -- run ------------------------------------------------------------------------------
    def run(self, nodeids: list[str]) -> None:
        self.start(nodeids)
        while self.pending or any(w.nodeid for w in self.inflight.values()):
            if self.session.shouldfail or self.session.shouldstop:
                self.pending.clear()  # -x / --maxfail: what runs finishes, nothing new starts
            self.dispatch()
            if not self.inflight:
                break
            done, _ = ray.wait(list(self.inflight), num_returns=1, timeout=self.poll_seconds())
            for ref in done:
                self.settle(ref)
            self.check_overruns()
            self.check_waiting()

    def check_waiting(self) -> None:
        """Say once when trials wait and no actor is up (the cluster lacks the resources for one)."""
        if not self.pending or any(w.info and w.id in self.alive for w in self.workers):
            self.waiting_since = None
            return
        now = time.monotonic()
        if self.waiting_since is None:
            self.waiting_since = now
        elif now - self.waiting_since > WAIT_NOTICE_SECONDS:
            needs = " + ".join(f"{v:g} {k}" for k, v in self.plan.resources.items())
            self.backend.say(
                f"sweep: {len(self.pending)} trials wait for a worker; Ray cannot place one yet ({needs} each, "
                f"available now: {ray.available_resources()}); Ctrl-C stops the sweep and writes its summary",
                yellow=True,
            )
            self.waiting_since = float("inf")

    def dispatch(self) -> None:
        while self.idle and self.pending:
            worker = self.idle.pop(0)
            worker.nodeid = self.pending.popleft()
            worker.started = time.monotonic()
            self.inflight[worker.handle.run.remote(worker.nodeid)] = worker

    def poll_seconds(self) -> float:
        if self.timeout is None:
            return POLL_SECONDS
        now = time.monotonic()
        limit = self.timeout + overrun_margin(self.timeout)
        deadlines = [w.started + limit - now for w in self.inflight.values() if w.nodeid]
        return max(0.05, min([POLL_SECONDS, *deadlines]))

    def settle(self, ref: Any) -> None:
        worker = self.inflight.pop(ref)
        if worker.nodeid is None:
            self.started(worker, ref)
            return
        nodeid, worker.nodeid = worker.nodeid, None
        try:
            result = ray.get(ref)
        except ActorUnavailableError as exc:
            ray.kill(worker.handle, no_restart=True)
            self.lost_node(nodeid, worker, f"worker {worker.id!r} on {worker.where} stopped answering", exc)
            return
        except RayActorError as exc:
            if self.node_alive(worker):
                self.lose(worker)
                message = f"worker {worker.id!r} crashed while running {nodeid!r}"
                self.backend.say(f"sweep: {message}{self.replace()}", red=True)
                self.backend.fail(nodeid, message, str(exc), self.fields(nodeid, worker), crashed=True)
            else:
                self.lost_node(nodeid, worker, f"node {worker.where} of worker {worker.id!r} died", exc)
            return
        except RayError as exc:  # an error in the worker's own code: its session may be broken
            ray.kill(worker.handle, no_restart=True)
            self.lose(worker)
            error = f"worker {worker.id!r} failed: {one_line(exc)}"
            self.backend.say(f"sweep: {error}{self.replace()}", red=True)
            self.backend.fail(nodeid, error, str(exc), self.fields(nodeid, worker))
            return
        if "error" in result:
            self.backend.fail(nodeid, result["error"], "", self.fields(nodeid, worker))
        else:
            if result["files"]:
                self.backend.write_files(result["files"])
            self.backend.feed(nodeid, result["reports"], self.fields(nodeid, worker))
        self.idle.append(worker)

    def fields(self, nodeid: str, worker: Worker) -> dict[str, Any]:
        fields = worker.fields()
        if nodeid in self.requeued:
            fields["requeued"] = list(self.requeued[nodeid])
        return fields

    def node_alive(self, worker: Worker) -> bool:
        node_id = worker.info.get("node_id")
        return any(n.get("NodeID") == node_id and n.get("Alive") for n in ray.nodes())

    def lost_node(self, nodeid: str, worker: Worker, reason: str, exc: BaseException) -> None:
        """The trial's node died (or its actor stopped answering): run it again elsewhere, or fail it."""
        self.lose(worker)
        done = self.requeued.setdefault(nodeid, [])
        name = self.backend.name(nodeid)
        if len(done) < self.node_retries:
            done.append(reason)
            self.pending.appendleft(nodeid)
            again = f"; {name} runs again ({len(done)} of {self.node_retries})"
            self.backend.say(f"sweep: {reason} while running {name}{again}{self.replace()}", yellow=True)
        else:
            error = f"{reason} while running it; not run again (--sweep-ray-node-retries={self.node_retries})"
            self.backend.say(f"sweep: {error}{self.replace()}", red=True)
            self.backend.fail(nodeid, error, str(exc), self.fields(nodeid, worker))

    def lose(self, worker: Worker) -> None:
        self.alive.discard(worker.id)
        if worker in self.idle:
            self.idle.remove(worker)
        self.backend.workers_ready(sum(1 for w in self.workers if w.info and w.id in self.alive))

    def replace(self) -> str:
        """A fresh actor for a lost one, while there is work it could do (it may wait for a node)."""
        if not self.pending:
            return ""
        return f"; starting {self.spawn()}"

    def check_overruns(self) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        limit = self.timeout + overrun_margin(self.timeout)
        for ref, worker in list(self.inflight.items()):
            if worker.nodeid is None or now - worker.started <= limit:
                continue
            del self.inflight[ref]
            nodeid, worker.nodeid = worker.nodeid, None
            ray.kill(worker.handle, no_restart=True)
            self.lose(worker)
            error = (
                f"timed out after {self.timeout:g} s (--sweep-trial-timeout); worker {worker.id!r} did not "
                f"return and was killed after {now - worker.started:.0f} s"
            )
            self.backend.say(f"sweep: {error}{self.replace()}", red=True)
            self.backend.fail(nodeid, error, "", self.fields(nodeid, worker))

    # -- end --------------------------------------------------------------------------------
    def close(self, graceful: bool) -> None:
        """Kill every actor and disconnect, so that no actor outlives the run.

        After a complete run (``graceful``) the idle worker sessions first finish as xdist workers
        do (their ``pytest_sessionfinish``), for at most :data:`STOP_SECONDS`.
        """
        if not self.connected:
            return
        try:
            if graceful:
                finishing = [w.handle.stop.remote(STOP_SECONDS) for w in self.idle if w.id in self.alive]
                if finishing:
                    ray.wait(finishing, num_returns=len(finishing), timeout=STOP_SECONDS + 5)
        except RayError:
            pass
        finally:
            for worker in self.workers:
                try:
                    ray.kill(worker.handle, no_restart=True)
                except (RayError, ValueError):
                    pass
            self.inflight.clear()
            ray.shutdown()
            (self.backend.controller.dir / ray_worker.TOKEN_FILE).unlink(missing_ok=True)
