"""The checkpoint inbox: a Ray actor on the controller's node that holds running trials' checkpoints.

A node that cannot see the sweep folder writes a trial's checkpoints into its own folder; if the
node dies, they die with it.  So each checkpoint such a node writes is pushed here, chunk by
chunk, before ``ctx.save_checkpoint`` returns (:meth:`put`, then :meth:`commit`): once saved, a
checkpoint survives the loss of the node that wrote it.  Every few seconds the controller copies
what arrived (:meth:`changed`) into the sweep folder, the durable copy, and the inbox lets it go
(:meth:`drop`); a trial re-queued after its node died gets its newest checkpoint from here or from
the sweep folder, and at the end of the run what is left here is written there too.  The inbox
never touches a file: it is reached through Ray only.

It also carries the controller's stop request (a preemption: SIGTERM, :mod:`..preempt`) to the
actors, whose disks the controller may not share: the controller calls :meth:`request_stop`, and
each actor's session asks :meth:`stop_requested` at most once a second at its trial's step
boundaries (it starts on every Ray run, so every actor can ask it).

It holds the checkpoints that arrived since the controller last copied them, in memory (as the
chunks they were sent in): at most one per trial running on a node without the sweep folder.  Like
:mod:`.worker`, this module imports the standard library only and is shipped by value.
"""

from __future__ import annotations


class CheckpointInbox:
    """The newest checkpoint of each trial folder (``trial folder -> (relative path, chunks)``)."""

    def __init__(self) -> None:
        self.partial: dict[str, list[bytes]] = {}
        self.newest: dict[str, tuple[str, list[bytes]]] = {}
        self.serial = 0  # commits so far
        self.committed: dict[str, int] = {}  # trial folder -> the serial of its newest commit
        self.stop: str | None = None  # why the controller stops the run (SIGTERM), once it does

    def request_stop(self, reason: str) -> None:
        """The controller stops the run: running trials checkpoint at their next step boundary, then end."""
        self.stop = self.stop or reason

    def stop_requested(self) -> str | None:
        """Why the controller stops the run, or None (each actor asks, at most once a second)."""
        return self.stop

    def put(self, rel: str, index: int, data: bytes) -> None:
        """Chunk ``index`` of the checkpoint ``rel`` (``trial folder/checkpoints/name``); chunk 0 starts it over."""
        parts = self.partial.setdefault(rel, [])
        if index == 0:
            parts.clear()
        if index != len(parts):
            raise ValueError(f"{rel}: chunk {index} arrived after {len(parts)} chunks")
        parts.append(data)

    def commit(self, rel: str, size: int) -> None:
        """The checkpoint ``rel`` is complete (``size`` bytes): it replaces its trial's previous one."""
        parts = self.partial.pop(rel, [])
        got = sum(len(p) for p in parts)
        if got != size:
            raise ValueError(f"{rel}: {got} of {size} bytes arrived")
        folder = rel.split("/", 1)[0]
        self.newest[folder] = (rel, parts)
        self.serial += 1
        self.committed[folder] = self.serial

    def changed(self, since: int) -> tuple[int, list[str]]:
        """The trial folders whose checkpoint arrived after commit ``since``, and the commit count now."""
        return self.serial, sorted(f for f, n in self.committed.items() if n > since and f in self.newest)

    def describe(self, folder: str) -> tuple[str, list[int]] | None:
        """The newest checkpoint of a trial folder: its relative path and chunk sizes (None: none)."""
        found = self.newest.get(folder)
        return None if found is None else (found[0], [len(p) for p in found[1]])

    def chunk(self, folder: str, rel: str, index: int) -> bytes:
        """Chunk ``index`` of the trial's newest checkpoint, which must still be ``rel`` (a newer one
        may have arrived since :meth:`describe`: then the caller's copy is abandoned)."""
        found, chunks = self.newest.get(folder, ("", []))
        if found != rel:
            raise LookupError(f"{rel} is no longer the newest checkpoint of {folder}")
        return chunks[index]

    def folders(self) -> list[str]:
        return sorted(self.newest)

    def drop(self, folder: str, rel: str | None = None) -> None:
        """The trial's own files came back: its checkpoints are no longer needed here.  With ``rel``:
        that checkpoint is in the sweep folder now; it goes unless a newer one arrived meanwhile."""
        if rel is not None:
            if self.newest.get(folder, ("", []))[0] == rel:
                del self.newest[folder]
            return
        self.newest.pop(folder, None)
        for partial in [r for r in self.partial if r.split("/", 1)[0] == folder]:
            del self.partial[partial]
