"""SQLite: the write-ahead log copied back into the database on a thread of its own.

SQLite's automatic checkpoint runs inside whichever commit takes the log past 1,000 pages, so
every few hundred judgments one annotator waited for a checkpoint and its fsync (the p99 of
the annotation loop). The server's connections turn that off (`build_engine(...,
serving=True)`) and this thread checkpoints instead, PASSIVE: it never blocks
a reader or a writer, and copies what it can.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

CHECKPOINT_INTERVAL_SECONDS = 0.25

_log = logging.getLogger("prefstack.database")


class WalCheckpointer:
    """Checkpoints one SQLite database every `interval` seconds until stopped (then once more)."""

    def __init__(self, database_path: str, *, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self._path = database_path
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prefstack-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after a last checkpoint."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        try:
            while True:
                stopping = self._stopping.wait(self._interval)
                try:
                    checkpoint(connection)
                except sqlite3.Error as error:  # a busy database or a full disk: try again next time
                    _log.warning("WAL checkpoint failed: %s", error)
                if stopping:
                    return
        finally:
            connection.close()


def checkpoint(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (1 if it could not finish, frames in the log, frames copied)."""
    busy, log_frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(log_frames), int(copied)
