"""Files that must never be seen half-written, and the sweep folders this tool creates."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_sweep.matrix.files import SUMMARY_JSON

#: The folders this tool creates: ``sweep_YYYYMMDD_HHMMSS`` or ``sweep_YYYYMMDD_HHMMSS_N``.
SWEEP_DIR_RE = re.compile(r"sweep_(\d{8}_\d{6})(?:_(\d+))?")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mode of result files: what ``open()`` would give (``mkstemp`` creates them 0600).
FILE_MODE = 0o666 & ~_umask()


class UnsafePath(OSError):
    """A path in the sweep folder that would lead out of it: a symbolic link on the way, or a name
    that is not one plain name (``..``, ``/etc``, ``a/b``).  An ``OSError``, so every writer's
    handling of a failed write covers it."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(errno.EPERM, why, os.fspath(path))


def plain_name(name: object) -> bool:
    """Whether ``name`` is one file or folder name: text, not empty, not ``.`` or ``..``, without a
    path separator or NUL (what ``trial_dir`` in a record must be to name a trial folder)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and os.sep not in name
        and "\0" not in name
        and (os.altsep is None or os.altsep not in name)
    )


def sweep_path(root: str | os.PathLike[str], *names: str) -> Path:
    """``root/names...``: a path inside the sweep folder ``root`` with no symbolic link on the way.

    The one check every writer (and every reader of a path a file names) makes before it touches
    a path in a sweep folder: each of ``names`` must be one plain name (:func:`plain_name`), and no
    existing component below ``root``, the last included, may be a symbolic link (a linked trial
    folder or ``plots/`` would take the writes wherever it points).  ``root`` itself is the user's
    choice (``--sweep-output``, ``pytest-sweep report DIR``) and is not checked.  Raises
    :class:`UnsafePath`; a missing component is fine (the writer creates it).
    """
    path = Path(root)
    for name in names:
        if not plain_name(name):
            shown = name.encode("unicode_escape").decode("ascii") if isinstance(name, str) else repr(name)
            raise UnsafePath(path / "?", f"{shown!r} is not a file or folder name inside the sweep folder")
        path = path / name
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue  # missing (created by the writer) or not reachable (the write reports it)
        if stat.S_ISLNK(mode):
            raise UnsafePath(
                path,
                "a symbolic link in the sweep folder; pytest-sweep writes only into the sweep folder itself "
                "(remove the link)",
            )
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a mix."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def new_sweep_dir(root: str | os.PathLike[str], now: float | None = None) -> Path:
    """``root/sweep_YYYYMMDD_HHMMSS`` (with ``_2``, ``_3``... if taken), not created (``--collect-only``)."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    base = Path(root) / f"sweep_{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def claim_sweep_dir(root: str | os.PathLike[str], now: float | None = None) -> Path:
    """Create and return a new ``root/sweep_YYYYMMDD_HHMMSS[_N]`` that no other process holds.

    ``mkdir`` without ``exist_ok`` is atomic, so sweeps started in the same second into one
    root each get their own folder (``_2``, ``_3``...).  Raises ``OSError`` when the root cannot
    hold a folder (a regular file on the path, a read-only filesystem).
    """
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = base / (f"sweep_{stamp}" if n == 1 else f"sweep_{stamp}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            n += 1
            continue
        return candidate


def check_writable(folder: Path) -> None:
    """Raise ``OSError`` unless a file can be created in ``folder``."""
    fd, tmp = tempfile.mkstemp(prefix=".write-check.", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def _sweep_key(path: Path) -> tuple[str, int]:
    match = SWEEP_DIR_RE.fullmatch(path.name)
    assert match is not None
    return match.group(1), int(match.group(2) or 1)


def sweep_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """The sweep folders this tool created under ``root``, oldest first.

    Only names of the form ``sweep_YYYYMMDD_HHMMSS[_N]`` count; they are ordered by the time in
    the name, then by the counter as a number (``_10`` after ``_2``).
    """
    base = Path(root)
    if not base.is_dir():
        return []
    found = [p for p in base.iterdir() if SWEEP_DIR_RE.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=_sweep_key)


def is_sweep_dir(folder: Path) -> bool:
    """Whether ``folder`` is (or was, in an older version) a sweep folder of this tool."""
    if SWEEP_DIR_RE.fullmatch(folder.name) or (folder / SUMMARY_JSON).is_file():
        return True
    return any(folder.glob("*/training_metrics.json"))
