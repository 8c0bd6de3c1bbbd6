"""Messages the pages show for the errors annotators meet every day, in their interface language.

Services word their errors in English for the API and the logs. The common ones an
annotator causes get a translatable wording here; the rest are shown as the service wrote them.
"""

from __future__ import annotations

from fastapi import Request

from annotation_ui import i18n
from app.errors import PrefstackError, Problem


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


LOGIN_FORM_EXPIRED = N_("The login form expired. Please try again.")
_BY_CODE = {
    "invalid_credentials": N_("Wrong email or password."),
    "too_many_login_attempts": N_("Too many failed logins. Wait a minute and try again."),
    "reason_required": N_("Say why you skip this item."),
    "daily_cap_reached": N_("You reached today's limit of judgments in this project."),
    "assignment_closed": N_("This item expired or was skipped and went to someone else. Here is your next one."),
    "judgment_not_revisable": N_("Only your last few judgments in a project can be changed."),
}
# (field, or field prefix ending in "."; the start of the service's message) -> wording.
_BY_FIELD = (
    ("choice", "choice must be", N_("Pick A, B, tie or both bad first.")),
    ("strength", "Say how much better", N_("Say how much better: slightly, clearly or much.")),
    ("strength", "strength applies only", N_("Strength applies only when A or B is better.")),
    ("rationale", "This project asks for a rationale", N_("This project asks for a rationale.")),
    ("rewrite", "A rewrite improves the better response", N_("A rewrite improves the better response: choose A or B.")),
    ("scores.", "Score ", N_("Score this criterion.")),
    ("ranking", "Rank every response", N_("Rank every response, or mark them all bad.")),
    ("ranking", "", N_("Each response takes exactly one place in the ranking.")),
)


def problem_message(problem: Problem, *, code: str | None = None) -> str:
    """The wording of one problem in the current interface language."""
    if code in _BY_CODE:
        return i18n.gettext(_BY_CODE[code])
    field = problem.field or ""
    for field_or_prefix, starts, wording in _BY_FIELD:
        matches = field.startswith(field_or_prefix) if field_or_prefix.endswith(".") else field == field_or_prefix
        if matches and problem.message.startswith(starts):
            return i18n.gettext(wording)
    return problem.message


def translated(request: Request, message: str) -> str:
    """A marked message in the caller's interface language."""
    with i18n.activate(i18n.request_language(request)):
        return i18n.gettext(message)


def error_text(request: Request, error: PrefstackError) -> str:
    """An error's wording in the caller's interface language (as the service wrote it when unknown)."""
    with i18n.activate(i18n.request_language(request)):
        return problem_message(Problem(error.message, field=error.field), code=error.code)
