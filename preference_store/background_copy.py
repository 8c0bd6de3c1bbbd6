"""PostgreSQL COPYs sent on a background thread, so the caller can read its next batch while the server stores this one.

The thread only moves bytes that are already formatted and then waits for the server, both with the
GIL released; formatting rows there instead would make it fight the reading thread for the GIL on
every buffer it sends. The session's connection is the thread's alone from `start` until `wait`
returns: the caller must not use the session in between.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

Copy = tuple[str, bytes]
"""A COPY ... FROM STDIN statement and its payload in text format (preference_store.copy_text)."""


class BackgroundCopy:
    """Runs one batch of COPYs at a time on a worker thread; `wait` joins it and raises what it raised."""

    def __init__(self, session: Session) -> None:
        self._driver: Any = session.connection().connection.driver_connection
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, copies: Sequence[Copy]) -> None:
        """Wait for the batch before (raising its error), then send these COPYs in the background."""
        self.wait()
        self._thread = threading.Thread(target=self._send, args=(copies,), name="prefstack-copy", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until the running batch is stored; raise its error, if it had one."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _send(self, copies: Sequence[Copy]) -> None:
        try:
            send_copies(self._driver, copies)
        except BaseException as error:  # handed to the caller by wait()
            self._error = error

    def close(self, *, failed: bool) -> None:
        """End the last batch: wait for it and raise its error, or, when the caller is already failing,
        only let the connection go idle before the caller rolls back (the batch's own error, most
        likely caused by the same fault, would only hide the caller's)."""
        if not failed:
            self.wait()
            return
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._error = None


def send_copies(driver: Any, copies: Sequence[Copy]) -> None:
    """Run each COPY ... FROM STDIN with its payload on a psycopg connection, in its current transaction."""
    with driver.cursor() as cursor:
        for statement, payload in copies:
            with cursor.copy(statement) as copy:
                copy.write(payload)
