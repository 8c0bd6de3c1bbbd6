"""The `prefstack` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session

from app import __version__, database, import_formats
from app.errors import InvalidInput, PrefstackError
from app.principal import command_line_principal
from app.services import (
    accounts,
    arbitration,
    demo,
    exporting,
    importing,
    knowledge_gaps,
    projects,
    quality_reports,
    quality_summary,
    quality_trends,
)
from app.services.export_labels import Aggregation
from app.settings import Settings
from export.aggregate import Abstain, ArbitrationMode
from export.formats import RowFormat
from export.manifest import verify
from export.pairs import RankingPairs
from export.writers import ExportFormat
from preference_store import backup
from preference_store.engine import build_engine, session_factory
from preference_store.judgments import JudgmentFilter
from preference_store.models import Role

cli = typer.Typer(name="prefstack", help="Annotation and preference data for RLHF.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
user_cli = typer.Typer(help="Users.", no_args_is_help=True)
token_cli = typer.Typer(help="API tokens.", no_args_is_help=True)
project_cli = typer.Typer(help="Projects.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(user_cli, name="user")
cli.add_typer(token_cli, name="token")
cli.add_typer(project_cli, name="project")
arbitration_cli = typer.Typer(help="Arbitration of disputed items.", no_args_is_help=True)
cli.add_typer(arbitration_cli, name="arbitration")

out = Console()
err = Console(stderr=True)
MAX_PROBLEMS_PRINTED = 20


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def _session() -> Iterator[Session]:
    settings = Settings()
    engine = build_engine(settings.database_url, pool_size=2)
    try:
        with session_factory(engine)() as session:
            yield session
    except PrefstackError as error:
        for problem in error.problems[:MAX_PROBLEMS_PRINTED]:
            err.print(f"  {problem}", highlight=False, soft_wrap=True)
        if len(error.problems) > MAX_PROBLEMS_PRINTED:
            err.print(f"  ... and {len(error.problems) - MAX_PROBLEMS_PRINTED} more", highlight=False)
        _fail(error.message)
    finally:
        engine.dispose()


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the database to the latest schema."""
    settings = Settings()
    engine = build_engine(settings.database_url, pool_size=1)
    try:
        database.upgrade(engine, revision)
    finally:
        engine.dispose()
    out.print(f"database at {revision}: {engine.url.render_as_string(hide_password=True)}", highlight=False)


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")]) -> None:
    """Migrate the database down to an older schema."""
    settings = Settings()
    engine = build_engine(settings.database_url, pool_size=1)
    try:
        database.downgrade(engine, revision)
    finally:
        engine.dispose()
    out.print(f"database at {revision}", highlight=False)


@db_cli.command("backup")
def db_backup(
    to: Annotated[Path, typer.Option("--to", help="The backup file to write.")],
    run_pg_dump: Annotated[bool, typer.Option(help="PostgreSQL: run pg_dump instead of printing the command.")] = False,
) -> None:
    """Back up the database: an online, checked copy of SQLite; pg_dump for PostgreSQL."""
    settings = Settings()
    try:
        if make_url(settings.database_url).get_backend_name() == "postgresql":
            command = backup.pg_dump_command(settings.database_url, to)
            if not run_pg_dump:
                out.print(
                    "PostgreSQL is backed up with its own tools. Run (the password from PGPASSWORD or ~/.pgpass):"
                )
                out.print("  " + " ".join(command), highlight=False, soft_wrap=True)
                out.print("Restore into an empty database with pg_restore --no-owner --dbname=NEW FILE.")
                return
            subprocess.run(command, check=True)  # noqa: S603  (our own argument list)
            out.print(f"pg_dump wrote {to}", highlight=False)
            return
        report = backup.backup_sqlite(backup.sqlite_path(settings.database_url), to)
    except (backup.BackupError, subprocess.CalledProcessError, FileNotFoundError) as error:
        _fail(str(error))
    out.print(
        f"backed up to {report.path} ({report.bytes:,} bytes, {report.tables} tables, at {report.revision}); "
        "integrity check ok",
        highlight=False,
    )


@db_cli.command("restore")
def db_restore(
    source: Annotated[Path, typer.Argument(help="A backup written by `prefstack db backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace the current database without asking.")] = False,
) -> None:
    """Replace the SQLite database with a backup (stop the server first)."""
    settings = Settings()
    try:
        target = backup.sqlite_path(settings.database_url)
    except backup.BackupError:
        _fail("restore works on SQLite; for PostgreSQL use pg_restore (see docs/deploy.md)")
    if not yes and not typer.confirm(f"Replace {target} with {source}?"):
        raise typer.Exit(1)
    try:
        report = backup.restore_sqlite(source, target)
    except backup.BackupError as error:
        _fail(str(error))
    out.print(f"restored {source} into {report.path} (at {report.revision})", highlight=False)
    out.print("Run `prefstack db upgrade` if the backup is from an older release.", highlight=False)


@user_cli.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[Role, typer.Option(help="annotator, lead or admin.")] = Role.ANNOTATOR,
    team: Annotated[str | None, typer.Option(help="Team or vendor name (created if new).")] = None,
    languages: Annotated[str, typer.Option(help="Comma-separated language codes, e.g. th,en.")] = "",
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted on a terminal).")] = None,
) -> None:
    """Create a user."""
    if password is None and sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _session() as session:
        user = accounts.create_user(
            session,
            email=email,
            name=name,
            role=role,
            password=password,
            team=team,
            languages=[code for code in languages.split(",") if code.strip()],
        )
    out.print(f"created {user.role.value} {user.email}", highlight=False)


@token_cli.command("create")
def token_create(
    email: Annotated[str, typer.Option(help="Whose token.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create an API token and print it (only the token, once)."""
    with _session() as session:
        issued = accounts.create_api_token(session, email=email, name=name)
    typer.echo(issued.token)


@project_cli.command("create")
def project_create(
    slug: Annotated[str, typer.Option(help="Short id used in URLs, e.g. th-safety.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    kind: Annotated[str, typer.Option(help="pairwise, rubric or ranking.")] = "pairwise",
    overlap: Annotated[int, typer.Option(help="Judgments wanted per item.")] = 1,
    guidelines: Annotated[
        Path | None, typer.Option(help="Markdown file with the guidelines.", exists=True, dir_okay=False)
    ] = None,
    options: Annotated[
        Path | None,
        typer.Option(
            help="JSON file with the project's options: rubric, taxonomy, strength, routing... (docs/projects.md).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    member: Annotated[list[str] | None, typer.Option(help="Email of an annotator to add (repeatable).")] = None,
) -> None:
    """Create a project."""
    with _session() as session:
        operator = command_line_principal()
        option_values = _read_json_object(options) if options else {}
        project = projects.create_project(
            session,
            principal=operator,
            slug=slug,
            name=name,
            kind=kind,
            overlap=overlap,
            guidelines=guidelines.read_text(encoding="utf-8") if guidelines else "",
            options=option_values,
        )
        if member:
            projects.add_members(session, principal=operator, slug=project.slug, emails=member)
    out.print(f"created project {project.slug}", highlight=False)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput("invalid_options_file", f"{path}: not valid JSON ({error})", field="options") from error
    if not isinstance(value, dict):
        raise InvalidInput("invalid_options_file", f"{path}: expected a JSON object of options", field="options")
    return value


@project_cli.command("guidelines")
def project_guidelines(
    slug: Annotated[str, typer.Argument(help="Project slug.")],
    file: Annotated[Path, typer.Argument(help="Markdown file with the new guidelines.", exists=True, dir_okay=False)],
    note: Annotated[str, typer.Option(help="What changed, for the version history.")] = "",
) -> None:
    """Publish a new version of a project's guidelines."""
    with _session() as session:
        project = projects.update_guidelines(
            session, principal=command_line_principal(), slug=slug, text=file.read_text(encoding="utf-8"), note=note
        )
    out.print(f"{slug}: guidelines version {project.guidelines_version}", highlight=False)


@project_cli.command("add-members")
def project_add_members(
    slug: Annotated[str, typer.Argument(help="Project slug.")],
    email: Annotated[list[str], typer.Option(help="Email of a user to add (repeatable).")],
) -> None:
    """Let users work on a project."""
    with _session() as session:
        added = projects.add_members(session, principal=command_line_principal(), slug=slug, emails=email)
    out.print(f"added {added} member(s) to {slug}", highlight=False)


@arbitration_cli.command("scan")
def arbitration_scan(slug: Annotated[str, typer.Argument(metavar="PROJECT", help="Project slug.")]) -> None:
    """Open the cases missing for items judged before arbitration was on (or add annotators first)."""
    with _session() as session:
        summary = arbitration.scan_project(session, principal=command_line_principal(), slug=slug)
    out.print(
        f"{slug}: {summary.items_checked} complete items checked, {summary.opened} cases opened, "
        f"{summary.extended} items given more annotators",
        highlight=False,
    )


@cli.command("import")
def import_file(
    first: Annotated[str, typer.Argument(metavar="PROJECT", help="Project slug (or the file, with --project).")],
    second: Annotated[Path | None, typer.Argument(metavar="FILE", help="File or datasets directory to import.")] = None,
    project: Annotated[str | None, typer.Option(help="Project slug (the older form: import FILE --project S).")] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"One of {', '.join(import_formats.FORMATS)}, or CONTAINER:SHAPE; detected when omitted.",
        ),
    ] = None,
    on_error: Annotated[
        str, typer.Option(help="fail: a bad row refuses the file; skip: bad rows go to --rejects.")
    ] = "fail",
    rejects: Annotated[Path | None, typer.Option(help="JSONL file for the rows left out by --on-error skip.")] = None,
    verdicts: Annotated[
        bool,
        typer.Option(
            "--with-verdicts/--no-verdicts",
            help="Store the verdicts the source carries (HH-RLHF, UltraFeedback, Label Studio) as external verdicts.",
        ),
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything, write nothing.")] = False,
) -> None:
    """Import items (docs/formats.md); by default a bad row rejects the whole file and nothing is written."""
    slug, file = (project, Path(first)) if project is not None else (first, second)
    if project is not None and second is not None:
        _fail(f"unexpected argument '{second}' (give PROJECT FILE, or FILE --project PROJECT)")
    if file is None:
        _fail("FILE: give the file to import (prefstack import PROJECT FILE)")
    if not file.exists():
        _fail(f"FILE: {file} does not exist")
    mode = _choice("--on-error", on_error, {value.value: value for value in importing.OnError})
    if mode is importing.OnError.SKIP and rejects is None:
        _fail("--rejects: --on-error skip needs the file the rejected rows are written to")
    with _session() as session, _RejectsFile(rejects) as rejected_rows:
        source = import_formats.detect_format(file, fmt)
        err.print(f"reading {file} as {source}", highlight=False, soft_wrap=True)
        with Progress(
            SpinnerColumn(), TextColumn("{task.completed} rows read"), TimeElapsedColumn(), console=err, transient=True
        ) as bar:
            task = bar.add_task("import", total=None)
            result = importing.import_items(
                session,
                principal=command_line_principal(),
                slug=slug,
                rows=import_formats.read_source(file, str(source)),
                on_error=mode,
                reject=rejected_rows.write,
                progress=lambda read: bar.update(task, completed=read),
                dry_run=dry_run,
                with_verdicts=verdicts,
            )
    summary = f"created {result.created}, unchanged {result.unchanged}"
    if mode is importing.OnError.SKIP or (dry_run and result.rejected):
        summary += f", rejected {result.rejected}" + (f" (written to {rejects})" if rejects is not None else "")
    if result.verdicts:
        summary += f"; {result.verdicts} external verdicts stored"
    if dry_run:
        summary = f"dry run, nothing written: {summary.replace('stored', 'to store')}"
        for rejected in result.rejects[:MAX_PROBLEMS_PRINTED]:
            err.print(f"line {rejected.number}: " + "; ".join(rejected.as_json()["reasons"]), highlight=False)
    out.print(summary, highlight=False, soft_wrap=True)


@cli.command("import-verdicts")
def import_verdicts_command(
    slug: Annotated[str, typer.Argument(metavar="PROJECT", help="Project slug.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Verdicts JSONL (docs/formats.md), gzip or not.")],
    source: Annotated[str, typer.Option(help="Source of the lines that name none.")] = "jsonl",
) -> None:
    """Store external verdicts for items already imported; a bad line refuses the whole file."""
    if not file.exists():
        _fail(f"FILE: {file} does not exist")
    with _session() as session, import_formats.lines.open_bytes(file) as stream:
        result = importing.import_verdicts(
            session,
            principal=command_line_principal(),
            slug=slug,
            rows=importing.parse_jsonl(stream),
            default_source=source,
        )
    out.print(f"stored {result.stored} external verdicts for {result.items} items", highlight=False)


class _RejectsFile:
    """The --rejects JSONL file, opened (and truncated) only when the import has one."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stream: IO[bytes] | None = None

    def __enter__(self) -> _RejectsFile:
        if self._path is not None:
            self._stream = self._path.open("wb")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()

    def write(self, rejected: importing.Rejected) -> None:
        if self._stream is not None:
            self._stream.write(orjson.dumps(rejected.as_json(), default=str) + b"\n")


_Choice = TypeVar("_Choice")
_RANKING_PAIRS = {"all": RankingPairs.ALL_PAIRS, "best": RankingPairs.BEST_VS_REST}
_OPTION_OF_FIELD = {
    "kind": "KIND",
    "fmt": "--format",
    "kto_desirable_at": "--kto-desirable",
    "kto_undesirable_at": "--kto-undesirable",
    "slug": "--project",
}


@cli.command("export")
def export_command(
    kind: Annotated[str, typer.Argument(help=f"Dataset kind: {', '.join(exporting.EXPORT_KINDS)}; or verify.")],
    directory: Annotated[Path | None, typer.Argument(help="With verify: the export directory to check.")] = None,
    project: Annotated[str | None, typer.Option(help="Project slug.")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Output directory (new or empty).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, parquet or hf (a datasets directory).")] = "jsonl",
    gzip: Annotated[bool, typer.Option("--gzip", help="Gzip the JSONL files.")] = False,
    standard: Annotated[bool, typer.Option("--standard", help="Plain-string rows instead of messages.")] = False,
    test_size: Annotated[float, typer.Option(help="Expected share of the test split (grouped by prompt).")] = 0.1,
    validation_size: Annotated[float, typer.Option(help="Expected share of the validation split.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the KTO shuffle.")] = 0,
    provenance: Annotated[bool, typer.Option("--provenance", help="Add item id, agreement and vote columns.")] = False,
    min_judgments: Annotated[int, typer.Option(help="Judgments an item needs.")] = 1,
    min_agreement: Annotated[float, typer.Option(help="Share of votes the winner needs (0..1).")] = 0.0,
    ties: Annotated[str, typer.Option(help="Tie votes: keep (count) or drop (abstain).")] = "keep",
    both_bad: Annotated[str, typer.Option(help="Both-bad votes: keep (count) or drop (abstain).")] = "keep",
    aggregation: Annotated[
        str, typer.Option(help="Pairwise votes: majority, or dawid-skene (annotators weighted by fitted accuracy).")
    ] = "majority",
    arbitration: Annotated[
        str, typer.Option(help="verdict-first (arbitration verdicts label their items) or ignore.")
    ] = "verdict-first",
    include_calibration: Annotated[
        bool, typer.Option("--include-calibration", help="Keep items used in calibration sessions.")
    ] = False,
    include_gold: Annotated[bool, typer.Option("--include-gold", help="Keep gold items.")] = False,
    ranking_pairs: Annotated[str, typer.Option(help="Ranked items: all pairs or best vs each other.")] = "all",
    rewrites: Annotated[bool, typer.Option("--rewrites/--no-rewrites", help="Use annotators' rewrites.")] = True,
    margin: Annotated[bool, typer.Option("--margin/--no-margin", help="Reward rows carry a margin.")] = True,
    kto_desirable: Annotated[
        float | None, typer.Option(help="KTO: rubric overall score (0..1) at or above which a response is good.")
    ] = None,
    kto_undesirable: Annotated[
        float | None, typer.Option(help="KTO: rubric overall score (0..1) at or below which a response is bad.")
    ] = None,
    language: Annotated[list[str] | None, typer.Option(help="Only items in this language (repeatable).")] = None,
    market: Annotated[list[str] | None, typer.Option(help="Only items of this market (repeatable).")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Only items of this category (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Only judgments made on or after this date (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Only judgments made on or before this date (UTC).")] = None,
    team: Annotated[list[str] | None, typer.Option(help="Only judgments of this team (repeatable).")] = None,
    guidelines_version: Annotated[
        list[int] | None, typer.Option(help="Only judgments made under this guidelines version (repeatable).")
    ] = None,
) -> None:
    """Write a TRL-ready dataset directory (data, README.md card, export.json); or verify one."""
    if kind == "verify":
        _verify_export(directory)
        return
    if directory is not None:
        _fail(f"unexpected argument '{directory}' (only verify takes a directory)")
    if kind not in exporting.EXPORT_KINDS:
        _fail(f"KIND: unknown export kind '{kind}' (choose from {', '.join(exporting.EXPORT_KINDS)} or verify)")
    if project is None or out_path is None:
        _fail("--project and --out are required")
    request = exporting.ExportRequest(
        kind=kind,
        fmt=_choice("--format", fmt, {value.value: value for value in ExportFormat}),
        gzip=gzip,
        row_format=RowFormat.STANDARD if standard else RowFormat.CONVERSATIONAL,
        test_size=test_size,
        validation_size=validation_size,
        seed=seed,
        provenance=provenance,
        min_judgments=min_judgments,
        min_agreement=min_agreement,
        ties=_choice("--ties", ties, {value.value: value for value in Abstain}),
        both_bad=_choice("--both-bad", both_bad, {value.value: value for value in Abstain}),
        aggregation=_choice("--aggregation", aggregation, {value.value: value for value in Aggregation}),
        arbitration=_choice("--arbitration", arbitration, {value.value: value for value in ArbitrationMode}),
        include_calibration=include_calibration,
        include_gold=include_gold,
        ranking_pairs=_choice("--ranking-pairs", ranking_pairs, _RANKING_PAIRS),
        rewrites=rewrites,
        margin=margin,
        kto_desirable_at=kto_desirable,
        kto_undesirable_at=kto_undesirable,
        where=JudgmentFilter(
            languages=tuple(language or ()),
            markets=tuple(market or ()),
            categories=tuple(category or ()),
            judged_from=_moment("--since", since, end_of_day=False),
            judged_until=_moment("--until", until, end_of_day=True),
            guidelines_versions=tuple(guidelines_version or ()),
        ),
        teams=tuple(team or ()),
    )
    with (
        _session() as session,
        Progress(
            SpinnerColumn(), TextColumn("{task.completed} items read"), TimeElapsedColumn(), console=err, transient=True
        ) as bar,
    ):
        task = bar.add_task("export", total=None)
        try:
            summary = exporting.export_dataset(
                session,
                principal=command_line_principal(),
                slug=project,
                request=request,
                out=out_path,
                prefstack_version=__version__,
                progress=lambda read: bar.update(task, completed=read),
            )
        except PrefstackError as error:
            bar.stop()
            option = _OPTION_OF_FIELD.get(error.field or "", f"--{(error.field or '').replace('_', '-')}")
            _fail(f"{option}: {error.message}" if error.field else error.message)
    splits = ", ".join(f"{name} {rows}" for name, rows in summary.split_rows.items())
    skipped = ", ".join(f"{reason} {count}" for reason, count in summary.skips.items()) or "none"
    out.print(
        f"wrote {summary.rows} {kind} rows ({splits}) from {summary.items_read} items to {summary.directory}; "
        f"skipped: {skipped}",
        highlight=False,
        soft_wrap=True,
    )


def _choice(option: str, value: str, choices: dict[str, _Choice]) -> _Choice:
    if value not in choices:
        _fail(f"{option}: '{value}' is not one of {', '.join(choices)}")
    return choices[value]


def _moment(option: str, value: str | None, *, end_of_day: bool) -> datetime | None:
    """A UTC moment from an ISO date or date-time; a bare date ends a range at the end of that day."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option}: '{value}' is not an ISO date such as 2026-01-31")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end_of_day and len(value) == len("2026-01-31"):
        moment += timedelta(days=1)
    return moment


def _verify_export(directory: Path | None) -> None:
    if directory is None:
        _fail("DIRECTORY: verify needs the export directory")
    try:
        result = verify(directory)
    except (OSError, ValueError) as error:
        _fail(f"{directory}: {error}")
    for problem in result.problems:
        err.print(f"  {problem.reason}: {problem.path}", highlight=False, soft_wrap=True)
    if not result.ok:
        _fail(f"{directory} does not match its export.json ({len(result.problems)} problem(s))")
    out.print(f"{directory}: every file matches export.json", highlight=False, soft_wrap=True)


@cli.command("demo")
def demo_command(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the app once seeded.")] = True,
) -> None:
    """Migrate, seed the demo projects and their people, print the logins, and serve."""
    settings = Settings()
    engine = build_engine(settings.database_url, pool_size=1)
    try:
        database.upgrade(engine)
    finally:
        engine.dispose()
    with _session() as session:
        summary = demo.seed_demo(session)
    url = f"http://{settings.host}:{settings.port}/"
    out.print(f"\n[bold]prefstack demo[/]: {len(summary.projects)} projects ({summary.items_created} new items)")
    for project in summary.projects:
        out.print(f"  {project.kind:<10} {project.slug:<28} {project.name}", highlight=False, soft_wrap=True)
    archive = summary.archive
    out.print(
        f"  {archive.kind:<10} {archive.slug:<28} {archive.name}: for leads' quality pages and exports"
        + (f" ({summary.archive_judgments} judgments by 12 vendor annotators)" if summary.archive_judgments else ""),
        highlight=False,
        soft_wrap=True,
    )
    if summary.archive_quality is not None:
        extras = summary.archive_quality
        out.print(
            f"  {'':<10} {'':<28} with {extras.gold_items} gold items, {extras.judge_verdicts} LLM-judge verdicts, "
            f"{extras.arbitration_cases} arbitration case{'' if extras.arbitration_cases == 1 else 's'}"
            f" and a {extras.calibration_items}-item calibration session",
            highlight=False,
            soft_wrap=True,
        )
    out.print(f"Open [bold]{url}[/] and log in as:", highlight=False)
    for login in summary.logins:
        out.print(f"  {login.role:<10} {login.email:<28} password: {login.password}", highlight=False)
    out.print("")
    if serve_after:
        serve()


@cli.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (PREFSTACK_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PREFSTACK_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (PREFSTACK_WORKERS).")] = None,
) -> None:
    """Serve the web app and JSON API with uvicorn."""
    import uvicorn

    settings = Settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    processes = workers or settings.workers
    if processes > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics sums them (set before workers start).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prefstack-metrics-")
    out.print(f"serving on http://{bind_host}:{bind_port}/  (API docs at /docs)", highlight=False)
    uvicorn.run(
        "annotation_ui.asgi:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=processes,
        timeout_worker_healthcheck=settings.worker_healthcheck_seconds,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_config=None,  # the app configures logging (PREFSTACK_LOG__FORMAT=json for JSON lines)
        log_level=settings.log.level.lower(),
        access_log=False,
    )


quality_cli = typer.Typer(help="Quality reports.", no_args_is_help=True)
cli.add_typer(quality_cli, name="quality")
_QUALITY_FORMATS = ("csv", "parquet", "xlsx")


@quality_cli.command("report")
def quality_report(
    project: Annotated[str, typer.Option("--project", help="Project slug.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Directory for the tables (default ./SLUG-quality).")
    ] = None,
    file_format: Annotated[str, typer.Option("--format", help="Table files: csv, parquet or xlsx.")] = "csv",
    group_by: Annotated[str, typer.Option(help="Dashboard groups: team, language, market or category.")] = "team",
    since: Annotated[str, typer.Option(help="First day judged, YYYY-MM-DD.")] = "",
    until: Annotated[str, typer.Option(help="Last day judged, YYYY-MM-DD (inclusive).")] = "",
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs (100-5000).")] = 1000,
    min_judgments: Annotated[
        int, typer.Option(help="Counted judgments a knowledge-gap cell needs to be ranked.")
    ] = knowledge_gaps.DEFAULT_MIN_JUDGMENTS,
) -> None:
    """Print a project's headline quality figures and write every report table (docs/quality-reports.md)."""
    from app.api.quality import write_table

    if file_format not in _QUALITY_FORMATS:
        _fail(f"--format is one of {', '.join(_QUALITY_FORMATS)}")
    principal = command_line_principal()
    with _session() as session:
        query = quality_reports.report_query(
            judged_from=since, judged_until=until, group_by=group_by, resamples=resamples
        )
        shared = quality_reports.load_report_facts(session, principal=principal, slug=project, query=query)
        dashboard = quality_reports.dashboard(session, principal=principal, slug=project, query=query, shared=shared)
        annotators = quality_reports.annotator_scorecards(
            session, principal=principal, slug=project, query=query, shared=shared
        )
        teams = quality_reports.team_scorecards(session, principal=principal, slug=project, query=query, shared=shared)
        gaps = knowledge_gaps.knowledge_gaps(
            session,
            principal=principal,
            slug=project,
            query=knowledge_gaps.gap_query(judged_from=since, judged_until=until, min_judgments=str(min_judgments)),
        )
        trends = quality_trends.quality_trends(
            session, principal=principal, query=quality_trends.TrendQuery(query, (dashboard.project_slug,))
        )
    _print_quality_summary(quality_summary.summarize(dashboard, teams, annotators), gaps)
    tables = [quality_reports.dashboard_table(dashboard, name) for name in quality_reports.DASHBOARD_TABLES]
    tables += [
        quality_reports.annotators_table(annotators),
        quality_reports.teams_table(teams),
        knowledge_gaps.gaps_table(gaps),
        quality_trends.trends_table(trends),
    ]
    directory = out_dir or Path(f"{dashboard.project_slug}-quality")
    directory.mkdir(parents=True, exist_ok=True)
    for table in tables:
        path = directory / f"{dashboard.project_slug}-quality-{table.name}.{file_format}"
        with path.open("wb") as target:
            write_table(table, file_format, target)
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _print_quality_summary(summary: quality_summary.QualitySummary, gaps: knowledge_gaps.GapMatrix) -> None:
    from rich.table import Table

    def number(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f}%"

    out.print(
        f"{summary.project_name} ({summary.project_slug}, {summary.kind}): {summary.judgments} judgments, "
        f"{summary.items} items, {summary.annotators} annotators",
        highlight=False,
    )
    agreement = Table("measure", "alpha", "95% CI", "percent agreement", "units", title="Agreement")
    for entry in summary.agreement:
        interval = f"[{number(entry.alpha_low)}, {number(entry.alpha_high)}]" if entry.alpha_low is not None else "-"
        agreement.add_row(entry.measure, number(entry.alpha), interval, share(entry.percent), str(entry.units))
    out.print(agreement)
    teams = Table("team", "annotators", "judgments", "vs aggregate", "within alpha", "flags", title="Teams")
    for card in summary.teams:
        within = card.within_team[0].alpha if card.within_team else None
        flags = ", ".join(flag.code for flag in card.flags) or "-"
        teams.add_row(
            card.team,
            str(card.annotators),
            str(card.score.judgments),
            share(card.score.agreement_with_aggregate),
            number(within),
            flags,
        )
    out.print(teams)
    flagged = Table("annotator", "team", "judgments", "flags", title="Flagged annotators")
    for person in summary.flagged:
        flags = ", ".join(f"{flag.code} ({flag.count} items)" for flag in person.flags)
        flagged.add_row(person.name, person.team or "-", str(person.score.judgments), flags)
    out.print(flagged if summary.flagged else "Flagged annotators: none")
    worst = Table("team", gaps.query.columns, "market", "judgments", "agreement", "gold accuracy", title="Worst cells")
    for cell in [cell for cell in gaps.cells if cell.ranked][:5]:
        worst.add_row(
            cell.team,
            cell.column,
            cell.market or "-",
            str(cell.judgments),
            share(cell.agreement),
            share(cell.gold_accuracy),
        )
    out.print(worst)


def main() -> None:
    """Entry point of the `prefstack` script."""
    try:
        cli()
    except PrefstackError as error:
        _fail(error.message)
