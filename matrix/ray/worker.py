"""The Ray actor: a pytest worker session inside a Ray worker process.  PYTEST_DONT_REWRITE

The controller ships this class to the actors by value (``register_pickle_by_value``), the way
xdist sends ``remote.py`` to its workers as source: an actor imports nothing of pytest-sweep
before its own pytest session starts, so that session loads conftest files, ``-p`` and
entry-point plugins and rewrites their asserts exactly as a fresh xdist worker does (a plugin
module imported earlier cannot be rewritten: pytest warns, and ``filterwarnings = error`` makes
that an error).  So this module imports the standard library and pytest only, and has no
``assert`` of its own (the docstring's marker keeps pytest from rewriting it).  Ray's worker
process itself imports a few modules before the actor exists (its serializers import starlette,
and with it anyio, whose distribution has a ``pytest11`` entry point); for exactly those the
session ignores pytest's "already imported" warning (:func:`preimported_plugins`): the
controller, which imported none of them, rewrote them without a word.

The lifecycle follows xdist's ``WorkerInteractor``, reshaped into method calls:

- ``__init__`` takes the controller's environment, moves to its invocation folder and starts
  ``pytest.main(args)`` on a helper thread with ``workerinput`` set (worker id ``rayN``, the
  sweep folder); that session configures, collects once and waits in ``pytest_runtestloop``;
- ``run(nodeid)`` runs ``pytest_runtest_protocol`` for that item on the actor's main thread (Ray
  runs a synchronous actor's methods there, so ``--sweep-trial-timeout``'s ``SIGALRM`` works) and
  returns the item's reports as ``pytest_report_to_serializable`` dicts: never pytest objects;
- ``stop()`` lets the session finish (``pytest_sessionfinish`` runs as on an xdist worker).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any, TextIO

import pytest

#: What the worker session runs without: selecting, stopping and debugging belong to the
#: controller, which sends only the node ids it selected (so ``--lf`` on a node whose cache
#: differs cannot hide an item), and a worker never starts Ray or xdist itself.
WORKER_OPTIONS: dict[str, Any] = {
    "keyword": "",
    "markexpr": "",
    "deselect": [],
    "lf": False,
    "failedfirst": False,
    "newfirst": False,
    "stepwise": False,
    "stepwise_skip": False,
    "maxfail": 0,
    "usepdb": False,
    "trace": False,
    "collectonly": False,
    "looponfail": False,
    "dist": "no",
    "numprocesses": None,
    "maxprocesses": None,
    "sweep_backend": "serial",
}

#: The file in the sweep folder whose token tells an actor that it sees the controller's folder.
TOKEN_FILE = ".sweep-ray-token"
#: The ``workerinput`` entry of the probe that asks the controller whether it stops the run (``preempt.PROBE_KEY``).
PROBE_KEY = "sweep_stop_probe"
#: How long a step boundary waits for the controller's answer; an answer that comes later is read at the next one.
PROBE_WAIT_SECONDS = 0.05
#: pytest's warning for a plugin module imported before its session (it cannot rewrite its asserts).
ALREADY_IMPORTED = "Module already imported so cannot be rewritten; "


class _Tail:
    """A stream that keeps the last characters written to it (the session's error message) and,
    while :attr:`trial` is a list, everything (a trial's stderr that pytest did not capture: ``-s``)."""

    def __init__(self, stream: TextIO, keep: int = 4000) -> None:
        self.stream = stream
        self.keep = keep
        self.text = ""
        self.trial: list[str] | None = None

    def write(self, data: str) -> int:
        self.text = (self.text + data)[-self.keep :]
        if self.trial is not None:
            self.trial.append(data)
        return self.stream.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class WorkerPlugin:
    """The worker session's own plugin (xdist's ``WorkerInteractor``): collect, wait, report."""

    def __init__(self, workerinput: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        self.workerinput = workerinput
        self.options = options or {}
        self.config: pytest.Config | None = None
        self.items: dict[str, pytest.Item] = {}
        self.collect_errors: list[str] = []
        self.reports: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.collected = threading.Event()
        self.stopping = threading.Event()

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> None:
        # before pytest_configure, as xdist sets these before its worker's cmdline_main
        config.workerinput = self.workerinput  # type: ignore[attr-defined]
        config.workeroutput = {}  # type: ignore[attr-defined]
        for name, value in {**WORKER_OPTIONS, **self.options}.items():
            if hasattr(config.option, name):
                setattr(config.option, name, value)
        self.config = config

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid or '.'}: {str(report.longrepr)[-1500:]}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = {item.nodeid: item for item in session.items}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self.collected.set()
        self.stopping.wait()
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self.config
        if config is not None:
            self.reports.append(config.hook.pytest_report_to_serializable(config=config, report=report))

    def pytest_warning_recorded(
        self, warning_message: warnings.WarningMessage, when: str, nodeid: str, location: tuple[str, int, str] | None
    ) -> None:
        if when == "runtest":  # the controller collected and configured itself: it has the others
            self.warnings.append(warning_data(warning_message, nodeid, location))


class SweepWorker:
    """A Ray actor hosting one pytest worker session (see the module docstring).

    :param spec: built by the controller: ``args`` (its command line), ``options`` (option values
        to set on top, as xdist's ``option_dict``: the worker's ``basetemp``), ``invocation_dir``,
        ``sys_path`` (entries to put first), ``env`` (name -> value, None to unset),
        ``workerinput``, ``token``, ``ship`` (ship trial files back even if the folder is shared),
        ``inbox`` (the controller's :class:`.inbox.CheckpointInbox`: the stop request comes from it and,
        from a node-local folder, checkpoints go to it), and for a node-local folder ``chunk`` (bytes
        per shipped piece) and ``ship_limit`` (the largest file shipped, None: any; ``ship_limit_text``
        says it in words).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        started = time.monotonic()
        imported = set(sys.modules)  # Ray's worker process imported these; nothing of the user's ran yet
        self.spec = spec
        self.exit_code: int | None = None
        self.error: str | None = None
        self.local_dir: Path | None = None
        self.asked: Any = None  # the pending stop_requested() call to the inbox
        for name, value in spec["env"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for entry in reversed(spec["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        workerinput = dict(spec["workerinput"])
        self.args = [*spec["args"], *preimported_plugins_args(imported)]
        try:
            os.chdir(spec["invocation_dir"])
        except OSError as exc:
            self.error = f"cannot enter {spec['invocation_dir']} on this node ({exc.strerror}); the project must be at the same path on every node"
            self.plugin = WorkerPlugin(workerinput)
            self.seconds = time.monotonic() - started
            return
        sweep_dir = Path(workerinput["sweep_dir"])
        if spec["ship"] or not _sees(sweep_dir, spec["token"]):
            self.local_dir = Path(tempfile.mkdtemp(prefix="pytest-sweep-")) / sweep_dir.name
            workerinput["sweep_dir"] = str(self.local_dir)
            if spec.get("inbox") is not None:  # each checkpoint goes to the controller as it is written
                workerinput["sweep_checkpoint_sink"] = self._ship_checkpoint
        if spec.get("inbox") is not None:  # the controller's stop request reaches it through Ray, not a file
            workerinput[PROBE_KEY] = self._stop_requested
        self.plugin = WorkerPlugin(workerinput, spec["options"])
        self.tail = _Tail(sys.stderr)
        sys.stderr = self.tail  # pytest.main prints a usage error there
        self.thread = threading.Thread(target=self._session, name="pytest-sweep-worker", daemon=True)
        self.thread.start()
        while not self.plugin.collected.wait(0.05):
            if not self.thread.is_alive():
                self.error = f"its pytest session ended before running anything (exit {self.exit_code}): " + (
                    self.tail.text.strip()[-1500:] or "no message"
                )
                break
        self.seconds = time.monotonic() - started

    def _session(self) -> None:
        try:
            self.exit_code = int(pytest.main(list(self.args), plugins=[self.plugin]))
        except BaseException as exc:  # the thread must end with a message, never silently
            self.exit_code = -1
            self.tail.write(f"{type(exc).__name__}: {exc}\n")

    def ready(self) -> dict[str, Any]:
        """Where the actor runs and what it collected (the controller prints and checks it)."""
        import ray  # the actor runs inside a Ray worker process: ray is already imported

        ctx = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),
            "node_id": ctx.get_node_id(),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "items": len(self.plugin.items),
            "collect_errors": self.plugin.collect_errors,
            "ship": self.local_dir is not None,
            "error": self.error,
            "seconds": self.seconds,
        }

    def seed(self, files: dict[str, bytes]) -> int:
        """Put the controller's finished trial files into a node-local sweep folder (``--sweep-resume``)."""
        if self.local_dir is None:
            return 0
        for rel, data in files.items():
            target = self.local_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return len(files)

    def accept(self, rel: str, offset: int, data: bytes, size: int) -> None:
        """One piece of a file the controller sends (a checkpoint to continue from), at ``offset`` of
        ``size`` bytes; the file appears under its name once its last piece is in."""
        if self.local_dir is None:
            return
        target = self._local(rel)
        part = target.with_name(f".{target.name}.part")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "r+b" if offset else "wb") as fh:
            fh.seek(offset)
            fh.write(data)
        if offset + len(data) >= size:
            os.replace(part, target)

    def run(self, nodeid: str) -> dict[str, Any]:
        """Run one collected item; its reports (and, from a node-local folder, its files' sizes)."""
        item = self.plugin.items.get(nodeid)
        if item is None:
            return {"error": f"{nodeid} was not collected on this node (different files or plugins there?)"}
        self.plugin.reports, self.plugin.warnings = [], []
        stderr: list[str] = []
        self.tail.trial = stderr
        started = time.monotonic()
        try:
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=None)
        finally:
            self.tail.trial = None
        return {
            "reports": self.plugin.reports,
            "warnings": self.plugin.warnings,
            "stderr": "".join(stderr),
            "files": self._files(item),
            "seconds": time.monotonic() - started,
        }

    def _files(self, item: pytest.Item) -> list[tuple[str, int]] | None:
        """The trial's files in the node-local folder (relative path, size): the controller fetches
        them piece by piece (:meth:`read`)."""
        trial = getattr(item, "trial", None)
        if self.local_dir is None or trial is None:
            return None
        folder = self.local_dir / trial.folder
        if not folder.is_dir():
            return []
        return [
            (path.relative_to(self.local_dir).as_posix(), path.stat().st_size)
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        ]

    def read(self, rel: str, offset: int, size: int) -> bytes:
        """``size`` bytes of a node-local file from ``offset`` (fewer at its end)."""
        with open(self._local(rel), "rb") as fh:
            fh.seek(offset)
            return fh.read(size)

    def _local(self, rel: str) -> Path:
        """A path below the node-local folder, from a relative path the controller sent."""
        parts = rel.split("/")
        if self.local_dir is None or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a path inside this worker's folder: {rel!r}")
        return self.local_dir.joinpath(*parts)

    def _ship_checkpoint(self, path: Path) -> str | None:
        """Send a checkpoint just written to the controller's inbox, whole, before the trial goes on."""
        import ray  # the actor runs inside a Ray worker process: ray is already imported

        local = self.local_dir
        if local is None:
            return None
        rel = path.relative_to(local).as_posix()
        size = path.stat().st_size
        limit = self.spec.get("ship_limit")
        if limit is not None and size > limit:
            return f"{rel} is {size} bytes, over --sweep-ray-ship-limit ({self.spec.get('ship_limit_text') or limit})"
        inbox, chunk = self.spec["inbox"], int(self.spec["chunk"])
        try:
            with open(path, "rb") as fh:
                index = 0
                while True:
                    data = fh.read(chunk)
                    if not data and index:
                        break
                    ray.get(inbox.put.remote(rel, index, data))
                    index += 1
                    if len(data) < chunk:
                        break
            ray.get(inbox.commit.remote(rel, size))
        except Exception as exc:  # the controller's inbox is gone: the checkpoint would not survive this node
            return f"the controller did not take it ({type(exc).__name__}: {str(exc).strip()[:200]})"
        return None

    def _stop_requested(self) -> str | None:
        """Whether the controller stops the run (its SIGTERM), from the inbox; the session's
        ``Preemption`` asks at most once a second.  Waits at most :data:`PROBE_WAIT_SECONDS`: a
        late answer is kept for the next call, and an unreachable inbox is None, never an error."""
        import ray  # the actor runs inside a Ray worker process: ray is already imported

        if self.asked is None:
            self.asked = self.spec["inbox"].stop_requested.remote()
        done, _ = ray.wait([self.asked], timeout=PROBE_WAIT_SECONDS)
        if not done:
            return None
        asked, self.asked = self.asked, None
        try:
            reason = ray.get(asked)
        except Exception:  # the controller's node is gone: the cluster's SIGTERM still comes
            return None
        return str(reason) if reason else None

    def stop(self, timeout: float) -> int | None:
        """End the session (its ``pytest_sessionfinish`` and ``pytest_unconfigure`` run); its exit code."""
        self.plugin.stopping.set()
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.join(timeout)
        if self.local_dir is not None:  # every file went back to the controller
            shutil.rmtree(self.local_dir.parent, ignore_errors=True)
        return self.exit_code


def warning_data(
    message: warnings.WarningMessage, nodeid: str, location: tuple[str, int, str] | None
) -> dict[str, Any]:
    """A warning recorded in the session, as plain data (xdist's ``serialize_warning_message``)."""
    category = message.category
    return {
        "message": str(message.message),
        "category": [category.__module__, category.__qualname__],
        "filename": str(message.filename),
        "lineno": int(message.lineno),
        "line": message.line,
        "nodeid": nodeid,
        "location": list(location) if location is not None else None,
    }


def preimported_plugins(imported: Collection[str]) -> list[str]:
    """The modules of ``imported`` that pytest marks for assertion rewriting: the top-level modules
    and packages of every distribution with a ``pytest11`` entry point (pytest's own rule)."""
    names: set[str] = set()
    for dist in importlib.metadata.distributions():
        if not any(ep.group == "pytest11" for ep in dist.entry_points):
            continue
        for file in dist.files or ():
            parts = file.parts
            if len(parts) == 1 and parts[0].endswith(".py"):
                names.add(parts[0].removesuffix(".py"))
            elif len(parts) == 2 and parts[1] == "__init__.py":
                names.add(parts[0])
    return sorted(names.intersection(imported))


def preimported_plugins_args(imported: Collection[str]) -> list[str]:
    """``-W`` filters that ignore pytest's "already imported" warning for those modules only, so
    that ``filterwarnings = error`` does not end the session (a command-line filter wins over the ini)."""
    return [
        f"-Wignore:{ALREADY_IMPORTED}{name}:pytest.PytestAssertRewriteWarning" for name in preimported_plugins(imported)
    ]


def _sees(sweep_dir: Path, token: str) -> bool:
    """Whether this node sees the controller's sweep folder (not merely a folder of that name)."""
    try:
        return (sweep_dir / TOKEN_FILE).read_text(encoding="utf-8") == token
    except OSError:
        return False
