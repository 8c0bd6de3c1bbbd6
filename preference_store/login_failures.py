"""Failed logins, counted per key over a time window by every worker sharing the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from preference_store.models import LoginFailure

_F = cast(Table, LoginFailure.__table__)


def failures_since(session: Session, *, key_digests: Sequence[str], since: datetime) -> dict[str, int]:
    """How many failures each key has had after `since` (keys with none are left out)."""
    rows = session.execute(
        select(_F.c.key_digest, func.count())
        .where(_F.c.key_digest.in_(key_digests), _F.c.failed_at > since)
        .group_by(_F.c.key_digest)
    )
    return {key: int(count) for key, count in rows}


def record_failures(session: Session, *, key_digests: Sequence[str], now: datetime, forget_before: datetime) -> None:
    """Add one failure per key, and forget every failure older than `forget_before`."""
    session.execute(delete(_F).where(_F.c.failed_at < forget_before))
    session.execute(insert(_F), [{"key_digest": key, "failed_at": now} for key in key_digests])


def forget(session: Session, *, key_digest: str) -> None:
    session.execute(delete(_F).where(_F.c.key_digest == key_digest))
