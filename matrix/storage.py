"""Files that must never be seen half-written: temp file in the same folder, then rename."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a mix."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
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
    """``root/sweep_YYYYMMDD_HHMMSS`` (with ``_2``, ``_3``... if that name is taken). Not created."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    base = Path(root) / f"sweep_{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def sweep_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """The sweep folders under ``root``, oldest first (by name, which sorts by time)."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted((p for p in base.glob("sweep_*") if p.is_dir()), key=lambda p: p.name)
