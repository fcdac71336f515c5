"""Per-trial checkpoints: what ``ctx.save_checkpoint(state)`` writes and ``ctx.load_checkpoint()`` reads.

A checkpoint is one file in the trial's folder, ``checkpoints/checkpoint-000007-epoch4.ckpt``:
a first line ``PYTEST-SWEEP-CHECKPOINT 1``, a second line holding a JSON header
(``{"trial": ..., "config": ..., "seed": ..., "epoch": 4, "history": [...], "codec": "torch",
"size": 123456, "crc32": 2914...}``), then ``size`` bytes of payload: the trainer's state,
serialised by the codec the header names.

It is written atomically (a temp file in the same folder, ``fsync``, ``os.replace``), so a
process killed while saving leaves the previous checkpoint intact.  The header ties it to its
trial (config name, every config value, seed) and checks the payload (size and CRC-32), so a
truncated file, a bit flip, a file copied from another trial or one left by a different config
under the same name is never loaded: it is removed with one line in the trial's log, the next
older one is tried, and with none left the trial trains from scratch (a checkpoint is a cache of
work, never the only copy of a result).

The core writes the file; the payload's serialisation belongs to a codec
(:class:`~pytest_sweep.matrix.contracts.CheckpointCodec`, from ``pytest_sweep_checkpoint_codecs``):
the built-in ``plain`` codec here takes plain Python data without torch, the built-in trainer's
``torch`` codec takes torch tensors (``torch.save``, read back with ``weights_only=True``).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sweep.matrix import files, storage
from pytest_sweep.matrix.errors import clip
from pytest_sweep.matrix.trial import TrialFailed, TrialPreempted

if TYPE_CHECKING:
    from pytest_sweep.matrix.contracts import CheckpointCodec
    from pytest_sweep.matrix.trial import Trial

FORMAT = 1
MAGIC = b"PYTEST-SWEEP-CHECKPOINT "
#: The trial folder's subfolder that holds its checkpoints.
FOLDER = files.CHECKPOINTS_DIR
_NAME = re.compile(r"checkpoint-(\d{6,})-epoch(\d+)\.ckpt")
#: The longest header accepted (a history of thousands of epochs fits many times over).
MAX_HEADER = 64 * 1024 * 1024
#: A temp file older than this is a save that was killed (removed when a trial loads).
STALE_SECONDS = 600.0
#: Containers nested deeper than this are refused (a cycle, or not a state).
MAX_DEPTH = 100
#: What a checkpoint's state may hold, in words (error messages).
PLAIN_WORDS = "dicts, lists, tuples, str, int, float, bool, None and bytes (and torch tensors, with torch)"


# -- the policy ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """When checkpoints are written and how many are kept (``--sweep-checkpoint-*``).

    :ivar every_epochs: write one every this many epochs (None: by time, or never).
    :ivar every_seconds: write one at the first call after this many seconds (None: by epochs).
    :ivar keep: how many of a trial's checkpoints stay on disk (the newest).
    :ivar keep_after: keep them after the trial completed (``--sweep-keep-checkpoints``).
    """

    every_epochs: int | None = 1
    every_seconds: float | None = None
    keep: int = 1
    keep_after: bool = False

    @property
    def enabled(self) -> bool:
        return self.every_epochs is not None or self.every_seconds is not None


#: The largest interval accepted, in epochs or seconds (larger is not an interval).
MAX_EVERY = 1e7


def parse_every(text: str) -> tuple[int | None, float | None]:
    """``--sweep-checkpoint-every``: ``N`` epochs, ``Ns`` seconds or ``off`` -> (epochs, seconds).

    Raises ``ValueError`` with the reason (one line) for anything else.
    """
    raw = text.strip().lower()
    if raw == "off":
        return None, None
    hint = "give a whole number of epochs (e.g. 1), seconds with s (e.g. 600s), or off"
    if raw.endswith("s"):
        try:
            seconds = float(raw[:-1])
        except ValueError:
            raise ValueError(f"{text!r} is not a number of seconds; {hint}") from None
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_EVERY):
            raise ValueError(f"{text!r}: the seconds must be above 0 and at most {MAX_EVERY:g}; {hint}")
        return None, seconds
    try:
        epochs = int(raw)
    except ValueError:
        raise ValueError(f"{text!r} is not an interval; {hint}") from None
    if not 1 <= epochs <= MAX_EVERY:
        raise ValueError(f"{text!r}: the epochs must be at least 1 and at most {MAX_EVERY:g}; {hint}")
    return epochs, None


# -- what a state may hold -------------------------------------------------------------------------
_PLAIN_LEAVES = (str, int, float, bool, type(None), bytes)


def walk(state: Any) -> Iterator[tuple[str, Any, int]]:
    """Every object in ``state`` with its path (``state['model']['fc.weight']``) and depth."""
    todo: list[tuple[str, Any, int]] = [("state", state, 0)]
    while todo:
        path, obj, depth = todo.pop()
        yield path, obj, depth
        if depth >= MAX_DEPTH:
            continue
        if isinstance(obj, dict):
            todo += [(f"{path}[{k!r}]", v, depth + 1) for k, v in reversed(list(obj.items()))]
        elif type(obj) in (list, tuple):
            todo += [(f"{path}[{i}]", v, depth + 1) for i, v in reversed(list(enumerate(obj)))]


def unsupported(state: Any, leaf: Callable[[Any], bool] | None = None) -> str | None:
    """Why ``state`` is not plain data (the first object that is not), or None when it is.

    Plain: dicts (``str``/``int`` keys; ``collections.OrderedDict`` counts as a dict when ``leaf``
    accepts it), lists, tuples and the leaves ``str``, ``int``, ``float``, ``bool``, ``None``,
    ``bytes``, plus whatever ``leaf`` accepts (a codec's own types).
    """
    for path, obj, depth in walk(state):
        if depth >= MAX_DEPTH and isinstance(obj, (dict, list, tuple)):
            return f"{clip(path)[:200]} is nested more than {MAX_DEPTH} levels deep (a cycle?)"
        if isinstance(obj, dict):
            if type(obj) is not dict and not (leaf is not None and leaf(obj)):
                kind = type(obj)
                return f"{clip(path)[:200]} is a {kind.__module__}.{kind.__qualname__}"
            bad = [k for k in obj if type(k) not in (str, int)]
            if bad:
                return f"{clip(path)[:200]} has a key of type {type(bad[0]).__name__} (keys must be str or int)"
            continue
        if type(obj) in (list, tuple) or type(obj) in _PLAIN_LEAVES:
            continue
        if leaf is not None and leaf(obj):
            continue
        kind = type(obj)
        return f"{clip(path)[:200]} is a {kind.__module__}.{kind.__qualname__}"
    return None


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a plain checkpoint never holds")


class PlainCodec:
    """Plain Python data (no torch needed): ``pickle`` out, an unpickler that loads no class in."""

    name = "plain"

    def accepts(self, state: Any) -> str | None:
        return unsupported(state)

    def dumps(self, state: Any) -> bytes:
        return pickle.dumps(state, protocol=5)

    def loads(self, data: bytes) -> Any:
        import io

        return _NoGlobals(io.BytesIO(data)).load()


# -- the file ------------------------------------------------------------------------------------
class Unusable(Exception):
    """Why a checkpoint file cannot be used (one line)."""


def encode(header: dict[str, Any], payload: bytes) -> bytes:
    head = dict(header, size=len(payload), crc32=zlib.crc32(payload))
    line = json.dumps(head, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return MAGIC + str(FORMAT).encode() + b"\n" + line + b"\n" + payload


def decode(data: bytes) -> tuple[dict[str, Any], bytes]:
    """``(header, payload)`` of a checkpoint file's bytes; :class:`Unusable` when it is not one."""
    if not data:
        raise Unusable("the file is empty")
    first, sep, rest = data.partition(b"\n")
    if not first.startswith(MAGIC) or not sep:
        raise Unusable("not a pytest-sweep checkpoint (no header)")
    version = first[len(MAGIC) :].decode("ascii", "replace")
    if version != str(FORMAT):
        raise Unusable(f"written in checkpoint format {clip(version)[:20]!r}; this pytest-sweep reads format {FORMAT}")
    line, sep, payload = rest.partition(b"\n")
    if not sep:
        raise Unusable("truncated inside its header")
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Unusable("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise Unusable("its header is not a JSON object")
    size, crc = header.get("size"), header.get("crc32")
    if not isinstance(size, int) or not isinstance(crc, int):
        raise Unusable("its header has no payload size and checksum")
    if len(payload) != size:
        raise Unusable(f"truncated: {len(payload)} of {size} payload bytes")
    if zlib.crc32(payload) != crc:
        raise Unusable("damaged: the payload's checksum does not match")
    return header, payload


def identity(trial: Trial) -> dict[str, Any]:
    """What ties a checkpoint to its trial: the folder, the config name, every value, the seed."""
    return {"trial": trial.folder, "config_file": trial.name, "config": dict(trial.raw), "seed": trial.seed}


def mismatch(header: dict[str, Any], trial: Trial) -> str | None:
    """Why a checkpoint's header belongs to another trial, config or seed (None: it is this trial's)."""
    mine = identity(trial)
    if header.get("trial") != mine["trial"] or header.get("config_file") != mine["config_file"]:
        return f"written by another trial ({clip(str(header.get('trial')))[:100]})"
    if header.get("config") != mine["config"]:
        found = header.get("config")
        theirs: dict[str, Any] = found if isinstance(found, dict) else {}
        changed = sorted(k for k in set(theirs) | set(mine["config"]) if theirs.get(k) != mine["config"].get(k))
        return f"written with another config ({', '.join(changed[:3]) or 'config'} differ)"
    if header.get("seed") != mine["seed"]:
        return f"written with seed {header.get('seed')!r}, this trial's is {trial.seed}"
    epoch, history = header.get("epoch"), header.get("history")
    if not isinstance(epoch, int) or epoch < 0 or not isinstance(history, list):
        return "its header has no epoch count or history"
    return None


def checkpoint_files(folder: Path) -> list[Path]:
    """A trial's checkpoints, newest first (by the sequence number in the name)."""
    found: list[tuple[int, Path]] = []
    try:
        entries = list(storage.sweep_path(folder, FOLDER).iterdir())
    except OSError:  # none yet, or a linked folder in its place (a save then fails naming it)
        return []
    for path in entries:
        match = _NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found, reverse=True)]


def checkpoint_temps(folder: Path) -> list[Path]:
    """The temporary files of saves that were killed halfway (or are in progress elsewhere)."""
    try:
        return list(storage.sweep_path(folder, FOLDER).glob(".checkpoint-*.tmp"))
    except OSError:
        return []


def _sequence(path: Path) -> int:
    match = _NAME.fullmatch(path.name)
    return int(match.group(1)) if match else 0


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path``: readers see the old file or the whole new one, also after a kill."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), storage.FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut only once the folder is on disk
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def epochs(n: int) -> str:
    """``1 epoch``, ``4 epochs``."""
    return f"{n} epoch" if n == 1 else f"{n} epochs"


# -- one trial's checkpoints -----------------------------------------------------------------------
class TrialCheckpoints:
    """The checkpoints of the trial running in this process (what :class:`TrialContext` calls).

    :param history: the runner's list of the trial's epoch metrics: saved in each header and
        restored from it, so the record's history covers the epochs before the checkpoint too.
    :param stop: what asks the trial to checkpoint and end now (preemption), or None.
    :param pause: whether a scheduler paused the trial at this epoch (checkpoint it, then end).
    :param final_stop: whether a scheduler stopped it for good (no checkpoint is needed then).
    :param shipped: called with each checkpoint written, once it is on disk (a Ray node without the
        sweep folder ships it to the controller there); returns why it could not, which fails the
        trial, or None.
    """

    def __init__(
        self,
        folder: Path,
        trial: Trial,
        policy: Policy,
        codecs: list[CheckpointCodec],
        *,
        log: Callable[[str], None],
        note: Callable[[str], None],
        history: list[dict[str, Any]],
        stop: Callable[[], str | None] = lambda: None,
        pause: Callable[[], bool] = lambda: False,
        final_stop: Callable[[], bool] = lambda: False,
        worker: str = "main",
        shipped: Callable[[Path], str | None] | None = None,
    ) -> None:
        self.folder = folder
        self.shipped = shipped
        self.trial = trial
        self.policy = policy
        self.codecs = codecs
        self.log = log
        self.note = note
        self.history = history
        self.stop = stop
        self.pause = pause
        self.final_stop = final_stop
        self.worker = worker
        #: the trainer called load(): it restores from checkpoints (so it can be preempted gently)
        self.aware = False
        #: the epochs done in the checkpoint this trial continued from (None: from scratch)
        self.resumed_from: int | None = None
        self.loaded: Path | None = None
        self.saved = 0
        self.last_epoch = 0
        self.last_time = time.monotonic()

    # -- when -------------------------------------------------------------------------------
    def due(self, final: bool = False) -> bool:
        """Whether :meth:`save` would write now (see ``TrialContext.checkpoint_due``)."""
        if self.stop() is not None or self.pause():
            return True
        if self.final_stop():
            return False  # the trial ends here for good: nothing will continue from it
        if final:
            return self.policy.keep_after and self.policy.enabled
        if self.policy.every_seconds is not None:
            return time.monotonic() - self.last_time >= self.policy.every_seconds
        if self.policy.every_epochs is not None:
            return len(self.history) - self.last_epoch >= self.policy.every_epochs
        return False

    # -- save -------------------------------------------------------------------------------
    def _codec(self, state: Any) -> CheckpointCodec:
        why = "no checkpoint codec is installed"
        for codec in self.codecs:
            problem = codec.accepts(state)
            if problem is None:
                return codec
            why = problem
        raise TrialFailed(f"ctx.save_checkpoint: cannot save the state: {why}; a checkpoint holds {PLAIN_WORDS}")

    def save(self, state: Any, force: bool = False) -> bool:
        """Write ``state`` when a checkpoint is due (or ``force``); True when written.

        After writing, a preempted trial ends here: :class:`TrialPreempted` is raised.
        """
        stop = self.stop()
        if not (force or self.due()):
            return False
        started = time.perf_counter()
        codec = self._codec(state)
        payload = codec.dumps(state)
        epoch = len(self.history)
        header = {
            **identity(self.trial),
            "epoch": epoch,
            "history": self.history,
            "codec": codec.name,
            "worker": self.worker,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        files = checkpoint_files(self.folder)
        seq = (_sequence(files[0]) + 1) if files else 1
        # inside the trial folder, never through a link in its place (storage.sweep_path)
        path = storage.sweep_path(self.folder, FOLDER, f"checkpoint-{seq:06d}-epoch{epoch}.ckpt")
        data = encode(header, payload)
        write_atomic(path, data)
        for old in checkpoint_files(self.folder)[self.policy.keep :]:
            old.unlink(missing_ok=True)
        if self.shipped is not None:
            problem = self.shipped(path)
            if problem is not None:
                raise TrialFailed(f"checkpoint after {epochs(epoch)} not shipped: {problem}")
        self.saved += 1
        self.last_epoch = epoch
        self.last_time = time.monotonic()
        self.note(
            f"checkpoint after {epochs(epoch)}: {FOLDER}/{path.name} ({_size(len(data))} in "
            f"{time.perf_counter() - started:.2f} s, {codec.name})"
        )
        if stop is not None:
            raise TrialPreempted(
                f"preempted ({stop}) after {epochs(epoch)}; checkpointed, pytest --sweep-resume continues it"
            )
        return True

    # -- load -------------------------------------------------------------------------------
    def load(self) -> Any | None:
        """The newest usable checkpoint's state (None: train from scratch); see the module docstring."""
        self.aware = True
        now = time.time()
        for tmp in checkpoint_temps(self.folder):
            try:  # a save killed halfway (a young one may be another process's save in progress)
                if now - tmp.stat().st_mtime > STALE_SECONDS:
                    tmp.unlink()
            except OSError:
                pass
        files = checkpoint_files(self.folder)
        for path in files:
            try:
                state, header = self._read(path)
            except Unusable as exc:
                gone = self._remove(path)
                self.log(f"checkpoint {FOLDER}/{path.name} not used: {exc}{gone}")
                continue
            self.history[:] = [dict(h) for h in header["history"] if isinstance(h, dict)]
            self.resumed_from = self.last_epoch = int(header["epoch"])
            self.loaded = path
            written = f", written {header.get('written')} by {header.get('worker')}" if header.get("written") else ""
            self.log(f"continuing from checkpoint {FOLDER}/{path.name}: {epochs(header['epoch'])} done{written}")
            return state
        if files:
            self.log("no usable checkpoint: training from scratch")
        return None

    def _read(self, path: Path) -> tuple[Any, dict[str, Any]]:
        try:
            size = path.stat().st_size
            if size > MAX_HEADER * 64:  # no state is this large; refuse to read it into memory
                raise Unusable(f"{_size(size)} is not a checkpoint this sweep wrote")
            data = path.read_bytes()
        except OSError as exc:
            raise Unusable(f"cannot read it ({exc.strerror or exc})") from None
        header, payload = decode(data)
        problem = mismatch(header, self.trial)
        if problem is not None:
            raise Unusable(problem)
        codec = next((c for c in self.codecs if c.name == header.get("codec")), None)
        if codec is None:
            raise Unusable(f"its codec {clip(str(header.get('codec')))[:40]!r} is not installed here")
        try:
            state = codec.loads(payload)
        except Exception as exc:  # the codec's own errors: pickle, torch, zip...
            raise Unusable(
                f"its {codec.name} payload does not load ({type(exc).__name__}: {clip(str(exc))[:120]})"
            ) from None
        return state, header

    @staticmethod
    def _remove(path: Path) -> str:
        try:
            path.unlink()
        except OSError as exc:
            return f" (and could not be removed: {exc.strerror or exc})"
        return "; removed"

    def discard(self, reason: str) -> None:
        """The trainer cannot use the state it loaded: it trains from scratch (see ``TrialContext``)."""
        where = f"{FOLDER}/{self.loaded.name}" if self.loaded is not None else "the checkpoint"
        self.log(f"checkpoint {where} does not fit this trial ({clip(reason)[:200]}): training from scratch")
        if self.loaded is not None:
            self.loaded.unlink(missing_ok=True)
        self.history.clear()
        self.resumed_from = None
        self.loaded = None
        self.last_epoch = 0

    def remove_all(self) -> None:
        """The trial completed: its checkpoints go (unless ``--sweep-keep-checkpoints``)."""
        if self.policy.keep_after:
            return
        remove_checkpoints(self.folder)


def remove_checkpoints(folder: Path) -> None:
    """Remove a trial folder's checkpoints (and the temp files of a save that was killed)."""
    try:
        where = storage.sweep_path(folder, FOLDER)
    except storage.UnsafePath:
        return  # a link in its place: nothing of this sweep's to remove there
    if not where.is_dir():
        return
    for path in where.iterdir():
        if _NAME.fullmatch(path.name) or (path.name.startswith(".checkpoint-") and path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)
    try:
        where.rmdir()
    except OSError:
        pass  # something else lives there: leave it
