"""The rung store: the per-rung (or per-epoch) results every process of a sweep shares.

A scheduler's decision depends on the results other trials recorded before it, and those trials
run on other processes (xdist workers, Ray actors).  :class:`RungStore` is the small interface a
scheduler needs; :class:`SqliteRungStore` keeps it in ``rungs.sqlite`` in the sweep folder (WAL
mode, one ``BEGIN IMMEDIATE`` transaction per decision), so several processes on one machine
decide at once without losing an update, and a crashed sweep resumed with ``--sweep-resume``
finds every decision it made.  On Ray, whose nodes may share no disk, one actor on the
controller's node holds this store and the trials call it (``pytest_sweep.matrix.ray.state``).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Seconds a writer waits for another process's transaction before it gives up.
BUSY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Verdict:
    """A decision at one rung: stop or go on, and why (one line; empty when it goes on)."""

    stop: bool
    reason: str = ""


#: A rule: (this trial's value, the other trials' values at the same step) -> verdict.
Rule = Callable[[float, list[float]], Verdict]


class RungStore(Protocol):
    """What a scheduler keeps across processes.

    ``kind`` separates the tables of different rules (``rung``, ``epoch``); ``step`` is the
    epoch; ``trial`` the trial's folder name (unique in a sweep).
    """

    def decide(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        """Record ``value`` and decide with ``rule`` against the others, atomically.

        When ``trial`` already has a decision at this step (a resumed or re-run trial), that
        decision is returned unchanged and nothing is recorded.
        """
        ...

    def finish(self, trial: str) -> None:
        """``trial`` completed (trained every epoch)."""
        ...

    def finished(self) -> int:
        """How many trials completed."""
        ...


#: The tables of the store and their columns, in order.
TABLES = {
    "results": ("kind", "step", "trial", "value", "stop", "reason"),
    "finished": ("trial",),
    "promotions": ("kind", "step", "trial", "stop", "reason"),  # ASHA's promotion mode
}


def _setup(db: sqlite3.Connection) -> None:
    """WAL mode and the tables, retried while another process holds the file locked.

    Two processes opening a new store at once (the first items of ``-n 2``) can meet
    ``database is locked`` at once, without SQLite's busy timeout: switching a new file to WAL
    needs it exclusively.  Every statement here is idempotent, so it is simply tried again.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS results (kind TEXT NOT NULL, step INTEGER NOT NULL, "
                "trial TEXT NOT NULL, value REAL NOT NULL, stop INTEGER NOT NULL, reason TEXT NOT NULL, "
                "PRIMARY KEY (kind, step, trial))"
            )
            db.execute("CREATE TABLE IF NOT EXISTS finished (trial TEXT PRIMARY KEY)")
            _decisions(db)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SqliteRungStore:
    """:class:`RungStore` in an SQLite file (WAL mode), for every process on one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def problem(self) -> str | None:
        """Why the store cannot be used (one phrase), or None; checked before the first trial.

        A resumed sweep's file may be damaged, replaced by a folder, or another program's database:
        without this check every trial would fail at its first rung with SQLite's own error.
        """
        if self.path.is_dir():
            return "it is a folder"
        if self.path.exists() and not self.path.is_file():
            return "it is not a regular file"
        try:
            db = self._connect()
            found = {
                str(table): tuple(str(c[1]) for c in db.execute(f"PRAGMA table_info({table})")) for table in TABLES
            }
            db.execute("BEGIN IMMEDIATE")  # the write lock, as every decision takes it
            db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self.close()
            return f"{type(exc).__name__}: {exc}"
        except OSError as exc:
            self.close()
            return exc.strerror or str(exc)
        for table, columns in TABLES.items():
            if found[table] != columns:
                self.close()
                return f"its table {table} has the columns ({', '.join(found[table])}), not ({', '.join(columns)})"
        # closed again: the trials may run in another thread (a Ray actor's), and an SQLite
        # connection belongs to the thread that opened it
        self.close()
        return None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                _setup(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def decide(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        if not math.isfinite(value):  # SQLite would store NaN as NULL (and the rules cannot rank it)
            raise ValueError(f"a rung value must be a finite number, not {value}")
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")  # the write lock first: no other process decides in between
        try:
            known = db.execute(
                "SELECT stop, reason FROM results WHERE kind = ? AND step = ? AND trial = ?", (kind, step, trial)
            ).fetchone()
            if known is not None:
                db.execute("COMMIT")
                return Verdict(bool(known[0]), str(known[1]))
            others = [
                float(v)
                for (v,) in db.execute(
                    "SELECT value FROM results WHERE kind = ? AND step = ? AND trial != ?", (kind, step, trial)
                )
            ]
            verdict = rule(value, others)
            db.execute(
                "INSERT INTO results (kind, step, trial, value, stop, reason) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, step, trial, value, int(verdict.stop), verdict.reason),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return verdict

    def finish(self, trial: str) -> None:
        self._connect().execute("INSERT OR IGNORE INTO finished (trial) VALUES (?)", (trial,))

    def finished(self) -> int:
        row = self._connect().execute("SELECT COUNT(*) FROM finished").fetchone()
        return int(row[0])

    def values(self, kind: str, step: int) -> dict[str, float]:
        """Every trial's value at one step (for tests and reports)."""
        rows = self._connect().execute("SELECT trial, value FROM results WHERE kind = ? AND step = ?", (kind, step))
        return {str(t): float(v) for t, v in rows}

    def record(self, kind: str, step: int, trial: str, value: float) -> None:
        record_value(self, kind, step, trial, value)

    def promote(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        return promote(self, kind, step, trial, value, rule)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class PromotionStore(RungStore, Protocol):
    """A :class:`RungStore` that also keeps values without a decision, and promotions decided later
    (ASHA's promotion mode: a trial records its value when it pauses at a rung; whether it is
    promoted is decided when its next stage starts, against the values recorded by then)."""

    def record(self, kind: str, step: int, trial: str, value: float) -> None:
        """Keep ``trial``'s ``value`` at ``step`` (the first value stays)."""
        ...

    def promote(self, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
        """Decide once, atomically, with ``rule`` against the other values at ``step``; later calls
        return that decision.  ``value`` is recorded first if ``trial`` has none there."""
        ...


def _decisions(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS promotions (kind TEXT NOT NULL, step INTEGER NOT NULL, trial TEXT NOT NULL, "
        "stop INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (kind, step, trial))"
    )


def record_value(store: SqliteRungStore, kind: str, step: int, trial: str, value: float) -> None:
    """:meth:`PromotionStore.record` for :class:`SqliteRungStore`."""
    store._connect().execute(
        "INSERT OR IGNORE INTO results (kind, step, trial, value, stop, reason) VALUES (?, ?, ?, ?, 0, '')",
        (kind, step, trial, value),
    )


def promote(store: SqliteRungStore, kind: str, step: int, trial: str, value: float, rule: Rule) -> Verdict:
    """:meth:`PromotionStore.promote` for :class:`SqliteRungStore` (one ``BEGIN IMMEDIATE``)."""
    db = store._connect()
    _decisions(db)
    db.execute("BEGIN IMMEDIATE")
    try:
        known = db.execute(
            "SELECT stop, reason FROM promotions WHERE kind = ? AND step = ? AND trial = ?", (kind, step, trial)
        ).fetchone()
        if known is not None:
            db.execute("COMMIT")
            return Verdict(bool(known[0]), str(known[1]))
        db.execute(
            "INSERT OR IGNORE INTO results (kind, step, trial, value, stop, reason) VALUES (?, ?, ?, ?, 0, '')",
            (kind, step, trial, value),
        )
        rows = db.execute("SELECT trial, value FROM results WHERE kind = ? AND step = ?", (kind, step)).fetchall()
        mine = next(float(v) for t, v in rows if t == trial)
        verdict = rule(mine, [float(v) for t, v in rows if t != trial])
        db.execute(
            "INSERT INTO promotions (kind, step, trial, stop, reason) VALUES (?, ?, ?, ?, ?)",
            (kind, step, trial, int(verdict.stop), verdict.reason),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return verdict
