"""Users, teams, API tokens and login sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, select, update
from sqlalchemy.orm import Session

from preference_store.models import ApiToken, LoginSession, Role, Team, User


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as the services need them (never the password hash)."""

    id: int
    email: str
    name: str
    role: Role
    team_id: int | None
    languages: tuple[str, ...]
    is_active: bool
    ui_language: str | None = None
    """The interface language the user picked, None for the browser's choice."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    user: UserRow
    csrf_token: str
    expires_at: datetime


_USER_COLUMNS = (
    User.id,
    User.email,
    User.name,
    User.role,
    User.team_id,
    User.languages,
    User.is_active,
    User.ui_language,
)
_USER_BY_TOKEN = (
    select(*_USER_COLUMNS)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)
_USER_BY_SESSION = (
    select(*_USER_COLUMNS, LoginSession.csrf_token, LoginSession.expires_at)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(LoginSession.token_hash == bindparam("token_hash"))
)


def _user(row: tuple[Any, ...]) -> UserRow:
    user_id, email, name, role, team_id, languages, is_active, ui_language = row[:8]
    return UserRow(
        id=int(user_id),
        email=str(email),
        name=str(name),
        role=Role(role),
        team_id=None if team_id is None else int(team_id),
        languages=tuple(languages or ()),
        is_active=bool(is_active),
        ui_language=ui_language,
    )


def get_or_create_team(session: Session, *, name: str, is_vendor: bool = False) -> int:
    """The id of the team with this name, created when missing."""
    team_id = session.scalar(select(Team.id).where(Team.name == name))
    if team_id is not None:
        return int(team_id)
    team = Team(name=name, is_vendor=is_vendor)
    session.add(team)
    session.flush()
    return team.id


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: Role,
    password_hash: str | None,
    team_id: int | None,
    languages: list[str],
) -> UserRow:
    """Insert a user and return it."""
    user = User(
        email=email,
        name=name,
        role=role,
        password_hash=password_hash,
        team_id=team_id,
        languages=languages,
    )
    session.add(user)
    session.flush()
    return UserRow(user.id, email, name, role, team_id, tuple(languages), True)


def get_user_by_email(session: Session, *, email: str) -> UserRow | None:
    """The user with this email (case-insensitive), or None."""
    row = session.execute(select(*_USER_COLUMNS).where(User.email == email.strip().lower())).first()
    return None if row is None else _user(tuple(row))


def get_users_by_emails(session: Session, *, emails: list[str]) -> dict[str, UserRow]:
    """Users by email, for the emails that exist."""
    normalized = [email.strip().lower() for email in emails]
    rows = session.execute(select(*_USER_COLUMNS).where(User.email.in_(normalized)))
    return {user.email: user for user in (_user(tuple(row)) for row in rows)}


def get_password_hash(session: Session, *, user_id: int) -> str | None:
    """The stored password hash of a user."""
    return session.scalar(select(User.password_hash).where(User.id == user_id))


def set_password_hash(session: Session, *, user_id: int, password_hash: str) -> None:
    """Replace a user's password hash."""
    session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


def create_api_token(
    session: Session, *, user_id: int, name: str, token_hash: str, token_prefix: str, now: datetime
) -> int:
    """Store a new API token's hash and return its id."""
    token = ApiToken(user_id=user_id, name=name, token_hash=token_hash, token_prefix=token_prefix, created_at=now)
    session.add(token)
    session.flush()
    return token.id


def user_for_api_token(session: Session, *, token_hash: str) -> UserRow | None:
    """The active owner of a live API token, or None."""
    row = session.execute(_USER_BY_TOKEN, {"token_hash": token_hash}).first()
    return None if row is None else _user(tuple(row))


def create_login_session(
    session: Session, *, user_id: int, token_hash: str, csrf_token: str, now: datetime, expires_at: datetime
) -> None:
    """Store a login session."""
    session.add(
        LoginSession(
            user_id=user_id, token_hash=token_hash, csrf_token=csrf_token, created_at=now, expires_at=expires_at
        )
    )
    session.flush()


def get_login_session(session: Session, *, token_hash: str) -> SessionRow | None:
    """The login session with this token hash and its user, or None."""
    # On the session's connection: every page request of a browser asks this first.
    row = session.connection().execute(_USER_BY_SESSION, {"token_hash": token_hash}).first()
    if row is None:
        return None
    return SessionRow(user=_user(tuple(row)), csrf_token=row[8], expires_at=row[9])


def delete_login_session(session: Session, *, token_hash: str) -> None:
    """Forget a login session."""
    session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash))


def delete_expired_login_sessions(session: Session, *, now: datetime) -> int:
    """Forget every login session that has expired; returns how many."""
    result = cast(CursorResult[Any], session.execute(delete(LoginSession).where(LoginSession.expires_at < now)))
    return int(result.rowcount or 0)


def set_ui_language(session: Session, *, user_id: int, ui_language: str | None) -> None:
    """Store the interface language a user picked (None: follow the browser)."""
    session.execute(update(User).where(User.id == user_id).values(ui_language=ui_language))


def team_ids_by_name(session: Session, *, names: list[str]) -> dict[str, int]:
    """The ids of the named teams that exist."""
    if not names:
        return {}
    return {
        str(name): int(team_id)
        for name, team_id in session.execute(select(Team.name, Team.id).where(Team.name.in_(names)))
    }
