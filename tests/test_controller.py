"""The controller's report -> record logic, fed with real ``TestReport`` objects (no subprocess).

As xdist unit-tests its schedulers against a stand-in node, the controller here gets a stand-in
for the pytest config (it records the reporter hooks it is asked to call) and for the sources (a
fixed set of trials); everything it computes is the real code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pluggy
import pytest

from pytest_sweep.matrix import hookspecs
from pytest_sweep.matrix.controller import NOT_FINISHED_YET, Controller
from pytest_sweep.matrix.records import SweepResult, TrialRecord, new_record
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


class Reporter:
    """A reporter plugin: records what the controller hands it, or fails like a full disk."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, SweepResult]] = []
        self.fail = fail

    @pytest.hookimpl
    def pytest_sweep_finished(self, config: Any, sweep: SweepResult) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.calls.append(("finished", sweep))

    @pytest.hookimpl
    def pytest_sweep_progress(self, config: Any, sweep: SweepResult) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.calls.append(("progress", sweep))


class TerminalReporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


class FakeConfig:
    """The config's two parts the controller uses: a real plugin manager with our hookspecs, and
    the terminal reporter."""

    def __init__(self, fail: bool = False) -> None:
        self.pluginmanager = pluggy.PluginManager("pytest")
        self.pluginmanager.add_hookspecs(hookspecs)
        self.reporter = Reporter(fail)
        self.terminal = TerminalReporter()
        self.pluginmanager.register(self.reporter, "my-reporter")
        self.pluginmanager.register(self.terminal, "terminalreporter")
        self.hook = self.pluginmanager.hook


NODEIDS = [f"sweep.rc::{_trial(n).id}" for n in (1, 2, 3)]


def _controller(tmp_path: Path, interval: float = 3600.0, fail: bool = False) -> tuple[Controller, Any]:
    config = FakeConfig(fail)
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
    props = [(TrialRecord.WIRE_KEY, json.dumps(record))] if record is not None else []
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
    assert [name for name, _ in config.reporter.calls] == ["finished"]
    assert controller.finish(interrupted=False) is result  # once only
    assert len(config.reporter.calls) == 1


def test_interval_zero_writes_an_interim_summary_after_every_result(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=0.0)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    controller.on_report(_report(NODEIDS[0], "passed", when="teardown"))  # no new result: no write
    controller.on_report(_report(NODEIDS[1], "passed", record=_shipped(NODEIDS[1], "passed", 93.0)))
    progress = [sweep for name, sweep in config.reporter.calls if name == "progress"]
    assert len(progress) == 2 and all(s.running for s in progress)
    assert [r["status"] for r in progress[0].records] == ["passed", "not_run", "not_run"]
    assert progress[0].records[1]["error"] == NOT_FINISHED_YET


def test_a_long_interval_writes_the_first_result_then_nothing_while_the_sweep_runs(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=3600.0)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    # at once: a process killed seconds after its first result still leaves a summary (issue 16)
    assert [name for name, _ in config.reporter.calls] == ["progress"]
    controller.on_report(_report(NODEIDS[1], "passed", record=_shipped(NODEIDS[1], "passed", 93.0)))
    assert [name for name, _ in config.reporter.calls] == ["progress"]


def test_a_failing_interim_write_is_one_line_and_the_sweep_goes_on(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=0.0, fail=True)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    (line,) = config.terminal.lines
    assert line.startswith("sweep: interim summary not written: OSError: [Errno 28] No space left on device")
    assert controller.finish(interrupted=False) is not None


def test_xdist_controller_learns_trials_from_node_ids(tmp_path: Path) -> None:
    config = FakeConfig()
    sources = FakeSources([_trial(1), _trial(2)])
    controller = Controller(config, sources, tmp_path / "sweep", 3600.0)  # type: ignore[arg-type]
    for nodeid in [*NODEIDS[:2], "tests/test_other.py::test_x"]:
        controller.expect_nodeid(nodeid)
    assert list(controller.expected) == NODEIDS[:2]


def test_a_failing_final_write_is_one_line_and_the_other_reporters_still_write(tmp_path: Path) -> None:
    controller, config = _controller(tmp_path, interval=0.0)
    second = Reporter()
    config.pluginmanager.register(second, "second-reporter")
    # the interim files the built-in reporter would write, on disk when the interim write returns
    # (the analysis text is known by being that very file; the JSON files by their field)
    controller.dir.mkdir(parents=True)
    interim = [{"error": NOT_FINISHED_YET, "interim": True}]
    (controller.dir / "sweep_summary.json").write_text(json.dumps(interim), encoding="utf-8")
    (controller.dir / "sweep_analysis.txt").write_text("still running", encoding="utf-8")
    (controller.dir / "sweep_analysis.json").write_text('{"running": true}', encoding="utf-8")
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    config.reporter.fail = True
    controller.take_report(_report(NODEIDS[1], "passed", record=_shipped(NODEIDS[1], "passed", 93.0)))
    result = controller.finish(interrupted=False)
    assert result is not None
    assert [name for name, _ in second.calls] == ["progress", "finished"]  # not stopped by the failure
    failed = [line for line in config.terminal.lines if "could not write its files" in line]
    assert len(failed) == 1 and failed[0].startswith("sweep: my-reporter could not write its files: OSError")
    assert "--sweep-resume=" in failed[0]
    # the interim summary would call config_002 "not finished": it is gone
    assert not (controller.dir / "sweep_summary.json").exists()
    assert not (controller.dir / "sweep_analysis.txt").exists()
    assert not (controller.dir / "sweep_analysis.json").exists()


def test_an_analysis_text_rewritten_since_the_interim_write_is_kept(tmp_path: Path) -> None:
    """A text file is interim only while it is the very file the last interim write left: one
    written since (the final analysis, before a later reporter failed) stays."""
    controller, config = _controller(tmp_path, interval=0.0)
    controller.dir.mkdir(parents=True)
    (controller.dir / "sweep_analysis.txt").write_text("still running", encoding="utf-8")
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    (controller.dir / "sweep_analysis.txt").write_text("the final analysis", encoding="utf-8")
    (controller.dir / "sweep_analysis.json").write_text('{"running": false}', encoding="utf-8")
    config.reporter.fail = True
    assert controller.finish(interrupted=False) is not None
    assert (controller.dir / "sweep_analysis.txt").read_text(encoding="utf-8") == "the final analysis"
    assert (controller.dir / "sweep_analysis.json").is_file()
    assert not any("removed the interim" in line for line in config.terminal.lines)


def test_a_final_summary_is_never_taken_for_an_interim_one(tmp_path: Path) -> None:
    """Issue 16, item 1: the final file of a resumed sweep may still quote "not finished ..." in a
    deselected trial's record; its ``interim`` field says what it is."""
    controller, config = _controller(tmp_path, interval=0.0)
    controller.on_report(_report(NODEIDS[0], "passed", record=_shipped(NODEIDS[0], "passed", 92.0)))
    final = [{"error": NOT_FINISHED_YET, "status": "not_run", "interim": False}]
    (controller.dir / "sweep_summary.json").write_text(json.dumps(final), encoding="utf-8")
    config.reporter.fail = True
    assert controller.finish(interrupted=False) is not None
    assert json.loads((controller.dir / "sweep_summary.json").read_text(encoding="utf-8")) == final


def _previous(status: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for nodeid in NODEIDS:
        rec = _shipped(nodeid, status[nodeid], 80.0 if status[nodeid] == "passed" else None)
        rec["trial_dir"] = _trial(NODEIDS.index(nodeid) + 1).folder
        rows.append(rec)
    return rows


def test_a_resume_of_one_trial_keeps_every_record_of_the_sweep(tmp_path: Path) -> None:
    config = FakeConfig()
    trials = [_trial(n) for n in (1, 2, 3)]
    previous = _previous(dict.fromkeys(NODEIDS, "passed"))
    controller = Controller(config, FakeSources(trials), tmp_path, 3600.0, previous)  # type: ignore[arg-type]
    controller.expect(NODEIDS[1], trials[1])  # -k config_002
    rerun = _shipped(NODEIDS[1], "passed", 99.0)
    rerun["trial_dir"] = trials[1].folder
    controller.take_report(_report(NODEIDS[1], "passed", record=rerun))
    result = controller.finish(interrupted=False)
    assert result is not None
    assert [(r["config_file"], r["test_acc"]) for r in result.records] == [
        ("config_001", 80.0),
        ("config_002", 99.0),
        ("config_003", 80.0),
    ]


def test_ctrl_c_during_a_resume_keeps_the_trials_that_had_passed(tmp_path: Path) -> None:
    config = FakeConfig()
    trials = [_trial(n) for n in (1, 2, 3)]
    previous = _previous({NODEIDS[0]: "passed", NODEIDS[1]: "passed", NODEIDS[2]: "not_run"})
    controller = Controller(config, FakeSources(trials), tmp_path, 3600.0, previous)  # type: ignore[arg-type]
    for nodeid, trial in zip(NODEIDS, trials, strict=True):
        controller.expect(nodeid, trial)
    result = controller.finish(interrupted=True)  # interrupted before any result arrived
    assert result is not None
    assert [r["status"] for r in result.records] == ["passed", "passed", "not_run"]
