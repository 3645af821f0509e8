"""The capture proxy's durable local spool: recorded calls wait here until the drain has written them
to the database (docs/capture.md).

An SQLite file in WAL mode under `FTVP_DATA_DIR/spool/`, one row per call keyed by its `call_id`
(INSERT OR IGNORE: a call spooled twice is kept once). `SpoolWriter` takes records from the request
path without waiting (a queue) and commits them from a thread of its own in batches, so a response
never waits on the disk. `spool_take` and `spool_delete` are the drain's halves: a row is deleted only
after the database insert committed, so a crash between the two re-sends it and the insert's
`ignore_conflicts` on `call_id` keeps it once. Several proxy processes (gunicorn workers) share the
file; SQLite serialises their writes (busy timeout).

synchronous=NORMAL in WAL mode: a committed record survives the process being killed (the case the
spool is for); a power cut may lose the last commits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

SPOOL_FILE = "capture.sqlite3"
BATCH = 500

log = logging.getLogger(__name__)


def spool_path() -> Path:
    folder = Path(settings.FTVP_SPOOL_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / SPOOL_FILE


def spool_connect(path: Path | None = None, *, wait: float = 30.0) -> sqlite3.Connection:
    """A connection to the spool, the file and its table made when missing. Switching to WAL takes a
    lock SQLite does not wait for: another connection opening the file at the same moment is waited
    for here (up to `wait` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        conn = sqlite3.connect(
            str(path or spool_path()), timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS calls (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "call_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS lookups (kind TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, PRIMARY KEY (kind, key))"
            )
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def spool_put(conn: sqlite3.Connection, records: list[dict]) -> None:
    """Write `records` (already redacted) in one transaction."""
    if not records:
        return
    rows = [(r["call_id"], json.dumps(r, separators=(",", ":"))) for r in records]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT OR IGNORE INTO calls (call_id, body) VALUES (?, ?)", rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def spool_take(conn: sqlite3.Connection, limit: int = BATCH) -> tuple[list[int], list[dict]]:
    """The oldest `limit` spooled records and their sequence numbers (nothing is removed)."""
    rows = conn.execute("SELECT seq, body FROM calls ORDER BY seq LIMIT ?", (limit,)).fetchall()
    return [seq for seq, _ in rows], [json.loads(body) for _, body in rows]


def spool_delete(conn: sqlite3.Connection, seqs: list[int]) -> None:
    if not seqs:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM calls WHERE seq = ?", [(s,) for s in seqs])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def spool_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


class SpoolWriter:
    """Records handed over by `put` (never blocks) are committed to the spool by a thread of its own,
    in batches of whatever arrived meanwhile, after `prepare` (which must not raise) made each the
    record to keep. `close()` commits everything handed over, then stops."""

    _STOP = object()

    def __init__(self, path: Path | None = None, prepare: Callable[[dict], dict] | None = None) -> None:
        self.path = path or spool_path()
        self.prepare = prepare  # turns what was handed over into the record (in this thread)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.failing = ""  # the last write error while it lasts (empty: writing)
        self._thread = threading.Thread(target=self._run, name="ftvp-spool-writer", daemon=True)
        self._thread.start()

    def put(self, record: dict) -> None:
        self._queue.put(record)

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(self._STOP)
        self._thread.join(timeout)

    def _write(self, conn: sqlite3.Connection, batch: list[dict]) -> sqlite3.Connection:
        """Commit the batch, however long it takes: a locked file, a full disk or a broken connection
        is retried with a growing pause (the batch kept), so the thread never dies and drops calls."""
        pause = 0.05
        while True:
            try:
                spool_put(conn, batch)
                self.failing = ""
                return conn
            except (sqlite3.Error, OSError) as exc:
                self.failing = f"{type(exc).__name__}: {exc}"
                log.warning("capture spool: a write failed (%s); retrying in %.1fs", self.failing, pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                    with contextlib.suppress(sqlite3.Error):  # a broken connection: open the file again
                        conn.close()
                    conn = spool_connect(self.path, wait=3600.0)

    def _run(self) -> None:
        conn = spool_connect(self.path, wait=3600.0)
        try:
            while True:
                item = self._queue.get()
                batch, stop = [], item is self._STOP
                if not stop:
                    batch.append(item)
                while len(batch) < BATCH and not stop:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is self._STOP:
                        stop = True
                    else:
                        batch.append(item)
                if self.prepare is not None:
                    batch = [self.prepare(item) for item in batch]
                conn = self._write(conn, batch)
                if stop:
                    return
        finally:
            conn.close()


# The proxy's last-known lookups (a token by its hash, an endpoint by name: never a key), kept beside
# the spool so that a proxy restarted while the database is down still knows who may call what.


def lookup_save(kind: str, key: str, value: dict | None, *, path: Path | None = None) -> None:
    """Remember (or, for None: forget) the database's latest answer to a lookup."""
    conn = spool_connect(path)
    try:
        if value is None:
            conn.execute("DELETE FROM lookups WHERE kind = ? AND key = ?", (kind, key))
        else:
            conn.execute(
                "INSERT OR REPLACE INTO lookups (kind, key, value) VALUES (?, ?, ?)",
                (kind, key, json.dumps(value, sort_keys=True)),
            )
    finally:
        conn.close()


def lookup_load(kind: str, key: str, *, path: Path | None = None) -> dict | None:
    """The last answer remembered for a lookup; None when there is none."""
    conn = spool_connect(path)
    try:
        row = conn.execute("SELECT value FROM lookups WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    finally:
        conn.close()
    return json.loads(row[0]) if row else None
