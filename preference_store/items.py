"""Items, their responses and their place in the claim queue."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, cast

import orjson
from sqlalchemy import Table, Text, bindparam, func, insert, select, text
from sqlalchemy.orm import Session

from preference_store.background_copy import BackgroundCopy, Copy, send_copies
from preference_store.base import utcnow
from preference_store.copy_text import copy_payload
from preference_store.engine import WRITE_OPTION
from preference_store.models import Item, ItemQueue, Response
from preference_store.queue import queue_language, queue_rank

_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class NewResponse:
    """A candidate response to be stored with a new item."""

    content: str
    model_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item to be stored, already validated."""

    external_id: str
    messages: list[dict[str, Any]]
    responses: list[NewResponse]
    metadata: dict[str, Any]
    content_hash: str
    priority: int = 0
    is_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class StoredResponse:
    position: int
    content: str
    model_name: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ItemContent:
    """What an annotator is shown of an item, in stored (unshuffled) order."""

    id: int
    project_id: int
    external_id: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    is_sensitive: bool
    responses: list[StoredResponse]


_I = cast(Table, Item.__table__)
_R = cast(Table, Response.__table__)
_Q = cast(Table, ItemQueue.__table__)
ITEM_CONTENT_COLUMNS = (
    _I.c.id,
    _I.c.project_id,
    _I.c.external_id,
    _I.c.messages,
    _I.c.metadata,
    _I.c.is_sensitive,
    _R.c.position,
    _R.c.content,
    _R.c.model_name,
    _R.c.metadata.label("response_metadata"),
)
"""What `item_content_from_rows` reads: an item's columns and one response's, a row per response."""
_ITEM_WITH_RESPONSES = (
    select(*ITEM_CONTENT_COLUMNS)
    .join(_R, _R.c.item_id == _I.c.id)
    .where(_I.c.id == bindparam("item_id"))
    .order_by(_R.c.position)
)


@dataclass(frozen=True, slots=True)
class ExistingItem:
    id: int
    content_hash: str


def project_has_items(session: Session, *, project_id: int) -> bool:
    """Whether the project holds any item (one index probe)."""
    return session.scalar(select(_I.c.id).where(_I.c.project_id == project_id).limit(1)) is not None


def existing_content_hashes(
    session: Session, *, project_id: int, external_ids: Iterable[str]
) -> dict[str, ExistingItem]:
    """Map each already-stored external id of the project to its item id and content hash."""
    ids = list(external_ids)
    found: dict[str, ExistingItem] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        rows = session.execute(
            select(Item.external_id, Item.id, Item.content_hash).where(
                Item.project_id == project_id, Item.external_id.in_(chunk)
            )
        )
        found.update((external_id, ExistingItem(item_id, content_hash)) for external_id, item_id, content_hash in rows)
    return found


@dataclass(frozen=True, slots=True)
class ItemModels:
    """An item's id and the model name of each response, by position."""

    id: int
    models: tuple[str, ...]


def response_models(session: Session, *, project_id: int, external_ids: Iterable[str]) -> dict[str, ItemModels]:
    """Map each stored external id of the project to its item id and response model names (one query a chunk)."""
    ids = list(external_ids)
    models: dict[str, list[str]] = {}
    item_ids: dict[str, int] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(_I.c.external_id, _I.c.id, _R.c.model_name)
            .join(_R, _R.c.item_id == _I.c.id)
            .where(_I.c.project_id == project_id, _I.c.external_id.in_(ids[start : start + _IN_CHUNK]))
            .order_by(_I.c.id, _R.c.position)
        )
        for external_id, item_id, model_name in rows:
            item_ids[external_id] = item_id
            models.setdefault(external_id, []).append(model_name)
    return {external_id: ItemModels(item_ids[external_id], tuple(names)) for external_id, names in models.items()}


def insert_items(session: Session, *, project_id: int, items: Sequence[NewItem], open_slots: int) -> list[int]:
    """Insert new items with their responses and queue rows (COPY on PostgreSQL); returns their ids, in order."""
    if not items:
        return []
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        item_ids, copies = item_copies(session, project_id=project_id, items=items, open_slots=open_slots, now=now)
        send_copies(session.connection().connection.driver_connection, copies)
        return item_ids
    if session.connection().get_execution_options().get(WRITE_OPTION, False):
        item_ids = _insert_items_with_ids(session, project_id=project_id, items=items, now=now)
    else:
        item_ids = list(
            session.scalars(
                _INSERT_ITEM,
                [
                    {
                        "project_id": project_id,
                        "external_id": item.external_id,
                        "messages": _json_text(item.messages),
                        "metadata": _json_text(item.metadata),
                        "content_hash": item.content_hash,
                        "is_sensitive": item.is_sensitive,
                        "created_at": now,
                        "response_chars": _response_chars(item),
                    }
                    for item in items
                ],
            ).all()
        )
    _insert_rows(session, _R, _RESPONSE_COLUMNS, _response_rows(item_ids, items))
    queue_rows = _queue_rows(item_ids, items, project_id=project_id, open_slots=open_slots)
    _insert_rows(session, _Q, _QUEUE_COLUMNS, queue_rows)
    return item_ids


class ItemWriter:
    """Stores an import's batches of new items. On PostgreSQL a batch's COPYs run on a background thread
    while the caller reads its next batch; the caller must not use the session until `wait` has returned
    (`write` waits for the batch before it). Elsewhere `write` stores the batch before it returns."""

    def __init__(self, session: Session, *, project_id: int, open_slots: int) -> None:
        self._session = session
        self._project_id = project_id
        self._open_slots = open_slots
        postgresql = session.get_bind().dialect.name == "postgresql"
        self._background = BackgroundCopy(session) if postgresql else None

    def write(self, items: Sequence[NewItem]) -> list[int]:
        """Store (or start storing) the items; returns their ids, in order."""
        if self._background is None or not items:
            return insert_items(self._session, project_id=self._project_id, items=items, open_slots=self._open_slots)
        self._background.wait()
        item_ids, copies = item_copies(
            self._session, project_id=self._project_id, items=items, open_slots=self._open_slots, now=utcnow()
        )
        self._background.start(copies)
        return item_ids

    def wait(self) -> None:
        """Return once every batch written so far is stored; raise the database's error if one was refused."""
        if self._background is not None:
            self._background.wait()

    def __enter__(self) -> ItemWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._background is not None:
            self._background.close(failed=error is not None)


def item_copies(
    session: Session, *, project_id: int, items: Sequence[NewItem], open_slots: int, now: datetime
) -> tuple[list[int], list[Copy]]:
    """PostgreSQL: take ids for the items from the item sequence and format their item, response and queue
    rows as COPY payloads (no RETURNING to parse, and nothing more to ask of the connection)."""
    item_ids = sorted(session.scalars(_NEXT_ITEM_IDS, {"n": len(items)}).all())
    return item_ids, [
        (_copy_statement(_I, _ITEM_COLUMNS), copy_payload(_item_rows(item_ids, items, project_id=project_id, now=now))),
        (_copy_statement(_R, _RESPONSE_COLUMNS), copy_payload(_response_rows(item_ids, items))),
        (
            _copy_statement(_Q, _QUEUE_COLUMNS),
            copy_payload(_queue_rows(item_ids, items, project_id=project_id, open_slots=open_slots)),
        ),
    ]


def use_fast_compression(session: Session) -> None:
    """PostgreSQL: compress long values written by this transaction with lz4 instead of pglz
    (bulk imports spend much of the server's time compressing responses). Other engines,
    and servers built without lz4, are left as they are."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if session.scalar(_LZ4_AVAILABLE):
        session.execute(text("SET LOCAL default_toast_compression = 'lz4'"))


_LZ4_AVAILABLE = text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
_ITEM_COLUMNS = (
    "id",
    "project_id",
    "external_id",
    "messages",
    "metadata",
    "content_hash",
    "is_sensitive",
    "created_at",
    "response_chars",
)
_RESPONSE_COLUMNS = ("item_id", "position", "model_name", "content", "metadata")
_QUEUE_COLUMNS = ("item_id", "project_id", "open_slots", "is_reopened", "rank", "language")


def _copy_statement(table: Table, columns: tuple[str, ...]) -> str:
    return f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"


def _insert_rows(session: Session, table: Table, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> None:
    """SQLite: bulk-insert plain rows with the driver's executemany, in the session's transaction.
    Values must already be what the columns store (JSON as text)."""
    driver: Any = session.connection().connection.driver_connection
    placeholders = ", ".join("?" for _ in columns)
    driver.cursor().executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def _item_rows(
    item_ids: Sequence[int], items: Sequence[NewItem], *, project_id: int, now: Any
) -> Iterator[tuple[Any, ...]]:
    for item_id, item in zip(item_ids, items, strict=True):
        yield (
            item_id,
            project_id,
            item.external_id,
            _json_text(item.messages),
            _json_text(item.metadata),
            item.content_hash,
            item.is_sensitive,
            now,
            _response_chars(item),
        )


def _response_rows(item_ids: Sequence[int], items: Sequence[NewItem]) -> Iterator[tuple[Any, ...]]:
    for item_id, item in zip(item_ids, items, strict=True):
        for position, response in enumerate(item.responses):
            yield (item_id, position, response.model_name, response.content, _json_text(response.metadata))


def _queue_rows(
    item_ids: Sequence[int], items: Sequence[NewItem], *, project_id: int, open_slots: int
) -> Iterator[tuple[Any, ...]]:
    for item_id, item in zip(item_ids, items, strict=True):
        yield (
            item_id,
            project_id,
            open_slots,
            False,
            queue_rank(item_id, item.priority),
            queue_language(item.metadata.get("language")),
        )


def _insert_items_with_ids(session: Session, *, project_id: int, items: Sequence[NewItem], now: datetime) -> list[int]:
    """SQLite inside a writer transaction (BEGIN IMMEDIATE, so no other connection can insert meanwhile):
    number the rows from max(id) + 1, as SQLite itself would, and insert them with executemany.
    INSERT ... RETURNING in parameter order runs one statement per row on SQLite."""
    first = session.execute(select(func.coalesce(func.max(_I.c.id), 0))).scalar_one() + 1
    item_ids = list(range(first, first + len(items)))
    dialect = session.get_bind().dialect
    stored_time = _I.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    stored_now = stored_time(now) if stored_time is not None else now
    _insert_rows(session, _I, _ITEM_COLUMNS, _item_rows(item_ids, items, project_id=project_id, now=stored_now))
    return item_ids


_NEXT_ITEM_IDS = text("SELECT nextval(pg_get_serial_sequence('item', 'id')) FROM generate_series(1, :n)")
# SQLite: JSON columns take text serialized once by orjson, not by the column type's json.dumps.
_INSERT_ITEM = (
    insert(_I)
    .values(
        project_id=bindparam("project_id"),
        external_id=bindparam("external_id"),
        messages=bindparam("messages", type_=Text()),
        metadata=bindparam("metadata", type_=Text()),
        content_hash=bindparam("content_hash"),
        is_sensitive=bindparam("is_sensitive"),
        created_at=bindparam("created_at", type_=_I.c.created_at.type),
        response_chars=bindparam("response_chars"),
    )
    .returning(_I.c.id, sort_by_parameter_order=True)
)


def _response_chars(item: NewItem) -> int:
    """What `item.response_chars` stores: the characters of all its responses (as SQL length() counts them)."""
    return sum(len(response.content) for response in item.responses)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses (integers over 64 bits) the standard library writes
        return json.dumps(value, ensure_ascii=False)


def load_item_content(session: Session, *, item_id: int) -> ItemContent | None:
    """Read an item and its responses (one query), or None."""
    rows = session.connection().execute(_ITEM_WITH_RESPONSES, {"item_id": item_id}).all()
    return item_content_from_rows(rows) if rows else None


def item_content_from_rows(rows: Sequence[Any]) -> ItemContent:
    """An item from the rows of `ITEM_CONTENT_COLUMNS` (at least one), in response order."""
    first = rows[0]
    return ItemContent(
        id=first.id,
        project_id=first.project_id,
        external_id=first.external_id,
        messages=list(first.messages),
        metadata=dict(first.metadata or {}),
        is_sensitive=bool(first.is_sensitive),
        responses=[
            StoredResponse(row.position, row.content, row.model_name, dict(row.response_metadata or {})) for row in rows
        ],
    )
