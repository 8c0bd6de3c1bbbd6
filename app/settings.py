"""Runtime settings, read from PREFSTACK_* environment variables."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine.url import make_url

INSECURE_SECRET_KEYS = frozenset({"", "change-me", "changeme", "secret", "dev", "development"})
SECRET_FILE_NAME = ".prefstack-secret"  # noqa: S105  (a file name)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class SecuritySettings(BaseModel):
    """Sessions, cookies and login throttling."""

    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    """How long a browser login lasts."""

    cookie_secure: bool | None = None
    """Send cookies over HTTPS only; defaults to on in production."""

    login_attempts_per_minute: int = Field(default=10, ge=1)
    """Failed logins allowed per email and per client address each minute."""

    token_cache_seconds: float = Field(default=30.0, ge=0)
    """How long a verified API token is trusted before the database is asked again."""


class AnnotationSettings(BaseModel):
    """Defaults for annotation projects."""

    default_lease_seconds: int = Field(default=1800, ge=30)
    """How long an item stays with an annotator before it returns to the pool."""

    access_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a project's settings and memberships are trusted in one process."""

    lease_sweep_seconds: float = Field(default=5.0, ge=0)
    """How often a claim also returns the project's expired leases to the pool."""

    max_upload_mb: int = Field(default=200, ge=1)
    """Largest request body accepted by the bulk endpoints: imports, verdicts, gold lists, uploads."""

    max_request_kb: int = Field(default=2048, ge=64)
    """Largest request body accepted anywhere else (a judgment with a long rewrite fits easily)."""


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogSettings(BaseModel):
    """What the server logs and how."""

    format: LogFormat = LogFormat.TEXT
    """`json` writes one object per line (time, level, request id, route, status, duration)."""

    level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error|critical)$")

    access: bool = True
    """Log one line per HTTP request."""


class OperationsSettings(BaseModel):
    """Health, readiness and metrics endpoints."""

    metrics_enabled: bool = True
    """Serve Prometheus metrics at `/metrics`."""

    metrics_token: SecretStr | None = None
    """When set, `/metrics` answers only `Authorization: Bearer <token>`."""


class ExportSettings(BaseModel):
    """Exports written in the background from the export page and the API."""

    directory: Path | None = None
    """Where export jobs write, one directory per job.

    Default: `exports/` beside the SQLite file, else in the working directory.
    """


class UploadSettings(BaseModel):
    """Files leads upload on the import page, kept until they are imported, cancelled or expire.

    Their size limit is `annotation.max_upload_mb`, as for the other import endpoints.
    """

    directory: Path | None = None
    """Where uploads wait between preview and import, one directory per upload.

    Default: `uploads/` beside the SQLite file, else in the working directory.
    """

    expiry_minutes: int = Field(default=60, ge=1)
    """How long an upload waits for its Import before it is deleted."""


class Settings(BaseSettings):
    """Everything prefstack reads from its environment (prefix `PREFSTACK_`)."""

    model_config = SettingsConfigDict(env_prefix="PREFSTACK_", env_nested_delimiter="__", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    """development (default), production or test; production refuses unsafe defaults."""

    database_url: str = "sqlite:///./prefstack.db"
    """SQLAlchemy URL: SQLite by default, `postgresql+psycopg://...` in production."""

    database_pool_size: int = Field(default=20, ge=1)
    """Connections kept per process."""

    database_concurrency: int | None = Field(default=None, ge=1)
    """How many JSON API calls run their database work at once in each worker process, in threads
    (PostgreSQL; SQLite's work runs on the event loop); the others wait their turn without a thread.
    Default: two per CPU core, plus two. More only adds lock and GIL contention on a small machine
    (docs/benchmarks.md, "Load")."""

    def resolved_database_concurrency(self) -> int:
        """`database_concurrency`, or its default for this machine."""
        return self.database_concurrency or 2 * _usable_cpus() + 2

    secret_key: SecretStr | None = None
    """Signs cookies and CSRF tokens. Generated beside the SQLite file in development."""

    host: str = "127.0.0.1"
    """Address `prefstack serve` binds to."""

    port: int = Field(default=8000, ge=1, le=65535)
    """Port `prefstack serve` listens on."""

    workers: int = Field(default=1, ge=1)
    """uvicorn worker processes for `prefstack serve`."""

    keep_alive_seconds: int = Field(default=20, ge=1, le=600)
    """How long an idle HTTP keep-alive connection stays open (uvicorn's default is 5)."""

    worker_healthcheck_seconds: int = Field(default=60, ge=1)
    """How long a worker may take to start, or to answer the supervisor's ping, before it is replaced."""

    security: SecuritySettings = SecuritySettings()
    annotation: AnnotationSettings = AnnotationSettings()
    exports: ExportSettings = ExportSettings()
    uploads: UploadSettings = UploadSettings()
    log: LogSettings = LogSettings()
    operations: OperationsSettings = OperationsSettings()

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if key.strip().lower() in INSECURE_SECRET_KEYS or len(key) < 32:
                raise ValueError(
                    "PREFSTACK_SECRET_KEY must be set to a random value of at least 32 characters in production"
                )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def cookies_secure(self) -> bool:
        if self.security.cookie_secure is not None:
            return self.security.cookie_secure
        return self.is_production

    def resolved_secret_key(self) -> str:
        """The secret key; in development one is generated and kept beside the database."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        path = self.secret_file_path()
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n", encoding="utf-8")
        path.chmod(0o600)
        return key

    def secret_file_path(self) -> Path:
        """Where the development secret is kept: beside the SQLite file, else the working directory."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).resolve().parent / SECRET_FILE_NAME
        return Path.cwd() / SECRET_FILE_NAME


def _usable_cpus() -> int:
    """The CPUs this process may run on (a container's share, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
