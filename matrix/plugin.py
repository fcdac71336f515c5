"""The pytest plugin of the core: one plugin object per role of the process.

Registered as ``sweep.core`` by the ``pytest11`` entry point ``sweep`` (``pytest_sweep.entry``,
which also defines the options and adds the hookspecs) only when ``--range-config``,
``--config-dir``, ``--sweep-generate`` or ``--sweep-symbols`` is given.
When a sweep is active, every process parses the sources (:class:`~.sources.Sources`) and
collects; then, as xdist splits its own roles:

- a process that runs trials (serial run, xdist worker) registers :class:`RunnerPlugin`;
- a process where results arrive (serial run, xdist controller) registers :class:`ControllerPlugin`.
"""

from __future__ import annotations

import _thread
import atexit
import functools
import gc
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import estimate, scheduler_hook, search, storage
from pytest_sweep.matrix.collect import SweepDir, SweepFile, SweepItem
from pytest_sweep.matrix.controller import CONTROLLER_KEY, Controller
from pytest_sweep.matrix.errors import RangeConfigError, printable
from pytest_sweep.matrix.generate import write_sweep_configs
from pytest_sweep.matrix.options import WORKERINPUT_KEY, SweepOptions, ends_at_cmdline, runs_sweep, sweep_options
from pytest_sweep.matrix.preempt import (
    EXIT_PREEMPTED,
    FLAG_FILE,
    GRACE_SECONDS,
    PREEMPTION_KEY,
    PROBE_KEY,
    Preemption,
    clear_flag,
    raise_flag,
)
from pytest_sweep.matrix.progress import TerminalEcho, TrialTicker
from pytest_sweep.matrix.ray.backend import RayBackend
from pytest_sweep.matrix.ray.backend import check_usage as check_ray_usage
from pytest_sweep.matrix.resume import ResumeError, grid_change, previous_records, resume_dir
from pytest_sweep.matrix.runner import RUNNER_KEY, Runner, process_unsafe
from pytest_sweep.matrix.sources import SOURCES_KEY, Sources, collect_symbols
from pytest_sweep.matrix.symbols import Symbol

#: The process's session: its exit status for a process that must end at once, and the
#: controller's SIGTERM handler stops Ray's loop through it.
SESSION_KEY = pytest.StashKey[pytest.Session]()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    # the options are resolved in pytest_configure (a Ray actor's workerinput is set by then), or
    # here for a step that ends the run before pytest configures
    if runs_sweep(config.option):
        # pushed before any plugin's pytest_configure, so it runs after all their cleanups
        # (LIFO), among them unraisableexception's gc.collect(): see CollectorPlugin.thaw
        config.add_cleanup(functools.partial(_thaw, config))
    step = ends_at_cmdline(config.option)
    if step is None:
        return None
    if step == "generate":
        return _generate(config, sweep_options(config))
    print(_symbols_listing(config))  # reads no option: a listing, whatever the ini says
    return 0


def _symbols_listing(config: pytest.Config) -> str:
    table = collect_symbols(config)
    lines = [f"{len(table)} config symbols (a range config may set any of them)"]
    current = None
    for sym in sorted(table, key=lambda s: (s.plugin, s.name)):
        if sym.plugin != current:
            current = sym.plugin
            lines += ["", f"from {current}:"]
        default = "automatic" if sym.default is None else sym.render(sym.default)
        lines.append(f"  {sym.name} ({sym.help_hint().removeprefix('expected ')}; default {default})")
        lines.append(f"      {sym.help}")
    return "\n".join(lines)


def _generate(config: pytest.Config, opts: SweepOptions) -> int:
    """``--sweep-generate DIR``: the guide's sweep-generate step, validated like a run."""
    assert opts.generate is not None
    if not opts.range_config:
        raise pytest.UsageError("--sweep-generate needs --range-config=FILE (the range config to expand)")
    if len(opts.range_config) > 1:
        raise pytest.UsageError("--sweep-generate takes one --range-config; generate each into its own folder")
    sources = Sources(config)
    rc = sources.sources[0].rc
    assert rc is not None
    out = config.invocation_params.dir / opts.generate
    try:
        paths = write_sweep_configs(rc, out, limit=sources.limit)
    except RangeConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(f"wrote {len(paths)} configs and combinations_summary.txt to {out}")
    print(f"run them with: pytest --config-dir={opts.generate}")
    return 0


def _sweep_dir(config: pytest.Config, opts: SweepOptions) -> Path:
    """The sweep folder: a worker's from its controller, else resumed or claimed (created) now.

    Claiming it before the first trial makes a path that cannot hold it (a file on the way, a
    read-only filesystem) one usage error instead of every trial failing; ``--collect-only``
    only names it.
    """
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        return Path(workerinput["sweep_dir"])
    root = opts.output_root
    resume = opts.resume
    try:
        if resume is not None:
            folder = resume_dir(root, resume, config.invocation_params.dir)
            if not config.option.collectonly:
                storage.check_writable(folder)
            return folder
        if config.option.collectonly:
            return storage.new_sweep_dir(root)
        return storage.claim_sweep_dir(root)
    except OSError as exc:
        where = folder if resume is not None else root
        raise pytest.UsageError(
            f"--sweep-output: cannot write the sweep folder under {where} ({exc.strerror or exc}); "
            "choose a writable folder with --sweep-output=DIR"
        ) from None


def _resumed_records(opts: SweepOptions, sources: Sources, sweep_dir: Path) -> list[dict[str, Any]] | None:
    """``--sweep-resume``: the resumed sweep's records; a different grid is a usage error unless forced."""
    if opts.resume is None:
        return None
    try:
        previous = previous_records(sweep_dir)
    except ResumeError as exc:
        raise pytest.UsageError(
            f"--sweep-resume={sweep_dir}: {exc}; repair the record or remove the file (each trial's folder "
            "keeps its result, and the resume reuses those)"
        ) from None
    if previous is None:
        return None
    if sources.search.sampled:
        return previous  # the items' configurations are drawn: the study checks what was resumed
    folders = [sources.make_trial(s, c).folder for s in sources.sources for c in s.combinations]
    change = grid_change(previous, folders)
    if change is not None and not opts.resume_force:
        raise pytest.UsageError(
            f"--sweep-resume={sweep_dir}: {change}; resume with the range config that made it, "
            "start a new sweep, or add --sweep-resume-force to resume anyway (its other records are kept)"
        )
    return previous


def _distributing(config: pytest.Config) -> bool:
    """Whether this process is an xdist or Ray controller, which runs no trial itself."""
    if hasattr(config, "workerinput"):
        return False
    return getattr(config.option, "dist", "no") != "no" or sweep_options(config).backend == "ray"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    opts = sweep_options(config)  # resolved already: a bad value was a usage error before any plugin acted
    if not opts.active:
        return
    sources = config.stash[SOURCES_KEY] = Sources(config)
    paths = [str(s.path) for s in sources.sources]
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --range-config=FILE` runs that sweep, not the project's own tests
        config.args = paths
    else:  # `pytest tests/x --range-config=FILE`: both
        given = {str((config.invocation_params.dir / a.split("::")[0]).resolve()) for a in config.args}
        config.args = [*config.args, *(p for p in paths if p not in given)]
    sweep_dir = _sweep_dir(config, opts)
    mode = opts.progress
    config.pluginmanager.register(CollectorPlugin(sources), "sweep-collector")
    worker = hasattr(config, "workerinput")
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    # a worker (xdist, Ray) also hears its controller's SIGTERM: through the flag file, and a Ray
    # actor through Ray (its probe asks the controller's node; see preempt.py)
    preemption = config.stash[PREEMPTION_KEY] = Preemption(
        sweep_dir / FLAG_FILE if worker else None, probe=workerinput.get(PROBE_KEY)
    )
    if not _distributing(config):
        echo = TerminalEcho(config) if mode != "none" and not worker else None
        runner = config.stash[RUNNER_KEY] = Runner(
            config,
            sources,
            sweep_dir,
            timeout=opts.trial_timeout,
            resume=opts.resume is not None,
            echo=echo,
            policy=opts.checkpoint,
            preemption=preemption,
            run_id=str(workerinput.get("testrunuid") or uuid.uuid4().hex),
            on_process_end=None if worker else functools.partial(_process_ends, config),
        )
        config.pluginmanager.register(RunnerPlugin(runner, echo), "sweep-runner")
        if os.name == "posix":
            _trap(config, lambda: runner.on_sigterm(serial=not worker))
    search.configure(config, sources, sweep_dir, runs_trials=not _distributing(config))
    if not worker:
        previous = _resumed_records(opts, sources, sweep_dir)
        controller = config.stash[CONTROLLER_KEY] = Controller(
            config, sources, sweep_dir, opts.summary_interval, previous
        )
        ticker = TrialTicker(config, controller, quiet=mode == "none")
        if not _distributing(config):
            ticker.workers = 1  # a serial run: the line after each trial revises the time left
        config.pluginmanager.register(ControllerPlugin(controller, ticker, preemption), "sweep-controller")
        if opts.backend == "ray":  # the run loop on Ray actors (ray/backend.py)
            check_ray_usage(config)
            config.pluginmanager.register(RayBackend(config, controller, ticker), "sweep-ray")
        if _distributing(config) and not config.option.collectonly:
            clear_flag(sweep_dir)  # a request of an earlier run in this folder must not stop this one
            if os.name == "posix":
                _trap(config, functools.partial(_preempt_workers, config, controller, preemption))
    _freeze_at_exit()


def _process_ends(config: pytest.Config, nodeid: str, record: dict[str, Any]) -> None:
    """A serial run's trainer ends the process (``os._exit``): the controller writes the summary."""
    controller = config.stash.get(CONTROLLER_KEY, None)
    if controller is not None:
        controller.process_ends(nodeid, record)


def _thaw(config: pytest.Config) -> None:
    unsafe = process_unsafe()
    if unsafe is not None and not hasattr(config, "workerinput"):
        # a trial's import was cut short: leave its half-built objects to the OS, not to the
        # collector or the interpreter's shutdown (which can crash on them); pytest's end of the
        # run, the summary included, is done by now
        session = config.stash.get(SESSION_KEY, None)
        status = int(session.exitstatus) if session is not None else int(pytest.ExitCode.INTERRUPTED)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status or int(pytest.ExitCode.INTERRUPTED))
    plugin = config.pluginmanager.get_plugin("sweep-collector")
    if isinstance(plugin, CollectorPlugin):
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
    global _exit_freeze_registered  # noqa: PLW0603 (once per process, as atexit itself is)
    if not _exit_freeze_registered:
        _exit_freeze_registered = True
        atexit.register(gc.freeze)


def _trap(config: pytest.Config, action: Callable[[], None]) -> None:
    """SIGTERM calls ``action`` for the run (see :mod:`.preempt`); the old handler comes back after it."""

    def on_term(signum: int, frame: Any) -> None:
        action()

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (a Ray actor's session): the flag file still reaches it
        return

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


def _preempt_workers(config: pytest.Config, controller: Controller, preemption: Preemption) -> None:
    """SIGTERM on a controller that runs no trial (xdist, Ray): its workers checkpoint, then the run ends.

    The flag file asks the workers to stop (Ray's pool also tells its actors through Ray, at its next
    poll: no Ray call is made in a signal handler); no new trial starts.  After :data:`GRACE_SECONDS`
    (the cluster's SIGKILL is near), or at a second SIGTERM, the run stops as Ctrl-C stops it.
    """
    if preemption.reason is not None:
        raise KeyboardInterrupt("SIGTERM")
    preemption.request("SIGTERM")
    controller.preempted = True
    raise_flag(controller.dir)
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.shouldstop = "sweep preempted (SIGTERM)"  # Ray's loop starts no further trial
    timer = threading.Timer(GRACE_SECONDS, _thread.interrupt_main)
    timer.daemon = True
    timer.start()
    config.add_cleanup(timer.cancel)


class CollectorPlugin:
    """Every role: collect the sweep's items, and keep the collector out of torch's heap."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.froze = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        for source in self.sources.sources:
            if source.kind == "dir" and source.path == path.resolve():
                node = SweepDir.from_parent(parent, path=path, nodeid=_nodeid(parent.config, path))
                node.source = source
                return node
        return None

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        for source in self.sources.sources:
            if source.kind == "range" and source.path == file_path.resolve():
                node = SweepFile.from_parent(parent, path=file_path, nodeid=_nodeid(parent.config, file_path))
                node.source = source
                return node
        return None

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session: pytest.Session) -> Generator[None, object, object]:
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

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # the run is ending: pytest's full collections at unconfigure need not walk torch's
        # objects (0.5-0.7 s per worker, and the controller waits for its workers); see thaw()
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


def _nodeid(config: pytest.Config, path: Path) -> str | None:
    """The node id of a source outside the rootdir: its path relative to the rootdir.

    pytest names such a file by its place among the given paths, which for a file given on its
    own is nothing at all; two such files would then give the same ids (``::config_001``) and
    their records would overwrite each other.  None (pytest's own id) inside the rootdir.
    """
    resolved = path.resolve()
    if resolved.is_relative_to(config.rootpath):
        return None
    return os.path.relpath(resolved, config.rootpath).replace(os.sep, "/")


class RunnerPlugin:
    """A process that trains (serial run, xdist worker): the items call :class:`Runner`."""

    def __init__(self, runner: Runner, echo: TerminalEcho | None) -> None:
        self.runner = runner
        self.echo = echo

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        session.config.stash[SESSION_KEY] = session

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        if self.echo is not None:
            self.echo.reset()


class ControllerPlugin:
    """A process where results arrive (serial run, xdist controller): records and summaries."""

    def __init__(
        self, controller: Controller, ticker: TrialTicker | None = None, preemption: Preemption | None = None
    ) -> None:
        self.controller = controller
        self.ticker = ticker
        self.preemption = preemption or Preemption()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        session.config.stash[SESSION_KEY] = session  # for the SIGTERM handler

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            if isinstance(item, SweepItem):
                self.controller.expect(item.nodeid, item.trial, item.skip_reason)

    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> list[str]:
        trials = [i for i in items if isinstance(i, SweepItem) and (i.stage is None or i.stage.index == 0)]
        if not trials:
            return []
        notes = [f"sweep: {s.display}: {note}" for s in self.controller.sources.sources for note in s.notes]
        lines = notes + estimate.describe(config, self.controller.sources, self.controller.dir, trials)
        return [printable(line) for line in lines]  # a path or a value may hold a line break

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.controller.on_report(report)
        if self.ticker is not None:
            self.ticker.report(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """xdist: the worker running ``crashitem`` died; its report follows."""
        self.controller.crash(crashitem, str(report.longrepr))

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Xdist controller: tell each worker where the sweep folder is, and the options it runs with."""
        node.workerinput["sweep_dir"] = str(self.controller.dir)
        node.workerinput[WORKERINPUT_KEY] = self.controller.sources.options.to_dict()  # resolved here once

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.ticker is not None:
            self.ticker.workers += 1
        if self.controller.expected:
            return  # every worker collects the same items
        for nodeid in ids:
            self.controller.expect_nodeid(nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.controller.interrupted = True

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if session.config.option.collectonly:
            return
        controller = self.controller
        if exitstatus == pytest.ExitCode.USAGE_ERROR and not controller.records:
            # refused before any trial ran (an unreachable Ray cluster, a damaged rung store): no
            # summary of trials that never started, and no empty folder left behind
            if _distributing(session.config):
                clear_flag(controller.dir)
            if sweep_options(session.config).resume is None:
                try:
                    controller.dir.rmdir()
                except OSError:
                    pass  # not empty: something of the run's is in it
            return
        preempted = self.preemption.reason is not None or any(
            str(r.get("error") or "").startswith("preempted") for r in controller.records.values()
        )
        controller.preempted = controller.preempted or preempted
        controller.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED or preempted)
        if _distributing(session.config):
            clear_flag(controller.dir)
        if preempted:
            session.exitstatus = EXIT_PREEMPTED
            controller.say(
                f"sweep: preempted (SIGTERM): running trials checkpointed, summary written; "
                f"pytest --sweep-resume={controller.dir} continues the sweep (exit code {EXIT_PREEMPTED})",
                yellow=True,
            )


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return [
        Symbol(
            "CONFIG_SEED",
            "int",
            42,
            "The seed every trial trains with (sweep it, e.g. 1|2|3, to measure seed noise)",
            low=0,
        ),
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    """The core calls the factory hook it owns, ``pytest_sweep_make_scheduler`` (on every process
    of a sweep; the built-in schedulers only answer it), see :mod:`.scheduler_hook`."""
    config = session.config
    runner = config.stash.get(RUNNER_KEY, None)
    controller = config.stash.get(CONTROLLER_KEY, None)
    sweep_dir = runner.dir if runner is not None else controller.dir if controller is not None else None
    if sweep_dir is not None and not config.option.collectonly:
        scheduler_hook.start(config, sweep_dir, trains=runner is not None)
