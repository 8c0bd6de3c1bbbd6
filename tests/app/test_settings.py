"""Settings: environment variables, generated development secret, production refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults_are_sqlite_and_port_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREFSTACK_DATABASE_URL", "PREFSTACK_PORT", "PREFSTACK_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///./prefstack.db"
    assert settings.port == 8000


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFSTACK_PORT", "9123")
    monkeypatch.setenv("PREFSTACK_SECURITY__SESSION_HOURS", "3")
    settings = Settings()
    assert settings.port == 9123
    assert settings.security.session_hours == 3


def test_development_secret_is_generated_once_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/x.db")
    first = settings.resolved_secret_key()
    assert (tmp_path / ".prefstack-secret").read_text().strip() == first
    assert Settings(database_url=f"sqlite:///{tmp_path}/x.db").resolved_secret_key() == first
    assert len(first) >= 32


@pytest.mark.parametrize("secret", [None, "change-me", "short"])
def test_production_refuses_missing_or_weak_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="PREFSTACK_SECRET_KEY"):
        Settings(environment="production", secret_key=secret)


def test_production_accepts_a_strong_secret() -> None:
    settings = Settings(environment="production", secret_key="x" * 40)
    assert settings.cookies_secure is True
