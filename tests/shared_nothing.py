"""Ray nodes that share no disk with the controller, simulated on one machine (the shared-nothing harness).

The session's Ray cluster (``ray_cluster`` in ``conftest.py``) starts every GPU node with
:func:`node_env`: a folder of its own (``TMPDIR`` and the node's working files are there, so a
worker session's node-local sweep folder is too) and a ``sitecustomize`` on its ``PYTHONPATH``
that installs an audit hook (``sys.addaudithook``) in every Python process of the node, Ray's
workers and so every actor included.  The hook refuses, with ``PermissionError`` as a node without
the controller's disk would, every file access (``open``, ``sqlite3.connect``, ``os.mkdir``,
``os.listdir``, ``os.replace`` ...) to a path that has a folder named :data:`CONTROLLER_DISK` in it,
and records it in the node's :data:`VIOLATIONS` file.

A test puts its sweep output under such a folder (:data:`OUTPUT_ARG`), which only the controller may
touch; :func:`violations` lists what the actors tried (a test asserts the list is empty).  Elsewhere
the hook is inert: the other Ray tests never name such a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

#: A path with a folder of this name is the controller's disk: an actor must never touch it.
CONTROLLER_DISK = "controller-disk"
#: The sweep output option of a shared-nothing test (relative to the test's folder).
OUTPUT_ARG = f"--sweep-output={CONTROLLER_DISK}/out"
#: The file in each node's folder listing the refused accesses, one per line: ``pid event path``.
VIOLATIONS = "violations.txt"

#: The node's ``sitecustomize.py``: runs at the start of every Python process the node starts.
SITECUSTOMIZE = '''\
"""Installed by tests/shared_nothing.py: this node cannot see the controller's disk."""
import os
import sys
import threading

_MARK = os.environ.get("SWEEP_GUARD_MARK")
_LOG = os.environ.get("SWEEP_GUARD_LOG")
_EVENTS = {
    "open", "os.mkdir", "os.listdir", "os.scandir", "os.remove", "os.rmdir", "os.rename", "os.truncate",
    "os.chmod", "os.utime", "os.symlink", "os.link", "sqlite3.connect", "shutil.copyfile", "shutil.rmtree",
}
_busy = threading.local()


def _guard(event, args):
    if event not in _EVENTS or getattr(_busy, "on", False):
        return
    for arg in args[:2]:
        if not isinstance(arg, (str, bytes, os.PathLike)):
            continue
        path = os.path.abspath(os.fsdecode(arg))
        if _MARK in path.split(os.sep):
            _busy.on = True
            try:
                with open(_LOG, "a", encoding="utf-8") as fh:
                    fh.write(f"{os.getpid()} {event} {path}\\n")
            finally:
                _busy.on = False
            raise PermissionError(13, "this node cannot see the controller's disk", path)


if _MARK and _LOG:
    sys.addaudithook(_guard)
'''


def node_env(base: Path, index: int) -> dict[str, str]:
    """The environment of simulated node ``index`` (its raylet's, which its workers inherit); makes its folders."""
    site = base / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    node = base / f"node{index}"
    tmp = node / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHONPATH": path,
        "TMPDIR": str(tmp),
        "SWEEP_NODE_DIR": str(node),
        "SWEEP_GUARD_MARK": CONTROLLER_DISK,
        "SWEEP_GUARD_LOG": str(node / VIOLATIONS),
    }


def violations(base: Path) -> list[str]:
    """Every access the nodes under ``base`` refused (``pid event path``), oldest first per node."""
    found: list[str] = []
    for log in sorted(base.glob(f"node*/{VIOLATIONS}")):
        found += log.read_text(encoding="utf-8").splitlines()
    return found


def clear(base: Path) -> None:
    """Forget the refused accesses recorded so far (before a test's run)."""
    for log in base.glob(f"node*/{VIOLATIONS}"):
        log.unlink()


def node_tmp_files(base: Path) -> list[Path]:
    """The files left in the nodes' temp folders (a worker session removes its node-local sweep folder)."""
    return sorted(p for p in base.glob("node*/tmp/**/*") if p.is_file())
