"""Interface translations: catalogs complete and current, the language picked per user and request."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation_ui import i18n
from app.errors import InvalidInput
from app.principal import AuthMethod, Principal
from app.services import preferences
from preference_store import users as user_store
from preference_store.models import Role, User
from tests.conftest import People

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def _msgids(pot: Path) -> set[str]:
    with pot.open("rb") as handle:
        ids = (message.id for message in read_po(handle) if message.id)
        return {message_id if isinstance(message_id, str) else message_id[0] for message_id in ids}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf field"
    return match.group(1)


def _log_in(client: TestClient, email: str, **headers: str) -> str:
    """Log in through the form; the CSRF token of the signed-in pages."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return _csrf(client.get("/", headers=headers).text)


def _stored_language(session: Session, email: str) -> str | None:
    session.expire_all()
    return session.scalar(select(User.ui_language).where(User.email == email))


@pytest.fixture
def annotator(people: People) -> str:
    return people.make("i18n-ann@example.org", Role.ANNOTATOR, password=PASSWORD)


def test_the_template_catalog_has_every_string_of_the_templates(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract", "-F", "babel.cfg", "-o", fresh, "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    extracted, committed = _msgids(fresh), _msgids(i18n.TEMPLATE_PATH)
    assert extracted, "nothing extracted: check babel.cfg"
    new, gone = sorted(extracted - committed), sorted(committed - extracted)
    assert not new, f"strings missing from {i18n.TEMPLATE_PATH.name}, run scripts/i18n.sh and translate them: {new}"
    assert not gone, f"strings no longer in any template, run scripts/i18n.sh: {gone}"


@pytest.mark.parametrize("language", i18n.TRANSLATED_LANGUAGES)
def test_every_string_is_translated_with_the_same_placeholders(language: str) -> None:
    assert i18n.catalog_problems(language) == []


def test_placeholder_check_catches_a_changed_or_stray_placeholder() -> None:
    assert i18n.placeholders("Response %(label)s of %(num)d, 100%%") == {"%(label)s", "%(num)d"}
    assert i18n.placeholders("คำตอบ %(lable)s") != i18n.placeholders("Response %(label)s")
    assert i18n.placeholders("100% sure") == {"% s"}  # Python would format "% s": a placeholder
    assert i18n.has_stray_percent("at 50%.")
    assert not i18n.has_stray_percent("100%% sure, %(label)s")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("th-TH,th;q=0.9,en-US;q=0.8,en;q=0.7", "th"),
        ("fr-FR, vi;q=0.5, id;q=0.8", "id"),
        ("VI-vn", "vi"),
        ("de, fr;q=0.9", None),
        ("th;q=0, en;q=0.1", "en"),
        ("*", None),
        ("", None),
        (None, None),
        ("id;q=oops, vi", "vi"),
    ],
)
def test_accept_language_picks_the_best_supported_language(header: str | None, expected: str | None) -> None:
    assert i18n.best_match(header) == expected


def test_a_user_who_picks_thai_gets_thai_pages(client: TestClient, annotator: str, session: Session) -> None:
    csrf = _log_in(client, annotator)
    response = client.post(
        "/me/language", data={"language": "th", "csrf_token": csrf, "next": "/?page=2"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/?page=2"
    assert _stored_language(session, annotator) == "th"
    home = client.get("/", headers={"Accept-Language": "vi"})  # the stored choice beats the browser's
    assert '<html lang="th">' in home.text
    assert "ออกจากระบบ" in home.text  # Log out
    assert "<h1>โครงการ</h1>" in home.text  # Projects
    assert '<option value="th" lang="th" selected>ไทย</option>' in home.text


def test_accept_language_picks_vietnamese_for_a_user_without_a_choice(client: TestClient, annotator: str) -> None:
    _log_in(client, annotator)
    home = client.get("/", headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.8"})
    assert '<html lang="vi">' in home.text
    assert "Đăng xuất" in home.text  # Log out
    assert home.headers["content-language"] == "vi"
    assert i18n.current_language() == "en"  # the request's language did not leak out of render()


def test_the_login_page_follows_the_browser(client: TestClient) -> None:
    page = client.get("/login", headers={"Accept-Language": "id-ID,id;q=0.9"})
    assert '<html lang="id">' in page.text
    assert "<h1>Masuk</h1>" in page.text
    assert "Kata sandi" in page.text  # Password
    english = client.get("/login", headers={"Accept-Language": "de"})
    assert '<html lang="en">' in english.text
    assert "<h1>Log in</h1>" in english.text


def test_the_picker_shows_each_language_in_its_own_name(client: TestClient, annotator: str) -> None:
    assert list(i18n.LANGUAGE_NAMES) == list(preferences.INTERFACE_LANGUAGES)
    _log_in(client, annotator)
    home = client.get("/").text
    picker = home[home.index('id="language-picker"') : home.index("</form>", home.index('id="language-picker"'))]
    for code, name in (("en", "English"), ("th", "ไทย"), ("id", "Bahasa Indonesia"), ("vi", "Tiếng Việt")):
        assert f'value="{code}" lang="{code}"' in picker
        assert name in picker
    assert 'name="csrf_token"' in picker


def test_picking_with_htmx_reloads_the_page(client: TestClient, annotator: str, session: Session) -> None:
    csrf = _log_in(client, annotator)
    response = client.post(
        "/me/language", data={"language": "id"}, headers={"HX-Request": "true", "X-CSRF-Token": csrf}
    )
    assert response.status_code == 204
    assert response.headers["hx-refresh"] == "true"
    assert _stored_language(session, annotator) == "id"


def test_an_unsupported_language_is_refused_naming_the_field(
    client: TestClient, annotator: str, session: Session
) -> None:
    csrf = _log_in(client, annotator)
    response = client.post("/me/language", data={"language": "fr", "csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 422
    assert 'data-code="unsupported_language"' in response.text
    assert 'data-field="language"' in response.text
    assert _stored_language(session, annotator) is None


def test_the_service_refuses_an_unsupported_language(session: Session, annotator: str) -> None:
    user = user_store.get_user_by_email(session, email=annotator)
    assert user is not None
    principal = Principal(user, AuthMethod.TOKEN)
    with pytest.raises(InvalidInput) as refused:
        preferences.set_interface_language(session, principal=principal, language="xx")
    assert refused.value.field == "language"
    assert preferences.set_interface_language(session, principal=principal, language=" VI ") == "vi"
    assert _stored_language(session, annotator) == "vi"
    assert preferences.set_interface_language(session, principal=principal, language=None) is None
    assert _stored_language(session, annotator) is None


def test_the_picker_without_its_csrf_token_is_refused(client: TestClient, annotator: str, session: Session) -> None:
    _log_in(client, annotator)
    response = client.post("/me/language", data={"language": "th"}, follow_redirects=False)
    assert response.status_code == 403
    assert _stored_language(session, annotator) is None


def test_the_picker_never_redirects_off_site(client: TestClient, annotator: str) -> None:
    csrf = _log_in(client, annotator)
    response = client.post(
        "/me/language",
        data={"language": "vi", "csrf_token": csrf, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
