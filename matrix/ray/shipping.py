"""Files that cross the wire: a node's trial files into the controller's sweep folder, piece by piece.

A node that cannot see the sweep folder (or every node, with ``--sweep-ray-ship-files``) writes a
trial into a folder of its own; when the trial ends, its actor lists the trial's files and the
controller fetches them in pieces of :data:`PIECE` bytes (``SweepWorker.read``), a few pieces in
flight per file, each written where it belongs in a temp file beside the target, which is renamed
over it once every byte is in (:class:`Download`).  So a file of any size crosses, the controller
holding a few pieces of it at a time, and a reader never sees a half-written file.
``--sweep-ray-ship-limit`` bounds what crosses: a larger file fails its trial (:func:`over_limit`).

No Ray here (the pool makes the calls); see :mod:`.inbox` for checkpoints written during a trial.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.options import format_size

#: Bytes per piece of a shipped file (one Ray call's reply).
PIECE = 8 * 1024 * 1024
#: Pieces of one trial's files requested from its actor at a time.
DEPTH = 4


#: The option that bounds what crosses, as messages name it.
OPTION = "--sweep-ray-ship-limit"


def over_limit(files: list[tuple[str, int]], limit: int | None) -> str | None:
    """The sentence a trial fails with when one of its files is larger than the limit (None: all fit)."""
    if limit is None:
        return None
    for rel, size in files:
        if size > limit:
            return (
                f"trial file {rel} is {format_size(size)} ({size} bytes), over {OPTION} "
                f"({format_size(limit)}): not shipped to the controller; raise the limit or write less"
            )
    return None


def pieces(size: int, piece: int = PIECE) -> list[tuple[int, int]]:
    """``(offset, length)`` of each piece of a file of ``size`` bytes (one empty piece for an empty file)."""
    return [(offset, min(piece, size - offset)) for offset in range(0, size, piece)] or [(0, 0)]


class Download:
    """One file arriving in pieces, in any order, into a temp file beside ``sweep_dir/rel``.

    Raises :class:`~pytest_sweep.matrix.storage.UnsafePath` for a path that would leave the sweep
    folder (a ``..``, a link on the way).
    """

    def __init__(self, sweep_dir: Path, rel: str, size: int) -> None:
        self.rel = rel
        self.size = size
        self.received = 0
        self.target = storage.sweep_path(sweep_dir, *rel.split("/"))
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)
        self.received += len(data)

    @property
    def complete(self) -> bool:
        return self.received >= self.size

    def finish(self) -> None:
        """Every byte is in: the file takes its name (atomically, as ``storage.write_bytes_atomic``)."""
        try:
            if self.received != self.size:
                raise OSError(f"{self.rel}: {self.received} of {self.size} bytes arrived")
            os.fchmod(self.fd, storage.FILE_MODE)
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.tmp, self.target)
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """The rest will not come: the temp file goes."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        Path(self.tmp).unlink(missing_ok=True)
