"""The pytest plugin: options, collection of sweeps, result shipping, end-of-run summary.

Registered through the ``pytest11`` entry point ``matrix.plugin``.  It stays inert
unless ``--range-config``, ``--config-dir`` or ``--sweep-symbols`` is given.
"""
from __future__ import annotations

import atexit
import functools
import gc
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from matrix import estimate, hookspecs, options
from matrix.collect import SESSION_KEY, SweepDir, SweepFile, SweepItem
from matrix.session import SweepSession, collect_symbols, terminal_echo
from matrix.errors import RangeConfigError
from matrix.generate import write_sweep_configs
from matrix.progress import TrialTicker
from matrix.symbols import Symbol


def pytest_addoption(parser: pytest.Parser) -> None:
    options.addoption(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption("range_config") or config.getoption("config_dir"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if _active(config):
        # pushed before any plugin's pytest_configure, so it runs after all their cleanups
        # (LIFO), among them unraisableexception's gc.collect(): see SweepPlugin.thaw
        config.add_cleanup(functools.partial(_thaw, config))
    if config.getoption("sweep_generate"):
        return _generate(config)
    if not config.getoption("sweep_symbols"):
        return None
    table = collect_symbols(config)
    lines = [f"{len(table)} config symbols (a range config may set any of them)"]
    current = None
    for sym in sorted(table, key=lambda s: (s.plugin, s.name)):
        if sym.plugin != current:
            current = sym.plugin
            lines += ["", f"from {current}:"]
        lines.append(f"  {sym.name} ({sym.help_hint().removeprefix('expected ')}; default {_default(sym)})")
        lines.append(f"      {sym.help}")
    print("\n".join(lines))
    return 0


def _generate(config: pytest.Config) -> int:
    """``--sweep-generate DIR``: the guide's sweep-generate step, validated like a run."""
    if not config.getoption("range_config"):
        raise pytest.UsageError("--sweep-generate needs --range-config=FILE (the range config to expand)")
    if len(config.getoption("range_config")) > 1:
        raise pytest.UsageError("--sweep-generate takes one --range-config; generate each into its own folder")
    session = SweepSession(config)
    source = session.sources[0]
    assert source.rc is not None
    out = config.invocation_params.dir / config.getoption("sweep_generate")
    try:
        paths = write_sweep_configs(source.rc, out, limit=session.limit)
    except RangeConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(f"wrote {len(paths)} configs and combinations_summary.txt to {out}")
    print(f"run them with: pytest --config-dir={config.getoption('sweep_generate')}")
    return 0


def _default(sym: Symbol) -> str:
    if sym.default is None:
        return "automatic"
    return sym.render(sym.default)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sweep: a trial of a hyperparameter sweep (added by pytest-sweep)")
    if not _active(config):
        return
    session = SweepSession(config)
    config.stash[SESSION_KEY] = session
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --range-config=FILE` runs that sweep, not the project's own tests
        config.args = [str(s.path) for s in session.sources]
    ticker = None
    if not session.is_worker:
        mode = options.progress_mode(config)
        serial = getattr(config.option, "dist", "no") == "no"
        if mode != "none" and serial:
            session.progress = terminal_echo(config)  # per-epoch lines
        elif mode != "none":
            ticker = TrialTicker(config, session)  # a line per finished trial
        if os.name == "posix":
            _trap_sigterm(config)
    _freeze_at_exit()
    config.pluginmanager.register(SweepPlugin(session, ticker), "sweep-session")


def _thaw(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin("sweep-session")
    if isinstance(plugin, SweepPlugin):
        plugin.thaw()


_exit_freeze_registered = False


def _freeze_at_exit() -> None:
    """Leave torch's objects to the OS when the process ends instead of collecting them one by one.

    After a trial, torch and torch._dynamo hold some 300,000 objects; the interpreter's shutdown
    then spends about 1.4 s in cyclic garbage collection (1.6-1.8 s against 0.36-0.45 s with the
    objects frozen, measured here).  Every xdist worker pays it, and the controller waits for its
    workers to exit before it writes the summary.  ``atexit`` runs only when the process really
    ends, never after an in-process ``pytester`` run.
    """
    global _exit_freeze_registered
    if not _exit_freeze_registered:
        _exit_freeze_registered = True
        atexit.register(gc.freeze)


def _trap_sigterm(config: pytest.Config) -> None:
    """SIGTERM ends the run like Ctrl-C, so the summary of finished trials is still written."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        return
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))


class SweepPlugin:
    """The hooks of an active sweep, registered only when one was asked for."""

    def __init__(self, sweep: SweepSession, ticker: TrialTicker | None = None) -> None:
        self.sweep = sweep
        self.ticker = ticker
        self.froze = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        for source in self.sweep.sources:
            if source.kind == "dir" and source.path == path.resolve():
                node = SweepDir.from_parent(parent, path=path)
                node.source = source
                return node
        return None

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        for source in self.sweep.sources:
            if source.kind == "range" and source.path == file_path.resolve():
                node = SweepFile.from_parent(parent, path=file_path)
                node.source = source
                return node
        return None

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session: pytest.Session) -> Any:
        """No cyclic garbage collection while a large grid becomes items.

        Collection builds few cycles but very many objects, so the collector's full
        passes grew with the grid (a third of the time at 100,000 combinations).
        Afterwards the items are moved out of the collector's way for the run.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return (yield)
        finally:
            if was_enabled:
                gc.enable()
            gc.freeze()
            self.froze = True

    def thaw(self) -> None:
        """Give what was frozen back to the collector, last thing in the run.

        pytest's end-of-run ``gc.collect()`` calls (unraisableexception, at unconfigure and in its
        cleanup) have passed by then, so they did not walk the collection's objects or torch's;
        an in-process (``pytester``) run must not leave the calling session's garbage frozen.
        The process-exit freeze (``_freeze_at_exit``) comes after this.
        """
        if self.froze:
            gc.unfreeze()
            self.froze = False

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.sweep.is_worker:
            return
        for item in session.items:
            if isinstance(item, SweepItem):
                self.sweep.expect_item(item)

    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> list[str]:
        trials = [i for i in items if isinstance(i, SweepItem)]
        if self.sweep.is_worker or not trials:
            return []
        return estimate.describe(config, self.sweep, trials)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        reset = getattr(self.sweep.progress, "reset", None)
        if reset is not None:
            reset()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.sweep.is_worker:
            self.sweep.on_report(report)
            if self.ticker is not None:
                self.ticker.report(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: tell each worker where the sweep folder is."""
        node.workerinput["sweep_dir"] = str(self.sweep.dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.ticker is not None:
            self.ticker.workers += 1
        if self.sweep.expected:
            return  # every worker collects the same items
        for nodeid in ids:
            self.sweep.expect_nodeid(nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.sweep.interrupted = True

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # the run is ending: pytest's full collections at unconfigure need not walk torch's
        # objects (0.5-0.7 s per worker, and the controller waits for its workers); see thaw()
        gc.freeze()
        self.froze = True
        if self.sweep.is_worker or session.config.option.collectonly:
            return
        interrupted = self.sweep.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED
        self.sweep.finish(interrupted=interrupted)


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return [
        Symbol("CONFIG_SEED", "int", 42, "Sweep seed: each trial's seed derives from it and the config name", low=0),
    ]
