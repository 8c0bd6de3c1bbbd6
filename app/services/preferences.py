"""A user's own settings: the language of the interface."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import InvalidInput, PermissionDenied
from app.principal import Principal
from preference_store import users as user_store
from preference_store.engine import begin_write

SOURCE_LANGUAGE = "en"
INTERFACE_LANGUAGES = (SOURCE_LANGUAGE, "th", "id", "vi")
"""The languages the pages ship in, the source language (English) first."""


def set_interface_language(session: Session, *, principal: Principal, language: str | None) -> str | None:
    """Store the caller's interface language (None: follow the browser's Accept-Language)."""
    if principal.user_id is None:
        raise PermissionDenied("no_stored_user", "Only a signed-in user has an interface language.")
    code = None if language is None else language.strip().lower()
    if code is not None and code not in INTERFACE_LANGUAGES:
        raise InvalidInput(
            "unsupported_language",
            f"'{language}' is not an interface language: pick one of {', '.join(INTERFACE_LANGUAGES)}.",
            field="language",
        )
    begin_write(session)
    user_store.set_ui_language(session, user_id=principal.user_id, ui_language=code)
    session.commit()
    return code
