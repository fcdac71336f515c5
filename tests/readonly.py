"""Folders that refuse writes for real, root included.

File modes do not stop root, and CI and this machine run as root: there ``chattr +i`` makes a
folder immutable (no file can be created, renamed or removed in it; ext4, xfs, btrfs, tmpfs).
As anyone else, ``chmod 0555`` does the same.  A test that cannot get either is skipped with why.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Python source of :func:`freeze` for a conftest that freezes a folder while a sweep runs.
FREEZE_SOURCE = """
import os, stat, subprocess
def freeze(path):
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    else:
        os.chmod(path, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
"""


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def freeze(path: Path) -> str:
    """Make the folder ``path`` refuse new entries; the mechanism's name."""
    if _root():
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
        return "chattr +i"
    os.chmod(path, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    return "chmod 0555"


def thaw(path: Path) -> None:
    """Undo :func:`freeze` (quietly: the folder may be gone)."""
    if _root():
        subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
    elif path.exists():
        os.chmod(path, stat.S_IRWXU)


def require(tmp: Path) -> None:
    """Skip the test unless a folder under ``tmp`` can be frozen here (``chattr`` on this filesystem)."""
    if _root() and shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a folder unwritable to root")
    probe = tmp / ".freeze-probe"
    probe.mkdir()
    try:
        freeze(probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"this filesystem cannot make a folder unwritable to root ({exc})")
    try:
        try:
            (probe / "x").write_text("x")
        except OSError:
            return
        pytest.skip("a frozen folder still took a new file here")
    finally:
        thaw(probe)
        shutil.rmtree(probe, ignore_errors=True)


@contextmanager
def unwritable(path: Path) -> Iterator[str]:
    """``path`` (a folder) refuses new files inside the block; yields the mechanism's name."""
    require(path.parent)
    how = freeze(path)
    try:
        yield how
    finally:
        thaw(path)


def thaw_tree(root: Path) -> None:
    """Thaw every folder under ``root`` (after a sweep froze one of its own)."""
    if not root.exists():
        return
    thaw(root)
    for folder in [p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]:
        thaw(folder)
