"""``--sweep-backend=ray``: the controller's side, one long-lived Ray actor per GPU.

The controller stays the user's pytest process: it collects and selects (``-k``, ``--lf``, ``-x``),
owns the terminal, ``--junitxml``, the cache and the sweep summary.  Only the run loop changes:
:class:`RayBackend` implements ``pytest_runtestloop`` and hands the node ids of the selected items
to idle actors (:mod:`.ray_pool`); each actor hosts a pytest worker session
(:mod:`.ray_worker`) and answers with the item's reports in xdist's wire format
(``pytest_report_to_serializable``).  The controller feeds them through pytest's own report hooks
(``pytest_runtest_logstart`` → ``pytest_report_from_serializable`` → ``pytest_runtest_logreport``
→ ``pytest_runtest_logfinish``), so every reporter, junitxml and :class:`.Controller` see what a
serial run shows them, and the record still travels in ``user_properties``.

Ray itself is imported only when this backend runs (:func:`check_usage`, :mod:`.ray_pool`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import options
from pytest_sweep.matrix.runner import RECORD_PROPERTY

if TYPE_CHECKING:
    from pytest_sweep.matrix.controller import Controller
    from pytest_sweep.matrix.progress import TrialTicker

INSTALL_HINT = "pip install pytest-sweep[ray]"
#: Variables of the controller's environment that a worker session must share with it (set there
#: as here, unset there where unset here): plugin loading and the import path.
FORWARDED_ENV = ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS", "PYTEST_ADDOPTS", "PYTHONPATH")
#: Ray sets these to the actor's CPU count; a value set here wins, as it does for xdist workers.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def check_usage(config: pytest.Config) -> None:
    """Bad combinations are usage errors before anything starts (xdist's own wording for --pdb)."""
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError(
            "-n and --sweep-backend=ray do not go together: Ray starts one worker per GPU itself; drop -n"
        )
    if config.option.usepdb:
        raise pytest.UsageError("--pdb is incompatible with distributing tests; try --sweep-backend=serial")
    for setting in (options.ray_cpus_per_trial, options.ray_node_retries, options.ray_ship_files):
        setting(config)  # a bad ini value fails now, not after connecting
    try:
        import ray  # noqa: F401
    except ImportError:
        raise pytest.UsageError(f"--sweep-backend=ray needs Ray, which is not installed: {INSTALL_HINT}") from None


def worker_env(environ: Mapping[str, str], cpus_per_trial: float) -> dict[str, str | None]:
    """What each worker session's environment must say (None: unset there)."""
    env: dict[str, str | None] = {name: environ.get(name) for name in FORWARDED_ENV}
    threads = environ.get("OMP_NUM_THREADS") or environ.get("MKL_NUM_THREADS") or str(max(1, int(cpus_per_trial)))
    env.update(dict.fromkeys(THREAD_ENV, threads))
    return env


def worker_sys_path(invocation_dir: Path, environ: Mapping[str, str]) -> list[str]:
    """The import path entries a worker puts first: the invocation folder (as ``python -m pytest``
    and xdist's remote workers do), then ``PYTHONPATH``."""
    extra = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [str(invocation_dir), *(str((invocation_dir / p).resolve()) for p in extra)]


def annotate(data: dict[str, Any], fields: dict[str, Any]) -> None:
    """Add ``fields`` to the sweep record inside a serialized report (``user_properties``)."""
    props = data.get("user_properties") or []
    for i, prop in enumerate(props):
        key, value = prop
        if key == RECORD_PROPERTY:
            record = json.loads(value)
            record.update(fields)
            props[i] = (key, json.dumps(record))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """A shipped trial file, written as the runner writes its own: temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RayBackend:
    """The controller's run loop on Ray (registered by :mod:`.plugin` when the backend is ``ray``)."""

    def __init__(self, config: pytest.Config, controller: Controller, ticker: TrialTicker | None) -> None:
        self.config = config
        self.controller = controller
        self.ticker = ticker
        self.items: dict[str, pytest.Item] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None  # pytest's own loop stops the run with its message
        if session.config.option.collectonly:
            return None
        if not session.items:
            return True
        from pytest_sweep.matrix.ray_pool import ActorPool  # imports ray

        self.items = {item.nodeid: item for item in session.items}
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            reporter.showfspath = False  # as xdist does: results arrive in any order
        pool = ActorPool(self, session)
        try:
            pool.run([item.nodeid for item in session.items])
        except BaseException:  # Ctrl-C, SIGTERM, a usage error: kill the actors at once
            pool.close(graceful=False)
            raise
        pool.close(graceful=True)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    # -- what the pool hands back ----------------------------------------------------------
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

    def workers_ready(self, count: int) -> None:
        if self.ticker is not None:
            self.ticker.workers = count

    def feed(self, nodeid: str, reports: list[dict[str, Any]], fields: dict[str, Any]) -> None:
        """An actor's reports for ``nodeid``, through pytest's report hooks as if run here."""
        item = self.items[nodeid]
        item.ihook.pytest_runtest_logstart(nodeid=nodeid, location=item.location)
        for data in reports:
            annotate(data, fields)
            report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)

    def fail(self, nodeid: str, error: str, detail: str, fields: dict[str, Any], *, crashed: bool = False) -> None:
        """A trial that no actor reported on (its process or node died, it was killed): fails here.

        A crash is recorded as xdist records one (``Controller.crash``, error ``worker crashed: ...``).
        """
        item = self.items[nodeid]
        record = self.controller.expected_record(nodeid)
        props: list[tuple[str, object]] = []
        if record is not None:
            record.update(status="failed", error=f"worker crashed: {error}" if crashed else error, **fields)
            props.append((RECORD_PROPERTY, json.dumps(record)))
        if crashed:
            self.controller.crash(nodeid, error)
        report = pytest.TestReport(
            nodeid=nodeid,
            location=item.location,
            keywords={},
            outcome="failed",
            longrepr=f"{error}\n{detail}".strip(),  # xdist's crash line first, then what Ray said
            when="call",
            user_properties=props,
        )
        item.ihook.pytest_runtest_logstart(nodeid=nodeid, location=item.location)
        item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)

    def write_files(self, files: dict[str, bytes]) -> None:
        """Trial files shipped from a node that cannot see the sweep folder."""
        root = self.controller.dir.resolve()
        for rel, data in files.items():
            target = (root / rel).resolve()
            if root not in target.parents:
                continue  # never outside the sweep folder
            write_bytes_atomic(target, data)

    def finished_files(self) -> dict[str, bytes]:
        """``--sweep-resume`` from a node-local folder: the finished trials' metrics to seed it with."""
        found: dict[str, bytes] = {}
        for path in sorted(self.controller.dir.glob("*/training_metrics.json")):
            found[path.relative_to(self.controller.dir).as_posix()] = path.read_bytes()
        return found

    def worker_spec(self, worker_id: str, count: int, token: str, testrunuid: str) -> dict[str, Any]:
        config = self.config
        invocation = config.invocation_params.dir
        basetemp = config.option.basetemp
        return {
            "args": [*map(str, config.invocation_params.args), f"--rootdir={config.rootpath}"],
            # each worker its own basetemp below the controller's, as xdist gives its popen workers
            "options": {"basetemp": str(Path(basetemp) / worker_id)} if basetemp else {},
            "invocation_dir": str(invocation),
            "sys_path": worker_sys_path(invocation, os.environ),
            "env": worker_env(os.environ, options.ray_cpus_per_trial(config)),
            "workerinput": {
                "workerid": worker_id,
                "workercount": count,
                "testrunuid": testrunuid,
                "sweep_dir": str(self.controller.dir),
                # a sampled search's study stays in the controller's folder even where trial files ship back
                "sweep_study_dir": str(self.controller.dir),
            },
            "token": token,
            "ship": options.ray_ship_files(config),
        }
