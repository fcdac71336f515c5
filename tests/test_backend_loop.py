"""The backend loop (``matrix/remote/loop.py``) against a scripted dispatcher: every fault, no cluster.

The loop sees a backend only through the ``Dispatcher`` protocol, so these tests put a dispatcher
of their own in the Ray pool's place (:class:`Scripted`), in an otherwise real in-process run with
``--sweep-backend=ray``: real collection, controller, records, terminal and summary.  Its workers do
what the test's script says, one event per poll (as ``ray.wait(num_returns=1)`` gives them), and its
clock is the loop's, so a timeout of 12 s takes no time.  The real Ray path is ``test_ray.py``'s.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.records import TrialRecord
from pytest_sweep.matrix.remote.loop import BackendLoop, annotate
from pytest_sweep.matrix.remote.protocol import (
    Dispatcher,
    Event,
    NodeLost,
    PutEvent,
    Startup,
    TrialReport,
    TrialReturned,
    WorkerCrashed,
    WorkerError,
    WorkerInfo,
    WorkerReady,
    WorkerStartFailed,
    WorkerUnresponsive,
)

if TYPE_CHECKING:
    from sweep_helpers import SweepPytester


#: What a worker does with a trial: an outcome per attempt (the last one repeats).
Script = dict[str, list[str]]


@pytest.fixture
def sweep(ray_imported: None, sweep_pytester: SweepPytester) -> SweepPytester:
    """``sweep_pytester``, Ray imported first (``--sweep-backend=ray`` imports it: see ``ray_imported``)."""
    return sweep_pytester


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A :class:`Dispatcher` whose workers do what the script says.

    Outcomes: ``pass``, ``fail`` (the trial's own failure), ``crash``, ``node`` (its node dies),
    ``stuck`` (stops answering), ``error`` (in the worker's own code), ``uncollected``, ``hang``
    (never returns), ``sigterm`` / ``ctrl-c`` (the controller gets one meanwhile).  ``start`` lists
    what each new worker does while starting: ``ready`` or ``die``.  A worker with a folder of its
    own (``ship``) delivers its trial's metrics file into the sweep folder, as the Ray pool does;
    ``refused``: its files were not shipped (one over ``--sweep-ray-ship-limit``); ``ship_slowly``:
    it returns, and its files take a minute on the loop's clock to arrive.
    """

    def __init__(self, harness: Harness, putevent: PutEvent) -> None:
        self.harness = harness
        self.putevent = putevent
        self.calls: list[tuple[Any, ...]] = []
        self.starting: list[str] = []
        self.running: dict[str, str] = {}  # worker -> node id
        self.attempts: Counter[str] = Counter()
        self.shipping: dict[str, str] = {}  # worker -> node id whose files are on the way
        self.shipped_at = 0.0  # when they started to cross (the loop's clock)
        self.count = 0

    def start(self, items: int) -> Startup:
        self.calls.append(("start", items))
        return Startup(f"a scripted cluster for {items} trials", self.harness.workers)

    def spawn(self) -> str:
        self.count += 1
        worker = f"fake{self.count}"
        self.calls.append(("spawn", worker))
        self.starting.append(worker)
        return worker

    def submit(self, worker: str, nodeid: str, trial_dir: str | None = None) -> None:
        assert trial_dir == self.harness.items[nodeid].trial.folder  # type: ignore[attr-defined]
        self.calls.append(("submit", worker, self.harness.name(nodeid)))
        self.running[worker] = nodeid

    def seed(self, worker: str, files: dict[str, bytes]) -> None:
        self.calls.append(("seed", worker, sorted(files)))

    def kill(self, worker: str) -> None:
        self.calls.append(("kill", worker))
        self.running.pop(worker, None)

    def why_waiting(self) -> str:
        return "the script places none"

    def close(self, finish: Collection[str]) -> None:
        self.calls.append(("close", sorted(finish)))

    def poll(self, timeout: float) -> None:
        if self.starting:
            worker = self.starting.pop(0)
            starts = self.harness.start
            what = starts[min(int(worker[4:]) - 1, len(starts) - 1)]
            if what == "die":
                self.putevent(WorkerStartFailed(worker, RuntimeError("the actor died in its constructor")))
            else:
                self.putevent(WorkerReady(worker, self.info(worker)))
            return
        if self.shipping:  # a large file crossing: a minute without an event, then the report
            worker, nodeid = next(iter(self.shipping.items()))
            if self.harness.clock.now < self.shipped_at + 60.0:
                self.harness.clock.now += timeout
            else:
                del self.shipping[worker]
                self.putevent(self.ran(worker, nodeid, "pass"))
            return
        returning = [(worker, nodeid) for worker, nodeid in self.running.items() if self.outcome(nodeid) != "hang"]
        if not returning:  # nothing happens within the timeout
            self.harness.clock.now += timeout
            if self.harness.clock.now > 1000.0 + 3600:
                raise RuntimeError("an hour on the loop's clock and nothing returns: the loop never ends")
            return
        worker, nodeid = returning[0]
        what = self.outcome(nodeid)
        self.harness.clock.now += 1.0  # the trial's duration
        del self.running[worker]
        self.attempts[nodeid] += 1
        self.calls.append((what, worker, self.harness.name(nodeid)))
        lost = RuntimeError(f"the {what} of {worker}")
        if what == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)  # the sweep plugin's handler raises here
        if what == "ctrl-c":
            raise KeyboardInterrupt
        if what == "ship_slowly":
            self.shipping[worker] = nodeid
            self.shipped_at = self.harness.clock.now
            self.putevent(TrialReturned(worker, nodeid))
            return
        events: dict[str, Event] = {
            "crash": WorkerCrashed(worker, nodeid, lost),
            "node": NodeLost(worker, nodeid, lost),
            "stuck": WorkerUnresponsive(worker, nodeid, lost),
            "error": WorkerError(worker, nodeid, lost),
            "uncollected": TrialReport(worker, nodeid, error=f"{nodeid} was not collected on this node"),
        }
        self.putevent(events.get(what) or self.ran(worker, nodeid, what))

    def outcome(self, nodeid: str) -> str:
        outcomes = self.harness.script.get(self.harness.name(nodeid), ["pass"])
        return outcomes[min(self.attempts[nodeid], len(outcomes) - 1)]

    def info(self, worker: str) -> WorkerInfo:
        n = int(worker[4:])
        ship = self.harness.ship
        return WorkerInfo(pid=n, host=f"host{n}", ip=f"10.0.0.{n}", node_id=f"node{n}", gpus=None,
                          items=len(self.harness.items), collect_errors=[], ship=ship, error=None, seconds=0.5)  # fmt: skip

    def ran(self, worker: str, nodeid: str, what: str) -> TrialReport:
        """What a worker session sends back: setup, call and teardown reports, the record in the call's."""
        config = self.harness.session.config
        item = self.harness.items[nodeid]
        record = self.harness.loop.controller.expected_record(nodeid)
        assert record is not None
        failed = what == "fail"
        record.update(status="failed" if failed else "passed", error="failed on purpose" if failed else None)
        record["test_acc"] = None if failed else 90.0 + item.trial["CONFIG_TOY_X"]  # type: ignore[attr-defined]
        reports = []
        for when in ("setup", "call", "teardown"):
            report = pytest.TestReport(
                nodeid, item.location, {}, "failed" if failed and when == "call" else "passed",
                "failed on purpose" if failed and when == "call" else None, when,
                user_properties=[(TrialRecord.WIRE_KEY, json.dumps(record))] if when == "call" else [],
            )  # fmt: skip
            reports.append(config.hook.pytest_report_to_serializable(config=config, report=report))
        if what == "refused":
            return TrialReport(worker, nodeid, reports, refused="trial file x.bin is 2 GiB, over the limit")
        if self.harness.ship:
            folder = item.trial.folder  # type: ignore[attr-defined]
            metrics = self.harness.loop.controller.dir / folder / "training_metrics.json"
            storage.write_bytes_atomic(metrics, json.dumps(record).encode())
        return TrialReport(worker, nodeid, reports)


class Harness:
    """A plugin that puts the backend loop with a :class:`Scripted` dispatcher in the Ray pool's place."""

    def __init__(
        self,
        script: Script,
        workers: int = 2,
        start: list[str] | None = None,
        ship: bool = False,
        dispatcher: type[Scripted] = Scripted,
    ) -> None:
        self.script = script
        self.workers = workers
        self.start = start or ["ready"]
        self.ship = ship
        self.dispatcher_class = dispatcher
        self.clock = Clock()
        self.dispatcher: Scripted | None = None
        self.items: dict[str, pytest.Item] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        pm = session.config.pluginmanager
        ray_loop = pm.get_plugin("sweep-ray")
        assert isinstance(ray_loop, BackendLoop)
        pm.unregister(ray_loop)
        self.loop = BackendLoop(
            session.config, ray_loop.controller, ray_loop.ticker, self.connect,
            label="Fake", node_retries=(ray_loop.node_retries, "--sweep-ray-node-retries"), clock=self.clock,
        )  # fmt: skip
        pm.register(self.loop, "sweep-ray")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = {item.nodeid: item for item in session.items}

    def connect(self, putevent: PutEvent) -> Dispatcher:
        self.dispatcher = self.dispatcher_class(self, putevent)
        return self.dispatcher

    def name(self, nodeid: str) -> str:
        return str(self.items[nodeid].trial.name)  # type: ignore[attr-defined]

    @property
    def calls(self) -> list[tuple[Any, ...]]:
        assert self.dispatcher is not None
        return self.dispatcher.calls


#: The sweep's own trainer (a plugin, as a user writes one); the scripted workers never call it.
TOY = """\
import pytest
from pytest_sweep.matrix import Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_TOY_X", "int", 1, "A number")]


class Toy:
    def run(self, trial, ctx):
        return {"test_acc": 90.0 + trial["CONFIG_TOY_X"]}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Toy()
"""


def run(
    sweep: SweepPytester, harness: Harness, *args: str, trials: int = 4
) -> tuple[pytest.RunResult, dict[str, dict[str, Any]]]:
    """A sweep of ``trials`` configurations on the scripted workers, in process; its records by name."""
    sweep.pytester.makeconftest(TOY)
    sweep.range_config("CONFIG_TOY_X=" + "|".join(str(i) for i in range(1, trials + 1)) + "\n")
    result = sweep.pytester.runpytest(
        *sweep.plugin_args, "--range-config=sweep.rc", "--sweep-backend=ray", "--sweep-output=out",
        "--sweep-minutes-per-trial=1", "-p", "no:cacheprovider", *args, plugins=[harness], no_reraise_ctrlc=True,
    )  # fmt: skip
    found = sweep.sweep_dirs(sweep.path / "out")
    return result, (sweep.records(found[-1]) if found else {})


def sweep_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("sweep: ") and " ready on " not in line]


def test_a_clean_run_hands_out_every_trial_and_lets_the_idle_sessions_finish(sweep: SweepPytester) -> None:
    harness = Harness({})
    result, records = run(sweep, harness)
    result.assert_outcomes(passed=4)
    assert [(n, r["status"], r["test_acc"]) for n, r in records.items()] == [
        (f"config_00{i}", "passed", 90.0 + i) for i in range(1, 5)
    ]
    assert {r["worker"] for r in records.values()} == {"fake1", "fake2"}
    assert {(r["worker"], r["node"], r["node_id"]) for r in records.values()} == {
        ("fake1", "10.0.0.1", "node1"),
        ("fake2", "10.0.0.2", "node2"),
    }
    assert harness.calls[:3] == [("start", 4), ("spawn", "fake1"), ("spawn", "fake2")]
    assert sorted(c[2] for c in harness.calls if c[0] == "submit") == [f"config_00{i}" for i in range(1, 5)]
    assert harness.calls[-1] == ("close", ["fake1", "fake2"])  # both sessions finish, then every worker goes
    result.stdout.fnmatch_lines(["sweep: a scripted cluster for 4 trials", "sweep: fake1 ready on host1 (10.0.0.1)*"])


@pytest.mark.parametrize(("fault", "reason"), [("node", "node 10.0.0.2 of worker 'fake2' died"),
                                               ("stuck", "worker 'fake2' on 10.0.0.2 stopped answering")])  # fmt: skip
def test_a_trial_whose_node_is_lost_runs_again_on_a_fresh_worker(sweep: SweepPytester, fault: str, reason: str) -> None:
    harness = Harness({"config_002": [fault, "pass"]})
    result, records = run(sweep, harness)
    result.assert_outcomes(passed=4)
    again = records["config_002"]
    assert again["status"] == "passed" and again["requeued"] == [reason]
    assert again["worker"] != "fake2"
    submits = [c[1] for c in harness.calls if c[0] == "submit" and c[2] == "config_002"]
    assert submits == ["fake2", again["worker"]]
    assert ("spawn", "fake3") in harness.calls
    # an unanswering worker is killed first; a dead node's is gone already
    assert (("kill", "fake2") in harness.calls) == (fault == "stuck")
    assert f"sweep: {reason} while running config_002; config_002 runs again (1 of 1); starting fake3" in (
        sweep_lines(result)
    )
    assert all("requeued" not in r for n, r in records.items() if n != "config_002")


def test_a_trial_whose_node_is_lost_past_the_retries_fails(sweep: SweepPytester) -> None:
    harness = Harness({"config_002": ["node"]})
    result, records = run(sweep, harness, "--sweep-ray-node-retries=0")
    result.assert_outcomes(passed=3, failed=1)
    error = "node 10.0.0.2 of worker 'fake2' died while running it; not run again (--sweep-ray-node-retries=0)"
    assert records["config_002"]["error"] == error
    assert records["config_002"]["requeued"] == []
    assert len([c for c in harness.calls if c[0] == "submit" and c[2] == "config_002"]) == 1
    result.stdout.fnmatch_lines([f"*{error}", "*the node of fake2"])  # the failure: the message, then the cause


def test_a_worker_that_crashes_fails_its_trial_as_xdist_does_and_is_replaced(sweep: SweepPytester) -> None:
    harness = Harness({"config_002": ["crash"]})
    result, records = run(sweep, harness)
    result.assert_outcomes(passed=3, failed=1)
    crashed = records["config_002"]
    nodeid = next(n for n in harness.items if "config_002" in n)
    assert crashed["error"] == f"worker crashed: worker 'fake2' crashed while running {nodeid!r}"
    assert crashed["worker"] == "fake2" and "requeued" not in crashed
    assert f"sweep: worker 'fake2' crashed while running {nodeid!r}; starting fake3" in sweep_lines(result)
    assert not [c for c in harness.calls if c[0] == "kill"]  # its process is gone already
    assert {records[n]["worker"] for n in ("config_003", "config_004")} <= {"fake1", "fake3"}
    assert harness.calls[-1] == ("close", ["fake1", "fake3"])


def test_an_error_in_the_workers_own_code_kills_it_and_fails_the_trial(sweep: SweepPytester) -> None:
    harness = Harness({"config_001": ["error"]})
    result, records = run(sweep, harness)
    result.assert_outcomes(passed=3, failed=1)
    assert records["config_001"]["error"] == "worker 'fake1' failed: RuntimeError: the error of fake1"
    assert ("kill", "fake1") in harness.calls and ("spawn", "fake3") in harness.calls


def test_an_item_a_worker_did_not_collect_fails_and_the_worker_goes_on(sweep: SweepPytester) -> None:
    harness = Harness({"config_001": ["uncollected"]}, workers=1)
    result, records = run(sweep, harness)
    result.assert_outcomes(passed=3, failed=1)
    nodeid = next(n for n in harness.items if "config_001" in n)
    assert records["config_001"]["error"] == f"{nodeid} was not collected on this node"
    assert {r["worker"] for r in records.values()} == {"fake1"}  # no worker lost, none started
    assert [c[0] for c in harness.calls].count("spawn") == 1


def test_a_trial_that_does_not_return_past_its_timeout_is_killed(sweep: SweepPytester) -> None:
    harness = Harness({"config_002": ["hang"]})
    result, records = run(sweep, harness, "--sweep-trial-timeout=2")
    result.assert_outcomes(passed=3, failed=1)
    # 2 s + the margin of 10.2 s on the loop's clock, then the next poll
    assert records["config_002"]["error"] == (
        "timed out after 2 s (--sweep-trial-timeout); worker 'fake2' did not return and was killed after 12 s"
    )
    assert ("kill", "fake2") in harness.calls
    assert not [c for c in harness.calls if c[0] == "hang"]  # it never returned: only the kill ended it
    assert harness.calls[-1] == ("close", ["fake1"])  # no trial waited: no replacement
    assert [c[0] for c in harness.calls].count("spawn") == 2


def test_files_that_take_long_to_cross_are_not_a_timeout(sweep: SweepPytester) -> None:
    harness = Harness({"config_002": ["ship_slowly"]}, workers=1)
    result, records = run(sweep, harness, "--sweep-trial-timeout=2")
    result.assert_outcomes(passed=4)
    assert records["config_002"]["status"] == "passed"
    assert not [c for c in harness.calls if c[0] == "kill"]


def test_workers_that_die_while_starting_are_replaced_until_three_in_a_row(sweep: SweepPytester) -> None:
    # fake1 dies, fake2 starts (the count starts again), fake3 and fake4 die, fake5 starts
    harness = Harness({}, start=["die", "ready", "die", "die", "ready"])
    result, records = run(sweep, harness)
    result.assert_outcomes(passed=4)
    assert {r["worker"] for r in records.values()} == {"fake2", "fake5"}
    result.stdout.fnmatch_lines(
        [
            "sweep: worker 'fake1' died while starting (RuntimeError: the actor died in its constructor); starting fake3",
            "sweep: worker 'fake3' died while starting (*); starting fake4",
            "sweep: worker 'fake4' died while starting (*); starting fake5",
        ]
    )
    harness = Harness({}, workers=1, start=["die"])
    result, records = run(sweep, harness, trials=2)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*sweep: 3 Fake workers died while starting; the last: RuntimeError: *"])
    assert harness.calls[-1] == ("close", [])


def test_x_stops_handing_out_trials_and_lets_the_running_ones_finish(sweep: SweepPytester) -> None:
    harness = Harness({"config_001": ["fail"]})
    result, records = run(sweep, harness, "-x")
    result.assert_outcomes(passed=1, failed=1)
    assert [(n, r["status"]) for n, r in records.items()] == [
        ("config_001", "failed"),
        ("config_002", "passed"),  # it was running already
        ("config_003", "not_run"),
        ("config_004", "not_run"),
    ]
    assert [c[2] for c in harness.calls if c[0] == "submit"] == ["config_001", "config_002"]
    assert harness.calls[-1] == ("close", ["fake1", "fake2"])


def test_ctrl_c_kills_every_worker_at_once_and_writes_the_summary(sweep: SweepPytester) -> None:
    harness = Harness({"config_004": ["ctrl-c"]})  # while fake1, done with config_003, is idle
    result, records = run(sweep, harness)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert [(n, r["status"]) for n, r in records.items()] == [
        ("config_001", "passed"),
        ("config_002", "passed"),
        ("config_003", "passed"),
        ("config_004", "not_run"),
    ]
    assert harness.calls[-1] == ("close", [])  # no session is waited for, not even the idle one's
    sweep_dir = sweep.only_sweep_dir(sweep.path / "out")
    assert "The sweep was interrupted" in (sweep_dir / "sweep_analysis.txt").read_text()


def test_sigterm_is_a_preemption_the_running_trial_reports_and_the_run_exits_75(sweep: SweepPytester) -> None:
    """SIGTERM (issue 21): no new trial starts, the running one reaches its boundary and reports,
    the summary is written and the exit code (75, EX_TEMPFAIL) tells a requeue script to run again."""
    harness = Harness({"config_004": ["sigterm"]})
    result, records = run(sweep, harness)
    assert result.ret == 75
    assert [(n, r["status"]) for n, r in records.items()] == [
        ("config_001", "passed"),
        ("config_002", "passed"),
        ("config_003", "passed"),
        ("config_004", "passed"),
    ]
    after = harness.calls[harness.calls.index(("sigterm", "fake2", "config_004")) + 1 :]
    assert after == [("close", ["fake1", "fake2"])]  # nothing new submitted, nothing killed
    sweep_dir = sweep.only_sweep_dir(sweep.path / "out")
    assert "The sweep was interrupted" in (sweep_dir / "sweep_analysis.txt").read_text()


class NeverReady(Scripted):
    """Workers that Ray cannot place: they never start."""

    def poll(self, timeout: float) -> None:
        self.harness.clock.now += timeout
        if self.harness.clock.now > 1000.0 + 120:
            raise KeyboardInterrupt  # the user read the notice and stops the sweep


def test_trials_that_wait_without_a_worker_say_so_once(sweep: SweepPytester) -> None:
    harness = Harness({}, workers=1, dispatcher=NeverReady)
    result, records = run(sweep, harness, trials=2)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    notices = [line for line in result.outlines if "wait for a worker" in line]
    assert notices == [
        "sweep: 2 trials wait for a worker; the script places none; Ctrl-C stops the sweep and writes its summary"
    ]
    assert {r["status"] for r in records.values()} == {"not_run"}


def test_a_trial_whose_files_were_refused_fails_with_the_sentence_and_keeps_its_metrics(
    sweep: SweepPytester,
) -> None:
    harness = Harness({"config_002": ["refused"]}, workers=1, ship=True)
    result, records = run(sweep, harness, trials=3)
    result.assert_outcomes(passed=2, failed=1)
    refused = records["config_002"]
    assert (refused["status"], refused["error"]) == ("failed", "trial file x.bin is 2 GiB, over the limit")
    assert refused["test_acc"] is not None and refused["worker"] == "fake1"
    assert [records[n]["status"] for n in ("config_001", "config_003")] == ["passed", "passed"]
    result.stdout.fnmatch_lines(["*trial file x.bin is 2 GiB, over the limit*"])


def test_a_resumed_sweep_seeds_a_worker_with_its_own_folder(sweep: SweepPytester) -> None:
    harness = Harness({"config_002": ["fail"]}, workers=1, ship=True)
    result, _ = run(sweep, harness, trials=2)
    result.assert_outcomes(passed=1, failed=1)
    sweep_dir = sweep.only_sweep_dir(sweep.path / "out")
    finished = sorted(p.relative_to(sweep_dir).as_posix() for p in sweep_dir.glob("*/training_metrics.json"))
    assert len(finished) == 2
    harness = Harness({}, workers=1, ship=True)
    result, records = run(sweep, harness, f"--sweep-resume={sweep_dir}", trials=2)
    assert [(n, r["status"]) for n, r in records.items()] == [("config_001", "passed"), ("config_002", "passed")]
    assert [c for c in harness.calls if c[0] == "seed"] == [("seed", "fake1", finished)]
    assert harness.calls.index(("seed", "fake1", finished)) < harness.calls.index(("submit", "fake1", "config_001"))


def test_annotate_adds_fields_to_the_shipped_record_only() -> None:
    data = {"user_properties": [("other", "x"), (TrialRecord.WIRE_KEY, json.dumps({"worker": "ray1"}))]}
    annotate(data, {"node": "10.0.0.3", "requeued": ["node 10.0.0.2 of worker 'ray2' died"]})
    assert data["user_properties"][0] == ("other", "x")
    assert json.loads(data["user_properties"][1][1]) == {
        "worker": "ray1",
        "node": "10.0.0.3",
        "requeued": ["node 10.0.0.2 of worker 'ray2' died"],
    }
