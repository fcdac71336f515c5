"""The checkpoint inbox: a Ray actor on the controller's node that holds running trials' checkpoints.

A node that cannot see the sweep folder writes a trial's checkpoints into its own folder; if the
node dies, they die with it.  So each checkpoint such a node writes is pushed here, chunk by
chunk, before ``ctx.save_checkpoint`` returns (:meth:`put`, then :meth:`commit`): once saved, a
checkpoint survives the loss of the node that wrote it.  The controller hands the newest one of a
trial re-queued after its node died to the trial's next node, and writes what is left here into
the sweep folder at the end of the run (a preempted or interrupted sweep's ``--sweep-resume``
continues from them).  The inbox never touches a file: it is reached through Ray only.

It holds the newest checkpoint of each trial in memory (as the chunks it was sent in), so it
needs about one checkpoint's size per trial running on a node without the sweep folder.  Like
:mod:`.worker`, this module imports the standard library only and is shipped by value.
"""

from __future__ import annotations


class CheckpointInbox:
    """The newest checkpoint of each trial folder (``trial folder -> (relative path, chunks)``)."""

    def __init__(self) -> None:
        self.partial: dict[str, list[bytes]] = {}
        self.newest: dict[str, tuple[str, list[bytes]]] = {}

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
        self.newest[rel.split("/", 1)[0]] = (rel, parts)

    def describe(self, folder: str) -> tuple[str, list[int]] | None:
        """The newest checkpoint of a trial folder: its relative path and chunk sizes (None: none)."""
        found = self.newest.get(folder)
        return None if found is None else (found[0], [len(p) for p in found[1]])

    def chunk(self, folder: str, index: int) -> bytes:
        return self.newest[folder][1][index]

    def folders(self) -> list[str]:
        return sorted(self.newest)

    def drop(self, folder: str) -> None:
        """The trial's own files came back (or it will not run again): its checkpoint is no longer needed here."""
        self.newest.pop(folder, None)
        for rel in [r for r in self.partial if r.split("/", 1)[0] == folder]:
            del self.partial[rel]
