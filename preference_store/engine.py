"""Engine and session factories, with the SQLite settings concurrent annotators need."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 15_000
WRITE_OPTION = "prefstack_writer"
NOWAIT_OPTION = "prefstack_writer_nowait"
NOWAIT_SESSION_FLAG = "prefstack_writer_nowait"


class WriterBusy(Exception):
    """Another writer holds SQLite's write lock and the caller asked not to wait."""


def is_sqlite_url(url: str) -> bool:
    """Whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def build_engine(url: str, *, echo: bool = False, pool_size: int = 20, serving: bool = False) -> Engine:
    """Create an engine for `url`, configured for SQLite or PostgreSQL.

    `serving`: the engine of a server process. Its SQLite connections never checkpoint the
    write-ahead log in a commit (a `wal_checkpoints.WalCheckpointer` must run beside them), and its
    PostgreSQL connections never JIT-compile a query: compiling one whose estimated cost crosses
    `jit_above_cost` takes tens to hundreds of milliseconds, many times what an annotator's
    request takes (docs/benchmarks.md, "Open loop").
    """
    if is_sqlite_url(url):
        return _build_sqlite_engine(url, echo=echo, pool_size=pool_size, checkpoint_in_background=serving)
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
    _ping_after_idle(engine, PING_AFTER_IDLE_SECONDS)
    if serving:
        event.listen(engine, "connect", _without_jit)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""
_IDLE_SINCE = "prefstack_idle_since"


def _ping_after_idle(engine: Engine, seconds: float) -> None:
    """`pool_pre_ping`, but only for connections that sat in the pool longer than `seconds`.

    A ping is a round trip; under load a connection is back in use within milliseconds, and
    pinging it each time was one of the annotation loop's few round trips. A connection the
    server closed since its last use then fails its next statement: that request fails
    (503) and the pool drops every connection opened before (SQLAlchemy's disconnect
    handling), so the next requests reconnect.
    """

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise InvalidatePoolError() from error
            raise


def _without_jit(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()


def sqlite_file(engine: Engine) -> str | None:
    """The file of a SQLite engine's database; None for PostgreSQL and in-memory SQLite."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    return engine.url.database


def _build_sqlite_engine(url: str, *, echo: bool, pool_size: int, checkpoint_in_background: bool) -> Engine:
    parsed = make_url(url)
    in_memory = parsed.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"echo": echo}
    if in_memory:
        from sqlalchemy.pool import StaticPool

        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (pysqlite's own BEGIN handling breaks
        # SAVEPOINTs); the "begin" hook below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            if checkpoint_in_background:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    write_lock = _WriterLock(parsed.database or ":memory:")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Writers take the lock up front so two deferred transactions never deadlock
        # when both upgrade to writing ("database is locked"). Waiting on our own lock
        # instead of SQLite's busy handler avoids its sleep-and-retry back-off.
        # On the driver connection: nothing to compile or to return for BEGIN.
        driver: Any = connection.connection.driver_connection
        options = connection.get_execution_options()
        if options.get(WRITE_OPTION, False):
            if not write_lock.acquire(driver, blocking=not options.get(NOWAIT_OPTION, False)):
                raise WriterBusy("another transaction is writing")
            try:
                driver.execute("BEGIN IMMEDIATE")
            except BaseException:
                write_lock.release(driver)
                raise
        else:
            driver.execute("BEGIN")

    # Sessions and `engine.begin()` hand the connection back right after COMMIT, so the
    # lock is held exactly while SQLite holds its own write lock.
    @event.listens_for(engine.pool, "checkin")
    def _checkin(dbapi_connection: Any, _record: Any) -> None:
        write_lock.release(dbapi_connection)

    return engine


class _WriterLock:
    """One writer at a time: a thread lock, plus `flock` on a side file across processes."""

    def __init__(self, database: str) -> None:
        self._thread_lock = threading.Lock()
        self._holder: Any = None
        self._lock_path = None if database == ":memory:" else f"{database}.writelock"
        self._fd: int | None = None

    def acquire(self, dbapi_connection: Any, *, blocking: bool = True) -> bool:
        if self._holder is dbapi_connection:
            return True
        if not self._thread_lock.acquire(blocking=blocking):
            return False
        if self._lock_path is not None:
            if self._fd is None:
                self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._thread_lock.release()
                return False
        self._holder = dbapi_connection
        return True

    def release(self, dbapi_connection: Any) -> None:
        if self._holder is None or self._holder is not dbapi_connection:
            return
        self._holder = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


def begin_write(session: Session) -> None:
    """Make the session's transaction a writer: BEGIN IMMEDIATE on SQLite.

    Call it before the first write of a use case. On SQLite a reader that later writes
    fails ("database is locked") when another writer committed in between, so an open
    read-only transaction (an auth lookup, say) is ended first and a writer begun.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    if session.in_transaction():
        if session.connection().get_execution_options().get(WRITE_OPTION, False):
            return
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("begin_write() called with unflushed changes in a read transaction")
        session.commit()
    nowait = bool(session.info.get(NOWAIT_SESSION_FLAG, False))
    session.connection(execution_options={WRITE_OPTION: True, NOWAIT_OPTION: nowait})


def commit_reads(session: Session) -> None:
    """End the session's transaction, which only read, with COMMIT instead of the ROLLBACK that
    closing the session sends.

    psycopg forgets every prepared statement of a connection on a ROLLBACK: a page whose reads
    ended that way had PostgreSQL plan each of its statements again on every request (and the
    ROLLBACK went out from the event loop, where the request's session is closed).
    """
    if session.in_transaction():
        session.commit()


def runs_inline(engine: Engine) -> bool:
    """Whether calls to this database are quick local calls (SQLite), fit to run on an event loop."""
    return engine.dialect.name == "sqlite"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction for schema migrations.

    On SQLite, foreign keys are off meanwhile: batch migrations rebuild a table by
    copying it and dropping the old one, and that drop would cascade to the rows of
    every table referring to it. The keys are checked before the transaction commits.
    """
    with engine.connect() as connection:
        driver: Any = connection.connection.driver_connection if engine.dialect.name == "sqlite" else None
        if driver is not None:
            driver.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: before BEGIN
        try:
            with connection.begin():
                yield connection
                if driver is not None:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")
        finally:
            if driver is not None:
                driver.execute("PRAGMA foreign_keys = ON")


DEADLOCK_SQLSTATE = "40P01"


def is_deadlock(error: DBAPIError) -> bool:
    """Whether the database broke a deadlock by aborting this statement's transaction."""
    return getattr(error.orig, "sqlstate", None) == DEADLOCK_SQLSTATE
