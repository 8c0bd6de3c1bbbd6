"""The one error type services raise, with stable codes and HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: where (row, field) and what."""

    message: str
    field: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"line {self.row}")
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, object]:
        return {"message": self.message, "field": self.field, "row": self.row}


class PrefstackError(Exception):
    """Base of every error a service raises; `code` is stable snake_case."""

    status_code = 400

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.row = row
        self.problems = problems or []

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message, "field": self.field, "row": self.row}
        if self.problems:
            body["problems"] = [problem.as_dict() for problem in self.problems]
        return body


class InvalidInput(PrefstackError):
    status_code = 422


class NotAuthenticated(PrefstackError):
    status_code = 401


class PermissionDenied(PrefstackError):
    status_code = 403


class NotFound(PrefstackError):
    status_code = 404


class Conflict(PrefstackError):
    status_code = 409


class TooManyRequests(PrefstackError):
    status_code = 429
    retry_after = 60
    """Seconds to wait, sent as `Retry-After`."""


class ServiceUnavailable(PrefstackError):
    """The database cannot be reached right now (restarting, failing over, out of connections)."""

    status_code = 503
    retry_after = 2
    """Seconds to wait, sent as `Retry-After`."""
