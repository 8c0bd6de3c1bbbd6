"""Users, teams, logins and API tokens."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotAuthenticated, TooManyRequests
from app.principal import AuthMethod, Principal, command_line_principal
from app.security import digest, hash_password, new_api_token, new_session_token, verify_password
from app.services import audit
from preference_store import login_failures as failure_store
from preference_store import users as user_store
from preference_store.base import utcnow
from preference_store.engine import begin_write
from preference_store.models import Role
from preference_store.users import UserRow

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new API token: `token` is shown once and never stored."""

    token: str
    token_id: int
    user_email: str


@dataclass(frozen=True, slots=True)
class StartedSession:
    token: str
    csrf_token: str
    expires_at: datetime
    user: UserRow


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: Role,
    password: str | None,
    team: str | None = None,
    languages: list[str] | None = None,
    principal: Principal | None = None,
) -> UserRow:
    """Create a user (and their team if it is new); `principal` is who does it (default: the command line)."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("invalid_email", f"'{email}' is not an email address.", field="email")
    if not name.strip():
        raise InvalidInput("invalid_name", "A name is required.", field="name")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password_too_short", f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    codes = [code.strip().lower() for code in (languages or []) if code.strip()]
    for code in codes:
        if not _LANGUAGE.match(code):
            raise InvalidInput("invalid_language", f"'{code}' is not a language code such as 'th'.", field="languages")
    password_hash = hash_password(password) if password else None
    begin_write(session)
    if user_store.get_user_by_email(session, email=email) is not None:
        session.rollback()
        raise Conflict("user_exists", f"A user with email {email} already exists.", field="email")
    team_id = user_store.get_or_create_team(session, name=team.strip()) if team and team.strip() else None
    try:
        user = user_store.create_user(
            session,
            email=email,
            name=name.strip(),
            role=role,
            password_hash=password_hash,
            team_id=team_id,
            languages=codes,
        )
        audit.record(
            session,
            principal=principal or command_line_principal(),
            action="user.create",
            target_type="user",
            target_id=user.id,
            details={"email": email, "role": role.value, "team": team.strip() if team else None},
        )
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict("user_exists", f"A user with email {email} already exists.", field="email") from error
    return user


def set_password(session: Session, *, email: str, password: str) -> None:
    """Replace a user's password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password_too_short", f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    password_hash = hash_password(password)
    begin_write(session)
    user = _existing_user(session, email)
    user_store.set_password_hash(session, user_id=user.id, password_hash=password_hash)
    session.commit()


def create_api_token(
    session: Session, *, email: str, name: str = "cli", principal: Principal | None = None
) -> IssuedToken:
    """Issue an API token for a user; only its hash is kept. `principal` as in `create_user`."""
    begin_write(session)
    user = _existing_user(session, email)
    token = new_api_token()
    token_id = user_store.create_api_token(
        session, user_id=user.id, name=name, token_hash=digest(token), token_prefix=token[:12], now=utcnow()
    )
    audit.record(
        session,
        principal=principal or command_line_principal(),
        action="token.create",
        target_type="api_token",
        target_id=token_id,
        details={"user": user.email, "name": name, "prefix": token[:12]},
    )
    session.commit()
    return IssuedToken(token=token, token_id=token_id, user_email=user.email)


def _existing_user(session: Session, email: str) -> UserRow:
    user = user_store.get_user_by_email(session, email=email)
    if user is None:
        raise InvalidInput("unknown_user", f"No user with email {email.strip().lower()}.", field="email")
    return user


class LoginThrottle:
    """Counts failed logins per key (an email, a client address) over a sliding minute.

    The failures are rows in the database, so every worker of a deployment counts them
    together; keys are stored as SHA-256 digests, never as addresses or emails.
    """

    WINDOW = timedelta(seconds=60)
    KEEP = timedelta(hours=1)

    def __init__(self, attempts_per_minute: int) -> None:
        self._limit = attempts_per_minute

    def check(self, session: Session, *keys: str) -> None:
        since = utcnow() - self.WINDOW
        counts = failure_store.failures_since(session, key_digests=[digest(key) for key in keys], since=since)
        if any(count >= self._limit for count in counts.values()):
            raise TooManyRequests("too_many_login_attempts", "Too many failed logins. Wait a minute and try again.")

    def record_failure(self, session: Session, *keys: str) -> None:
        """Store one failure per key in a transaction of its own (the caller's read must be over)."""
        now = utcnow()
        begin_write(session)
        failure_store.record_failures(
            session, key_digests=[digest(key) for key in keys], now=now, forget_before=now - self.KEEP
        )
        session.commit()

    def clear(self, session: Session, key: str) -> None:
        """Forget a key's failures, inside the caller's write transaction."""
        failure_store.forget(session, key_digest=digest(key))


def log_in(
    session: Session,
    *,
    email: str,
    password: str,
    client: str,
    throttle: LoginThrottle,
    session_hours: int,
) -> StartedSession:
    """Check a password and start a browser session."""
    email = email.strip().lower()
    keys = (f"email:{email}", f"client:{client}")
    throttle.check(session, *keys)
    user = user_store.get_user_by_email(session, email=email)
    stored_hash = user_store.get_password_hash(session, user_id=user.id) if user else None
    session.rollback()  # end the read before the slow hash check; the write below starts anew
    if not verify_password(password, stored_hash) or user is None or not user.is_active:
        throttle.record_failure(session, *keys)
        raise NotAuthenticated("invalid_credentials", "Wrong email or password.", field="password")
    now = utcnow()
    token, csrf = new_session_token(), new_session_token()
    expires_at = now + timedelta(hours=session_hours)
    begin_write(session)
    throttle.clear(session, keys[0])
    user_store.delete_expired_login_sessions(session, now=now)
    user_store.create_login_session(
        session, user_id=user.id, token_hash=digest(token), csrf_token=csrf, now=now, expires_at=expires_at
    )
    session.commit()
    return StartedSession(token=token, csrf_token=csrf, expires_at=expires_at, user=user)


def log_out(session: Session, *, principal: Principal) -> None:
    """End the caller's browser session."""
    if principal.session_token_hash is not None:
        session.rollback()
        begin_write(session)
        user_store.delete_login_session(session, token_hash=principal.session_token_hash)
        session.commit()


def principal_for_session(session: Session, *, token: str) -> Principal | None:
    """The principal behind a session cookie, or None if it is unknown or expired."""
    token_hash = digest(token)
    found = user_store.get_login_session(session, token_hash=token_hash)
    if found is None or found.expires_at <= utcnow() or not found.user.is_active:
        return None
    return Principal(found.user, AuthMethod.SESSION, csrf_token=found.csrf_token, session_token_hash=token_hash)


class TokenCache:
    """Verified API tokens, trusted for a few seconds so the hot path skips a query."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token_hash] = (time.monotonic() + self._ttl, principal)


def principal_for_api_token(session: Session, *, token: str, cache: TokenCache) -> Principal | None:
    """The principal behind a bearer token, or None."""
    token_hash = digest(token)
    cached = cache.get(token_hash)
    if cached is not None:
        return cached
    user = user_store.user_for_api_token(session, token_hash=token_hash)
    if user is None or not user.is_active:
        return None
    principal = Principal(user, AuthMethod.TOKEN)
    cache.put(token_hash, principal)
    return principal
