"""Who is making a request, and what their role lets them do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.errors import PermissionDenied
from preference_store.models import Role
from preference_store.users import UserRow


class AuthMethod(StrEnum):
    SESSION = "session"
    TOKEN = "token"  # noqa: S105  (an enum value)
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user and how they proved it."""

    user: UserRow
    method: AuthMethod
    csrf_token: str | None = None
    session_token_hash: str | None = None

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def user_id(self) -> int | None:
        """The acting user's id for records, None for the local command line."""
        return None if self.method is AuthMethod.CLI else self.user.id

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def is_staff(self) -> bool:
        """Leads and admins: they manage projects and see everyone's work."""
        return self.user.role in (Role.LEAD, Role.ADMIN)

    def require_staff(self) -> None:
        if not self.is_staff:
            raise PermissionDenied("lead_role_required", "This needs a lead or admin account.")


def command_line_principal() -> Principal:
    """The operator at the `prefstack` command line: an admin who is not a stored user."""
    operator = UserRow(
        id=0, email="cli@localhost", name="command line", role=Role.ADMIN, team_id=None, languages=(), is_active=True
    )
    return Principal(operator, AuthMethod.CLI)
