"""Every ``pytest_sweep_*`` hook goes through pluggy: a plugin's wrappers run, a failing reporter
stays isolated, and the core calls the scheduler factory hook it owns (``-p no:sweep.schedulers``
leaves a plugin's scheduler working).  Real sweeps of the torch-free toy trainer, in process."""

from __future__ import annotations

import json
from collections.abc import Generator

import pluggy
import pytest
from runtime_toy import by_name, only_sweep, write_toy

from pytest_sweep.matrix.hookcall import call_each

from sweep_helpers import SweepPytester, assert_usage_error

#: A wrapper of each kind around ``pytest_sweep_finished``, and a plain reporter that writes a file.
WRAPPERS = """

import json


def _log(config, line):
    with open(config.rootpath / "hooks.log", "a", encoding="utf-8") as f:
        f.write(line + "\\n")


@pytest.hookimpl(wrapper=True)
def pytest_sweep_finished(config, sweep):
    _log(config, json.dumps({"before": len(sweep.records), "mine": (sweep.dir / "mine.txt").exists()}))
    result = yield
    _log(config, json.dumps({"after": result, "mine": (sweep.dir / "mine.txt").exists(),
                             "summary": (sweep.dir / "sweep_summary.json").exists()}))
    return result


class Reporters:
    def __init__(self, fail):
        self.fail = fail

    @pytest.hookimpl(tryfirst=True)
    def pytest_sweep_finished(self, config, sweep):
        if self.fail == "reporter":
            raise OSError(28, "No space left on device")
        (sweep.dir / "mine.txt").write_text(str(sweep.count("passed")), encoding="utf-8")
        return "mine"


class OldStyle:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_sweep_finished(self, config, sweep):
        _log(config, "old before")
        outcome = yield
        if os.environ.get("TOY_WRAPPER_FAILS"):
            raise RuntimeError("the wrapper broke")
        _log(config, "old after " + json.dumps(outcome.get_result()))


def pytest_configure(config):
    config.pluginmanager.register(Reporters(os.environ.get("TOY_FAIL", "")), "toy-reporter")
    config.pluginmanager.register(OldStyle(), "toy-old-wrapper")
"""


def _log(sp: SweepPytester) -> list[str]:
    return (sp.path / "hooks.log").read_text(encoding="utf-8").splitlines()


def test_wrappers_of_the_finished_hook_run_once_around_the_reporters(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=1\nCONFIG_TOY_Q=1|2|3\n", extra_conftest=WRAPPERS)
    result = sp.run(f"--range-config={rc}")
    result.assert_outcomes(passed=3)
    assert "could not write" not in result.stdout.str()
    lines = _log(sp)
    assert len(lines) == 4, lines  # each wrapper once, around every plain implementation
    old_first = lines[0] == "old before"
    new_before = json.loads(lines[1] if old_first else lines[0])
    assert new_before == {"before": 3, "mine": False}
    new_after = json.loads(next(line for line in lines if line.startswith('{"after"')))
    # the reporters ran inside: the plain reporter's file and the built-in summary are there
    assert new_after == {"after": ["mine"], "mine": True, "summary": True}
    assert any(line == 'old after ["mine"]' for line in lines), lines
    assert (only_sweep(sp.path / "test_matrix_results") / "mine.txt").read_text(encoding="utf-8") == "3"


def test_a_failing_reporter_is_isolated_with_wrappers_around_it(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = sweep_pytester
    monkeypatch.setenv("TOY_FAIL", "reporter")
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=1\nCONFIG_TOY_Q=1|2\n", extra_conftest=WRAPPERS)
    result = sp.run(f"--range-config={rc}")
    result.assert_outcomes(passed=2)
    failed = [line for line in result.stdout.lines if "could not write" in line]
    assert len(failed) == 1, failed
    assert "sweep: toy-reporter could not write its files: OSError: No space left on device" in failed[0]
    folder = only_sweep(sp.path / "test_matrix_results")
    assert len(by_name(folder)) == 2  # the built-in reporters still wrote theirs
    after = [line for line in _log(sp) if line.startswith('{"after"')]
    assert [json.loads(line) for line in after] == [{"after": [], "mine": False, "summary": True}]


def test_a_failing_wrapper_is_named_and_the_reporters_inside_it_wrote(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = sweep_pytester
    monkeypatch.setenv("TOY_WRAPPER_FAILS", "1")
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=1\nCONFIG_TOY_Q=1|2\n", extra_conftest=WRAPPERS)
    result = sp.run(f"--range-config={rc}")
    result.assert_outcomes(passed=2)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*sweep: one of *conftest.py, toy-old-wrapper could not write *: RuntimeError: the wrapper broke*"])  # fmt: skip
    assert len(by_name(only_sweep(sp.path / "test_matrix_results"))) == 2


#: A scheduler of the conftest's own: stops every trial of quality below 5 after its first epoch.
BELOW5 = """

from pytest_sweep.matrix import Stop


class Below5:
    def epoch_ended(self, trial, metrics):
        if metrics["test_acc"] < 50:
            return Stop(metrics["epoch"], f"stopped at epoch {metrics['epoch']}: below 50")
        return None

    def trial_finished(self, trial, record):
        pass


@pytest.hookimpl
def pytest_sweep_make_scheduler(config, sweep_dir):
    return Below5() if config.getoption("sweep_scheduler") == "below5" else None
"""


def test_a_conftest_scheduler_works_without_the_built_in_schedulers(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=3\nCONFIG_TOY_Q=1|7\n", extra_conftest=BELOW5)
    result = sp.run(f"--range-config={rc}", "--sweep-scheduler=below5", "-p", "no:sweep.schedulers")
    result.assert_outcomes(passed=2)
    records = sorted(by_name(only_sweep(sp.path / "test_matrix_results")).values(), key=lambda r: r["CONFIG_TOY_Q"])
    assert [(r["status"], r["epochs_run"]) for r in records] == [("stopped", 1), ("passed", 3)]
    assert (records[0]["rung"], records[0]["stop_reason"]) == (1, "stopped at epoch 1: below 50")
    assert not list((sp.path / "test_matrix_results").rglob("rungs.sqlite"))  # the built-in stayed off


def test_a_built_in_scheduler_asked_for_while_turned_off_is_one_usage_line(sweep_pytester: SweepPytester) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|7\n", extra_conftest=BELOW5)
    result = sweep_pytester.run(f"--range-config={rc}", "--sweep-scheduler=asha", "-p", "no:sweep.schedulers")
    assert_usage_error(
        result,
        "ERROR: --sweep-scheduler=asha: no installed plugin provides this scheduler (sweep.schedulers, *"
        "is off: -p no:sweep.schedulers)",
    )


#: A wrapper of ``pytest_sweep_declare_symbols`` that adds a symbol of its own.
DECLARE_WRAPPER = """


class AddsOne:
    @pytest.hookimpl(wrapper=True)
    def pytest_sweep_declare_symbols(self):
        declared = yield
        return [*declared, [Symbol("CONFIG_WRAPPED", "int", 0, "Added by a wrapper")]]


def pytest_addhooks(pluginmanager):
    pluginmanager.register(AddsOne(), "toy-declare-wrapper")
"""


def test_a_wrapper_of_declare_symbols_runs(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=1\nCONFIG_WRAPPED=1|2\n", extra_conftest=DECLARE_WRAPPER)
    result = sp.run(f"--range-config={rc}")
    result.assert_outcomes(passed=2)
    assert sorted(r["CONFIG_WRAPPED"] for r in by_name(only_sweep(sp.path / "test_matrix_results")).values()) == [1, 2]
    listing = sp.run(f"--range-config={rc}", "--sweep-symbols")
    listing.stdout.fnmatch_lines(["from toy-declare-wrapper:", "  CONFIG_WRAPPED (int; default 0)"], consecutive=True)


# -- call_each on its own: pluggy's order, wrappers once ----------------------------------------------
hookspec = pluggy.HookspecMarker("toy")
hookimpl = pluggy.HookimplMarker("toy")


class Spec:
    @hookspec
    def toy_hook(self, value: int) -> int:  # type: ignore[empty-body]
        """A hook."""


def test_call_each_keeps_pluggy_order_and_isolates() -> None:
    pm = pluggy.PluginManager("toy")
    pm.add_hookspecs(Spec)
    calls: list[str] = []

    class Plain:
        def __init__(self, name: str, fails: bool = False) -> None:
            self.name, self.fails = name, fails

        @hookimpl
        def toy_hook(self, value: int) -> int:
            calls.append(self.name)
            if self.fails:
                raise ValueError(f"{self.name} broke")
            return value

    class First:
        @hookimpl(tryfirst=True)
        def toy_hook(self, value: int) -> int:
            calls.append("first")
            return value + 1

    class Last:
        @hookimpl(trylast=True)
        def toy_hook(self, value: int) -> int:
            calls.append("last")
            return value - 1

    class Wrap:
        @hookimpl(wrapper=True)
        def toy_hook(self, value: int) -> object:
            calls.append("wrap in")
            result = yield
            calls.append(f"wrap out {result}")
            return result

    for name, plugin in [("last", Last()), ("a", Plain("a")), ("first", First()), ("b", Plain("b", True))]:
        pm.register(plugin, name)
    pm.register(Wrap(), "wrap")
    results, failures = call_each(pm, "toy_hook", {"value": 10}, isolate=True)
    assert calls == ["wrap in", "first", "b", "a", "last", "wrap out [11, 10, 9]"]
    assert results == [11, 10, 9]
    assert [(name, str(exc)) for name, exc in failures] == [("b", "b broke")]
    calls.clear()
    with pytest.raises(ValueError, match="b broke"):
        call_each(pm, "toy_hook", {"value": 10}, isolate=False)
    assert calls == ["wrap in", "first", "b"]


def test_call_each_runs_the_wrapper_of_a_plugin_that_also_implements_the_hook_in_pluggys_order() -> None:
    """A plugin may wrap a hook and implement it too (``specname``); several plugins may be
    ``tryfirst``/``trylast``, wrappers too: call_each calls them all in exactly pluggy's order."""
    calls: list[str] = []

    def plain(name: str, tryfirst: bool = False, trylast: bool = False) -> object:
        class Plugin:
            @hookimpl(tryfirst=tryfirst, trylast=trylast)
            def toy_hook(self, value: int) -> int:
                calls.append(name)
                return value

        return Plugin()

    def wrapper(name: str, tryfirst: bool = False, trylast: bool = False) -> object:
        class Plugin:
            @hookimpl(wrapper=True, tryfirst=tryfirst, trylast=trylast)
            def toy_hook(self, value: int) -> Generator[None, list[int], list[int]]:
                calls.append(f"{name} in")
                result = yield
                calls.append(f"{name} out")
                return result

        return Plugin()

    class Both:
        @hookimpl(wrapper=True, specname="toy_hook")
        def wrap_it(self, value: int) -> Generator[None, list[int], list[int]]:
            calls.append("both in")
            result = yield
            calls.append("both out")
            return [*result, -1]

        @hookimpl
        def toy_hook(self, value: int) -> int:
            calls.append("both")
            return value

    pm = pluggy.PluginManager("toy")
    pm.add_hookspecs(Spec)
    plugins = [
        ("last1", plain("last1", trylast=True)),
        ("w-last", wrapper("w-last", trylast=True)),
        ("a", plain("a")),
        ("last2", plain("last2", trylast=True)),
        ("first1", plain("first1", tryfirst=True)),
        ("w", wrapper("w")),
        ("both", Both()),
        ("b", plain("b")),
        ("w-first", wrapper("w-first", tryfirst=True)),
        ("first2", plain("first2", tryfirst=True)),
    ]
    for name, plugin in plugins:
        pm.register(plugin, name)
    expected = pm.hook.toy_hook(value=3)
    order = list(calls)
    assert "both in" in order and "both" in order
    calls.clear()
    results, failures = call_each(pm, "toy_hook", {"value": 3}, isolate=True)
    assert (calls, results, failures) == (order, expected, [])
