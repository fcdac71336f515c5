"""The controller's report -> record logic, fed with real ``TestReport`` objects (no subprocess).

As xdist unit-tests its schedulers against a stand-in node, the controller here gets a stand-in
for the pytest config (it records the reporter hooks it is asked to call) and for the sources (a
fixed set of trials); everything it computes is the real code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_sweep.matrix.controller import NOT_FINISHED_YET, Controller
from pytest_sweep.matrix.records import SweepResult, new_record
from pytest_sweep.matrix.runner import RECORD_PROPERTY
from pytest_sweep.matrix.trial import Trial


def _trial(n: int) -> Trial:
    lr = f"0.00{n}"
    return Trial(
        name=f"config_{n:03d}",
        index=n,
        source="sweep.rc",
        values={"CONFIG_LEARNING_RATE": float(lr)},
        raw={"CONFIG_LEARNING_RATE": lr},
        swept={"CONFIG_LEARNING_RATE": lr},
    )


class FakeSources:
    def __init__(self, trials: list[Trial]) -> None:
        self.trials = {f"sweep.rc::{t.id}": t for t in trials}
        self.sources: list[Any] = []

    def base_record(self, trial: Trial, nodeid: str) -> dict[str, Any]:
        return new_record(trial.name, trial.raw, trial.swept, nodeid=nodeid, seed=trial.seed, trial_dir=trial.folder)

    def trial_for_nodeid(self, nodeid: str) -> Trial | None:
        return self.trials.get(nodeid)


class FakeHook:
    def __init__(self, fail_progress: bool = False) -> None:
        self.calls: list[tuple[str, SweepResult]] = []
        self.fail_progress = fail_progress

    def pytest_sweep_finished(self, config: Any, sweep: SweepResult) -> None:
        self.calls.append(("finished", sweep))

    def pytest_sweep_progress(self, config: Any, sweep: SweepResult) -> None:
        if self.fail_progress:
            raise OSError(28, "No space left on device")
        self.calls.append(("progress", sweep))


class FakeReporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


class FakePluginManager:
    def __init__(self) -> None:
        self.reporter = FakeReporter()

    def get_plugin(self, name: str) -> Any:
        return self.reporter if name == "terminalreporter" else None


class FakeConfig:
    def __init__(self, fail_progress: bool = False) -> None:
        self.hook = FakeHook(fail_progress)
        self.pluginmanager = FakePluginManager()


NODEIDS = [f"sweep.rc::{_trial(n).id}" for n in (1, 2, 3)]


def _controller(tmp_path: Path, interval: float = 3600.0, fail_progress: bool = False) -> tuple[Controller, Any]:
    config = FakeConfig(fail_progress)
    trials = [_trial(n) for n in (1, 2, 3)]
    sources = FakeSources(trials)
    controller = Controller(config, sources, tmp_path / "sweep", interval)  # type: ignore[arg-type]
    for nodeid, trial in zip(NODEIDS, trials, strict=True):
        controller.expect(nodeid, trial)
    return controller, config


def _report(
    nodeid: str,
    outcome: Literal["passed", "failed", "skipped"],
    when: Literal["setup", "call", "teardown"] = "call",
    longrepr: Any = None,
    record: dict[str, Any] | None = None,
) -> pytest.TestReport:
    props = [(RECORD_PROPERTY, json.dumps(record))] if record is not None else []
    return pytest.TestReport(nodeid, ("sweep.rc", 0, nodeid), {}, outcome, longrepr, when, user_properties=props)


def _shipped(nodeid: str, status: str, acc: float | None = None, error: str | None = None) -> dict[str, Any]:
    trial = _trial(NODEIDS.index(nodeid) + 1)
    rec = new_record(trial.name, trial.raw, trial.swept, nodeid=nodeid)
    rec.update(status=status, test_acc=acc, error=error, worker="gw0")
    return rec


def test_a_shipped_record_is_taken_as_is(tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path)
    rec = _shipped(NODEIDS[0], "passed", 97.5)
    controller.take_report(_report(NODEIDS[0], "passed", record=rec))
    assert controller.records[NODEIDS[0]] == rec


def test_a_skip_becomes_a_skipped_record_with_its_reason(tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path)
    longrepr = ("sweep.rc", 0, "Skipped: state pruning needs the AdamWPrune optimizer")
    controller.take_report(_report(NODEIDS[1], "skipped", when="setup", longrepr=longrepr))
    rec = controller.records[NODEIDS[1]]
    assert rec["status"] == "skipped" and rec["error"] == "state pruning needs the AdamWPrune optimizer"
    assert rec["config_file"] == "config_002" and rec["CONFIG_LEARNING_RATE"] == 0.002


def test_a_setup_error_names_the_phase_and_the_last_error_line(tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path)
    text = "def fixture():\n>   raise RuntimeError('disk gone')\nE   RuntimeError: disk gone\n\nconftest.py:3: RuntimeError"
    controller.take_report(_report(NODEIDS[0], "failed", when="setup", longrepr=text))
    assert controller.records[NODEIDS[0]]["error"] == "setup failed: RuntimeError: disk gone"


def test_a_crashed_worker_is_recognised_by_the_crash_hook_not_by_the_text(tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path)
    message = "worker 'gw1' crashed while running 'sweep.rc::config_003[LEARNING_RATE=0.003]'"
    controller.crash(NODEIDS[2], message)
    controller.take_report(_report(NODEIDS[2], "failed", longrepr=message))
    assert controller.records[NODEIDS[2]]["error"] == f"worker crashed: {message}"
    # the same words in an ordinary failure are an ordinary failure
    controller.take_report(_report(NODEIDS[1], "failed", longrepr="E   ValueError: the worker crashed"))
    assert controller.records[NODEIDS[1]]["error"] == "call failed: ValueError: the worker crashed"


def test_a_teardown_error_does_not_undo_a_trained_result(tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path)
    rec = _shipped(NODEIDS[0], "passed", 91.0)
    controller.take_report(_report(NODEIDS[0], "passed", record=rec))
    controller.take_report(_report(NODEIDS[0], "failed", when="teardown", longrepr="E   OSError: busy"))
    assert controller.records[NODEIDS[0]]["status"] == "passed"


def test_unknown_node_ids_are_ignored(tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path)
    controller.take_report(_report("tests/test_other.py::test_x", "failed", longrepr="E   boom"))
    assert controller.records == {}


def test_finish_lists_every_trial_in_collection_order_and_the_rest_as_not_run(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path)
    controller.take_report(_report(NODEIDS[2], "passed", record=_shipped(NODEIDS[2], "passed", 90.0)))
    controller.take_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    result = controller.finish(interrupted=True)
    assert result is not None and result.interrupted
    assert [r["config_file"] for r in result.records] == ["config_001", "config_002", "config_003"]
    assert [r["status"] for r in result.records] == ["passed", "not_run", "passed"]
    assert result.records[1]["error"] == "sweep interrupted"
    assert [name for name, _ in config.hook.calls] == ["finished"]
    assert controller.finish(interrupted=False) is result  # once only
    assert len(config.hook.calls) == 1


def test_interval_zero_writes_an_interim_summary_after_every_result(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=0.0)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    controller.on_report(_report(NODEIDS[0], "passed", when="teardown"))  # no new result: no write
    controller.on_report(_report(NODEIDS[1], "passed", record=_shipped(NODEIDS[1], "passed", 93.0)))
    progress = [sweep for name, sweep in config.hook.calls if name == "progress"]
    assert len(progress) == 2 and all(s.running for s in progress)
    assert [r["status"] for r in progress[0].records] == ["passed", "not_run", "not_run"]
    assert progress[0].records[1]["error"] == NOT_FINISHED_YET


def test_a_long_interval_writes_nothing_while_the_sweep_runs(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=3600.0)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    assert config.hook.calls == []


def test_a_failing_interim_write_is_one_line_and_the_sweep_goes_on(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=0.0, fail_progress=True)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    (line,) = config.pluginmanager.reporter.lines
    assert line.startswith("sweep: interim summary not written: OSError: [Errno 28] No space left on device")
    assert controller.finish(interrupted=False) is not None


def test_xdist_controller_learns_trials_from_node_ids(tmp_path: Path) -> None:
    config = FakeConfig()
    sources = FakeSources([_trial(1), _trial(2)])
    controller = Controller(config, sources, tmp_path / "sweep", 3600.0)  # type: ignore[arg-type]
    for nodeid in [*NODEIDS[:2], "tests/test_other.py::test_x"]:
        controller.expect_nodeid(nodeid)
    assert list(controller.expected) == NODEIDS[:2]
