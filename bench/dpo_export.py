"""DPO export benchmark (issue 4): a judged pairwise project exported to Parquet and JSONL.

  seed   build a template database per backend and size, once: project bench-export (pairwise, overlap 3),
         3 annotators, N items (~300-character prompt, two ~1,500-character responses) stored through
         `importing.validate_item` + `insert_items`, then 3 submitted assignments and judgments per item
         (bulk Core inserts, payloads as the services store them, a majority verdict for most items).
  run    for each backend x format, `--repeat` runs, each in a fresh subprocess on a fresh copy of the
         template: `exporting.export_dataset` with the CLI's dpo defaults (test_size 0.1) into a temp
         directory; wall time, rows per split, peak RSS (VmHWM) and output size; one JSON line per run,
         then a markdown table of the medians. `--cprofile` (or `--py-spy`) records a profile of each run.
  table  the markdown table of a results file.
  clean  drop the PostgreSQL templates and run databases (prefstack_bench_export_*), delete the files.

Targets (issue 4): 200,000 items in under 30 s with a peak RSS under 500 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import (
    bench_item,
    drop_databases,
    log,
    parse_size,
    pg_admin,
    pg_database_url,
    pg_execute,
    remove_sqlite,
    size_label,
    str_list,
    template_copy,
)
from sqlalchemy import text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = REPO / "bench" / ".work"
DEFAULT_OUT = REPO / "bench" / "results" / "export.jsonl"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OVERLAP = 3
SLUG = "bench-export"
PG_PREFIX = "prefstack_bench_export_"
TARGET_SECONDS = 30.0
TARGET_RSS_MB = 500.0


# ------------------------------------------------------------------ small helpers


def git_revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def directory_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


# ------------------------------------------------------------------ databases
@dataclass(frozen=True)
class Target:
    """Where a backend's template of a given size lives."""

    backend: str
    items: int
    workdir: Path
    pg_url: str

    @property
    def label(self) -> str:
        return f"{self.backend}-{size_label(self.items)}"

    @property
    def meta_path(self) -> Path:
        """Written last by `seed`: its presence means the template is complete."""
        return self.workdir / f"export-{self.label}.json"

    @property
    def sqlite_template(self) -> Path:
        return self.workdir / f"export-{self.label}.template.db"

    @property
    def pg_template(self) -> str:
        return f"{PG_PREFIX}tmpl_{size_label(self.items)}"

    def template_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_template}"
        return pg_database_url(self.pg_url, self.pg_template)


@contextmanager
def run_database(target: Target, name: str) -> Iterator[str]:
    """A fresh copy of the template for one run: a file copy, or CREATE DATABASE ... TEMPLATE."""
    with template_copy(
        target.template_url(),
        copy_path=target.workdir / f"export-run-{target.label}.db",
        pg_url=target.pg_url,
        pg_database=f"{PG_PREFIX}{name}",
    ) as url:
        yield url


# ------------------------------------------------------------------ seed
def votes_for(rnd: random.Random) -> list[str]:
    """Three verdicts on one item: the item's winner most of the time, so most items have a majority."""
    winner, loser = rnd.sample(["p0", "p1"], 2)
    return [rnd.choices([winner, loser, "tie"], weights=[80, 12, 8])[0] for _ in range(OVERLAP)]


def pairwise_payload(verdict: str, shown_order: list[int]) -> dict[str, Any]:
    """The payload `submit_judgment` stores for a pairwise verdict given in shown labels."""
    position = None if verdict == "tie" else int(verdict[1:])
    choice = "tie" if position is None else "AB"[shown_order.index(position)]
    return {
        "choice": choice,
        "preferred_position": position,
        "strength": None,
        "labels": {},
        "rewrite": None,
        "rationale": None,
    }


def seed(target: Target, *, batch: int) -> None:
    """Build the template of `target` (skipped when it exists): items through the store, votes by bulk inserts."""
    from sqlalchemy import insert, select

    from app import database
    from app.principal import command_line_principal
    from app.services import accounts, importing, projects
    from preference_store.engine import begin_write, build_engine, session_factory
    from preference_store.items import NewItem, insert_items
    from preference_store.models import Assignment, AssignmentState, Item, Judgment, Role
    from preference_store.queue import queue_rank

    if target.meta_path.exists():
        log(f"{target.label}: template exists ({target.meta_path.name}), skipped")
        return
    target.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if target.backend == "sqlite":
        remove_sqlite(target.sqlite_template)
    else:
        pg_execute(
            target.pg_url,
            f'DROP DATABASE IF EXISTS "{target.pg_template}" WITH (FORCE)',
            f'CREATE DATABASE "{target.pg_template}"',
        )
    engine = build_engine(target.template_url(), pool_size=2)
    timings: dict[str, float] = {}
    try:
        database.upgrade(engine)
        sessions = session_factory(engine)
        operator = command_line_principal()
        with sessions() as session:
            emails = [f"annotator{n}@bench.example.org" for n in range(1, OVERLAP + 1)]
            annotator_ids = [
                accounts.create_user(session, email=email, name=f"Annotator {n}", role=Role.ANNOTATOR, password=None).id
                for n, email in enumerate(emails, start=1)
            ]
            project = projects.create_project(
                session, principal=operator, slug=SLUG, name="Export benchmark", overlap=OVERLAP
            )
            projects.add_members(session, principal=operator, slug=SLUG, emails=emails)

            rnd = random.Random(42)
            words = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 10))) for _ in range(5000)]
            begin_write(session)
            for start in range(0, target.items, batch):
                chunk: list[NewItem] = []
                for number in range(start + 1, min(start + batch, target.items) + 1):
                    item, problems = importing.validate_item(bench_item(rnd, words, number), row=number)
                    if item is None or problems:
                        raise RuntimeError(f"bench item {number} is invalid: {problems}")
                    chunk.append(item)
                # Every slot is taken: the three judgments below fill the overlap.
                insert_items(session, project_id=project.id, items=chunk, open_slots=0)
                if (start + len(chunk)) % 50_000 < batch:
                    log(f"{target.label}: {start + len(chunk):,} items")
            timings["items_s"] = round(time.perf_counter() - started, 1)

            after = 0
            judged = 0
            now = dt.datetime.now(dt.UTC)
            while True:
                item_ids = list(
                    session.scalars(
                        select(Item.id)
                        .where(Item.project_id == project.id, Item.id > after)
                        .order_by(Item.id)
                        .limit(batch)
                    )
                )
                if not item_ids:
                    break
                planned: list[tuple[dict[str, Any], str]] = []
                for item_id in item_ids:
                    for annotator_id, verdict in zip(annotator_ids, votes_for(rnd), strict=True):
                        shown_order = rnd.sample([0, 1], 2)
                        moment = now - dt.timedelta(seconds=rnd.randint(60, 30 * 86_400))
                        assignment = {
                            "project_id": project.id,
                            "item_id": item_id,
                            "annotator_id": annotator_id,
                            "shown_order": shown_order,
                            "queue_rank": queue_rank(item_id),
                            "state": AssignmentState.SUBMITTED,
                            "leased_until": moment,
                            "created_at": moment,
                            "closed_at": moment,
                        }
                        planned.append((assignment, verdict))
                assignment_ids = session.scalars(
                    insert(Assignment).returning(Assignment.id, sort_by_parameter_order=True),
                    [assignment for assignment, _ in planned],
                ).all()
                session.execute(
                    insert(Judgment),
                    [
                        {
                            "assignment_id": assignment_id,
                            "project_id": project.id,
                            "item_id": assignment["item_id"],
                            "annotator_id": assignment["annotator_id"],
                            "payload": pairwise_payload(verdict, assignment["shown_order"]),
                            "time_spent_ms": rnd.randint(5_000, 120_000),
                            "guidelines_version": project.guidelines_version,
                            "verdict": verdict,
                            "created_at": assignment["closed_at"],
                        }
                        for assignment_id, (assignment, verdict) in zip(assignment_ids, planned, strict=True)
                    ],
                )
                judged += len(item_ids)
                after = item_ids[-1]
                if judged % 50_000 < batch:
                    log(f"{target.label}: {judged:,} items judged")
            session.commit()
            timings["total_before_vacuum_s"] = round(time.perf_counter() - started, 1)
        if target.backend == "sqlite":
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    if target.backend == "sqlite":
        Path(f"{target.sqlite_template}.writelock").unlink(missing_ok=True)
    else:
        # What autovacuum would have done soon after an import; run copies start from that state too.
        with pg_admin(target.template_url()) as admin, admin.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
    seconds = round(time.perf_counter() - started, 1)
    target.meta_path.write_text(
        json.dumps(
            {
                "backend": target.backend,
                "items": target.items,
                "slug": SLUG,
                "template": str(target.sqlite_template) if target.backend == "sqlite" else target.pg_template,
                "seed_s": seconds,
                **timings,
                "revision": git_revision(),
            },
            indent=1,
        )
    )
    size = (
        f"{target.sqlite_template.stat().st_size / 2**20:.0f} MB" if target.backend == "sqlite" else target.pg_template
    )
    log(f"{target.label}: seeded in {seconds} s ({size})")


# ------------------------------------------------------------------ one run (in its own process)
def export_once(url: str, fmt: str) -> dict[str, Any]:
    """Export the template copy at `url` with the CLI's dpo defaults; timings and peak RSS of this process."""
    from app import __version__
    from app.principal import command_line_principal
    from app.services import exporting
    from export.writers import ExportFormat
    from preference_store.engine import build_engine, session_factory

    engine = build_engine(url, pool_size=2)
    try:
        with tempfile.TemporaryDirectory(prefix="prefstack-bench-export-") as scratch:
            out = Path(scratch) / "dpo"
            request = exporting.ExportRequest(kind="dpo", fmt=ExportFormat(fmt), test_size=0.1)
            started = time.perf_counter()
            cpu_started = time.process_time()
            with session_factory(engine)() as session:
                summary = exporting.export_dataset(
                    session,
                    principal=command_line_principal(),
                    slug=SLUG,
                    request=request,
                    out=out,
                    prefstack_version=__version__,
                )
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            size = directory_bytes(out)
    finally:
        engine.dispose()
    return {
        "export_s": round(seconds, 2),
        "export_cpu_s": round(cpu, 2),
        "items_read": summary.items_read,
        "rows": summary.rows,
        "split_rows": summary.split_rows,
        "skips": summary.skips,
        "output_mb": round(size / 2**20, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_one(target: Target, *, fmt: str, repeat: int, run_id: str, profile: Path | None) -> dict[str, Any]:
    """One measured export on a fresh template copy, in a fresh interpreter."""
    name = f"run_{os.getpid()}"
    loadavg = [round(x, 2) for x in os.getloadavg()]
    with run_database(target, name) as url:
        command = [sys.executable, str(Path(__file__).resolve()), "_one", "--url", url, "--format", fmt]
        if profile is not None and profile.suffix == ".prof":
            # cProfile inflates Python-heavy parts, so its runs are flagged and kept out of the targets.
            command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command[1:]]
        elif profile is not None:
            command = ["py-spy", "record", "--format", "raw", "--output", str(profile), "--", *command]
        started = time.perf_counter()
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, timeout=1800)
        process_s = time.perf_counter() - started
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "backend": target.backend,
        "items": target.items,
        "format": fmt,
        "repeat": repeat,
        "loadavg_before": loadavg,
        "process_s": round(process_s, 2),
        **measured,
        "profiled": profile is not None,
    }


def append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as stream:
        stream.write(json.dumps(row) + "\n")


def run(a: argparse.Namespace) -> None:
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
    targets = [Target(backend, a.items, a.workdir, a.pg_url) for backend in a.backend]
    for target in targets:
        if not target.meta_path.exists():
            raise SystemExit(
                f"no template for {target.label}: run `seed --backend {target.backend} "
                f"--items {size_label(target.items)}` first"
            )
    for target in targets:
        for fmt in a.format:
            for repeat in range(1, a.repeat + 1):
                profile = None
                if a.py_spy:
                    profile = a.workdir / f"export-profile-{target.label}-{fmt}-{repeat}.txt"
                elif a.cprofile:
                    profile = a.workdir / f"export-profile-{target.label}-{fmt}-{repeat}.prof"
                row = run_one(target, fmt=fmt, repeat=repeat, run_id=run_id, profile=profile)
                append(a.out, row)
                log(
                    f"{target.label} {fmt} #{repeat}: {row['export_s']} s, {row['rows']:,} rows "
                    f"{row['split_rows']}, peak RSS {row['peak_rss_mb']} MB, {row['output_mb']} MB written"
                )
    print(table(a.out, run_id=run_id))


# ------------------------------------------------------------------ table
def table(path: Path, *, run_id: str | None = None) -> str:
    """Medians of the repeats per backend x items x format (of one run, or of the newest run in the file)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if rows:
        wanted = run_id or rows[-1]["run_id"]
        rows = [row for row in rows if row["run_id"] == wanted]
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["backend"], row["items"], row["format"]), []).append(row)
    out = [
        "| backend | items | format | runs | export s (median) | min / max s | CPU s | rows train / test | "
        "peak RSS MB (median) | output MB | < 30 s | < 500 MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (backend, items, fmt), group in groups.items():
        seconds = [row["export_s"] for row in group]
        rss = statistics.median(row["peak_rss_mb"] for row in group)
        median_s = statistics.median(seconds)
        cpu = statistics.median(row["export_cpu_s"] for row in group)
        splits = group[-1]["split_rows"]
        profiled = " (profiled)" if any(row.get("profiled") for row in group) else ""
        out.append(
            f"| {backend}{profiled} | {size_label(items)} | {fmt} | {len(group)} | {median_s:.1f} | "
            f"{min(seconds):.1f} / {max(seconds):.1f} | {cpu:.1f} | "
            f"{splits.get('train', 0):,} / {splits.get('test', 0):,} | {rss:.0f} | {group[-1]['output_mb']:.0f} | "
            f"{'yes' if median_s < TARGET_SECONDS else 'no'} | {'yes' if rss < TARGET_RSS_MB else 'no'} |"
        )
    return "\n".join(out)


def clean(a: argparse.Namespace) -> None:
    """Drop this benchmark's PostgreSQL databases and delete its files in the work folder."""
    for name in drop_databases(a.pg_url, PG_PREFIX):
        log(f"dropped database {name}")
    if a.workdir.exists():
        for path in sorted(a.workdir.glob("export-*")):
            path.unlink()
            log(f"removed {path}")


# ------------------------------------------------------------------ command line
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="SQLite templates and run copies")
        p.add_argument(
            "--pg-url",
            default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL),
            help="PostgreSQL admin URL (templates and run databases are created beside it)",
        )

    def targets(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument(
            "--backend",
            type=str_list,
            default=["sqlite", "postgresql"],
            help="comma-separated: sqlite,postgresql (default: both)",
        )
        p.add_argument("--items", type=parse_size, default=200_000, help="items of the template, e.g. 20k or 200k")

    seed_parser = sub.add_parser("seed", help="build the template databases (skipped when they exist)")
    targets(seed_parser)
    seed_parser.add_argument("--batch", type=int, default=5000, help="items per insert batch")

    run_parser = sub.add_parser("run", help="measure exports, each in a fresh process on a fresh copy")
    targets(run_parser)
    run_parser.add_argument(
        "--format", type=str_list, default=["parquet", "jsonl"], help="comma-separated: parquet,jsonl (default: both)"
    )
    run_parser.add_argument("--repeat", type=int, default=3, help="runs per backend x format")
    run_parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results .jsonl (appended)")
    run_parser.add_argument("--py-spy", action="store_true", help="record a py-spy raw profile of each run")
    run_parser.add_argument(
        "--cprofile",
        action="store_true",
        help="record a cProfile of each run (workdir/export-profile-*.prof; read with python -m pstats)",
    )

    table_parser = sub.add_parser("table", help="markdown table of a results file (its newest run)")
    table_parser.add_argument("path", type=Path, nargs="?", default=DEFAULT_OUT)

    one_parser = sub.add_parser("_one", help=argparse.SUPPRESS)
    one_parser.add_argument("--url", required=True)
    one_parser.add_argument("--format", required=True)

    clean_parser = sub.add_parser("clean", help="drop the PostgreSQL databases and delete the template files")
    common(clean_parser)

    a = parser.parse_args()
    if a.command == "seed":
        for backend in a.backend:
            seed(Target(backend, a.items, a.workdir, a.pg_url), batch=a.batch)
    elif a.command == "run":
        run(a)
    elif a.command == "table":
        print(table(a.path))
    elif a.command == "_one":
        print(json.dumps(export_once(a.url, a.format)))
    else:
        clean(a)


if __name__ == "__main__":
    main()
