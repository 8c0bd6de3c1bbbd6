"""Quality report benchmark (issue 5): the full quality report of a large judged pairwise project.

  seed   build a template database per backend, once: project bench-quality (pairwise, overlap 5),
         40 annotators in 4 teams (careful ones, two left-biased, one random, two too fast), N items
         with language / market / category metadata and responses of varied length, and 5 submitted
         assignments + judgments per item spread over 8 weeks (bulk Core inserts, not the API).
  run    for each backend, `--repeat` runs, each in a fresh interpreter reading the template: the
         report `prefstack quality report` computes (dashboard, annotator scorecards, team
         scorecards and the benchmark of every team, on one shared load of the facts); wall and
         CPU seconds, peak RSS; one JSON line per run, then a markdown table of the medians.
         `--profile` records a cProfile of each run.
  table  the markdown table of a results file.
  clean  drop the PostgreSQL templates (prefstack_bench_quality_*), delete the template files.

Target (issue 5): 200,000 items and 1,000,000 judgments in under 5 s on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import (
    drop_databases,
    log,
    parse_size,
    pg_admin,
    pg_database_url,
    pg_execute,
    remove_sqlite,
    size_label,
    str_list,
)
from sqlalchemy import text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = REPO / "bench" / ".work"
DEFAULT_OUT = REPO / "bench" / "results" / "quality.jsonl"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OVERLAP = 5
SLUG = "bench-quality"
PG_PREFIX = "prefstack_bench_quality_"
TARGET_SECONDS = 5.0
TEAMS = [("Vendor Alpha", True), ("Vendor Beta", True), ("Vendor Gamma", True), ("In-house", False)]
PER_TEAM = 10
WEEKS = 8
LANGUAGES = [("en", "US"), ("th", "TH"), ("id", "ID"), ("vi", "VN")]
CATEGORIES = ["coding", "finance", "health", "travel", "gambling", "politics", "chit-chat", "legal"]
# Behaviours by annotator number (0-based): the rest are careful, with per-team accuracy.
LEFT_BIASED = {3, 17}
RANDOM = {25}
TOO_FAST = {8, 34}
TEAM_ACCURACY = [0.86, 0.8, 0.74, 0.9]


def git_revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


@dataclass(frozen=True)
class Target:
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
        return self.workdir / f"quality-{self.label}.json"

    @property
    def sqlite_template(self) -> Path:
        return self.workdir / f"quality-{self.label}.template.db"

    @property
    def pg_template(self) -> str:
        return f"{PG_PREFIX}tmpl_{size_label(self.items)}"

    def template_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_template}"
        return pg_database_url(self.pg_url, self.pg_template)


# ------------------------------------------------------------------ seed
def _verdicts(rng: np.random.Generator, annotators: np.ndarray, truth: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Verdict codes (0 = p0, 1 = p1, 2 = tie, 3 = both_bad) per judgment by each annotator's behaviour."""
    team = annotators // PER_TEAM
    accuracy = np.asarray(TEAM_ACCURACY)[team]
    draw = rng.random(annotators.size)
    careful = np.where(
        draw < 0.06, 2, np.where(draw < 0.08, 3, np.where(draw < 0.08 + accuracy * 0.92, truth, 1 - truth))
    )
    left_pick = np.where(rng.random(annotators.size) < 0.85, left, 1 - left)
    random_pick = rng.integers(0, 4, annotators.size)
    fast_pick = np.where(rng.random(annotators.size) < 0.6, truth, rng.integers(0, 2, annotators.size))
    verdicts = careful
    verdicts = np.where(np.isin(annotators, list(LEFT_BIASED)), left_pick, verdicts)
    verdicts = np.where(np.isin(annotators, list(RANDOM)), random_pick, verdicts)
    return np.where(np.isin(annotators, list(TOO_FAST)), fast_pick, verdicts)


def seed(target: Target, *, batch: int) -> None:
    """Build the template of `target` (skipped when it exists) with bulk Core inserts."""
    from sqlalchemy import insert

    from app import database
    from app.principal import command_line_principal
    from app.services import accounts, projects
    from preference_store.engine import begin_write, build_engine, session_factory
    from preference_store.models import Assignment, AssignmentState, Item, ItemQueue, Judgment, Response, Role
    from preference_store.queue import queue_rank
    from preference_store.users import get_or_create_team

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
    rng = np.random.default_rng(42)
    words = ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 10))) for _ in range(3000)]
    pool = " ".join(words[i] for i in rng.integers(0, len(words), 400_000))
    n_annotators = len(TEAMS) * PER_TEAM
    start_day = dt.datetime(2026, 9, 7, tzinfo=dt.UTC)  # a Monday
    try:
        database.upgrade(engine)
        sessions = session_factory(engine)
        operator = command_line_principal()
        with sessions() as session:
            for name, is_vendor in TEAMS:
                get_or_create_team(session, name=name, is_vendor=is_vendor)
            session.commit()
            emails = []
            user_ids = []
            for number in range(n_annotators):
                email = f"annotator{number:02d}@bench.example.org"
                user = accounts.create_user(
                    session,
                    email=email,
                    name=f"Annotator {number:02d}",
                    role=Role.ANNOTATOR,
                    password=None,
                    team=TEAMS[number // PER_TEAM][0],
                )
                emails.append(email)
                user_ids.append(user.id)
            project = projects.create_project(
                session, principal=operator, slug=SLUG, name="Quality benchmark", overlap=OVERLAP
            )
            projects.add_members(session, principal=operator, slug=SLUG, emails=emails)
            annotator_id = np.asarray(user_ids)
            # Annotators differ in output: weights 0.5..1.5.
            productivity = rng.uniform(0.5, 1.5, n_annotators)
            productivity /= productivity.sum()

            begin_write(session)
            next_assignment = 1
            for first in range(1, target.items + 1, batch):
                numbers = np.arange(first, min(first + batch, target.items + 1))
                size = numbers.size
                language = rng.integers(0, len(LANGUAGES), size)
                category = rng.integers(0, len(CATEGORIES), size)
                lengths = rng.integers(150, 2200, (size, 2))
                offsets = rng.integers(0, len(pool) - 2300, (size, 3))
                session.execute(
                    insert(Item),
                    [
                        {
                            "id": int(number),
                            "project_id": project.id,
                            "external_id": f"bq-{number:07d}",
                            "messages": [{"role": "user", "content": f"Question {number}: " + pool[o[2] : o[2] + 200]}],
                            "metadata_": {
                                "language": LANGUAGES[lang][0],
                                "market": LANGUAGES[lang][1],
                                "category": CATEGORIES[cat],
                            },
                            "content_hash": hashlib.sha256(str(number).encode()).hexdigest(),
                            "is_sensitive": False,
                            "response_chars": chars,
                        }
                        for number, lang, cat, o, chars in zip(
                            numbers.tolist(),
                            language.tolist(),
                            category.tolist(),
                            offsets.tolist(),
                            lengths.sum(axis=1).tolist(),
                            strict=True,
                        )
                    ],
                )
                session.execute(
                    insert(Response),
                    [
                        {
                            "item_id": int(number),
                            "position": position,
                            "model_name": f"model-{'ab'[position]}",
                            "content": pool[o[position] : o[position] + length[position]],
                            "metadata_": {},
                        }
                        for number, o, length in zip(numbers.tolist(), offsets.tolist(), lengths.tolist(), strict=True)
                        for position in (0, 1)
                    ],
                )
                session.execute(
                    insert(ItemQueue),
                    [
                        {
                            "item_id": int(number),
                            "project_id": project.id,
                            "open_slots": 0,
                            "is_reopened": False,
                            "rank": queue_rank(int(number)),
                            "language": LANGUAGES[lang][0],
                        }
                        for number, lang in zip(numbers.tolist(), language.tolist(), strict=True)
                    ],
                )
                # Five distinct annotators per item, drawn by productivity (Gumbel top-k).
                keys = np.log(productivity)[None, :] - np.log(-np.log(rng.random((size, n_annotators))))
                chosen = np.argsort(-keys, axis=1)[:, :OVERLAP]
                annotators = chosen.reshape(-1)
                item_of = np.repeat(numbers, OVERLAP)
                truth = np.repeat(rng.integers(0, 2, size), OVERLAP)
                left = rng.integers(0, 2, annotators.size)
                verdict = _verdicts(rng, annotators, truth, left)
                chars = np.repeat(lengths.sum(axis=1), OVERLAP)
                seconds_per_k = rng.lognormal(np.log(25), 0.35, annotators.size)
                spent = seconds_per_k * chars / 1000 * 1000
                fast = np.isin(annotators, list(TOO_FAST))
                spent = np.where(fast, rng.uniform(600, 2600, annotators.size), spent).astype(np.int64)
                item_start = np.repeat(rng.uniform(0, WEEKS * 7 * 86_400 - 7200, size), OVERLAP)
                moment_s = item_start + rng.uniform(0, 7200, annotators.size)
                ids = np.arange(next_assignment, next_assignment + annotators.size)
                next_assignment += annotators.size
                moments = [start_day + dt.timedelta(seconds=float(s)) for s in moment_s.tolist()]
                names = ("p0", "p1", "tie", "both_bad")
                session.execute(
                    insert(Assignment),
                    [
                        {
                            "id": assignment,
                            "project_id": project.id,
                            "item_id": item,
                            "annotator_id": int(annotator_id[a]),
                            "shown_order": [side, 1 - side],
                            "queue_rank": queue_rank(item),
                            "state": AssignmentState.SUBMITTED,
                            "leased_until": moment,
                            "created_at": moment,
                            "closed_at": moment,
                        }
                        for assignment, item, a, side, moment in zip(
                            ids.tolist(), item_of.tolist(), annotators.tolist(), left.tolist(), moments, strict=True
                        )
                    ],
                )
                session.execute(
                    insert(Judgment),
                    [
                        {
                            "id": assignment,
                            "assignment_id": assignment,
                            "project_id": project.id,
                            "item_id": item,
                            "annotator_id": int(annotator_id[a]),
                            "payload": {
                                "choice": names[code] if code > 1 else "AB"[[side, 1 - side].index(code)],
                                "preferred_position": code if code < 2 else None,
                                "strength": None,
                                "labels": {},
                                "rewrite": None,
                                "rationale": None,
                            },
                            "time_spent_ms": ms,
                            "guidelines_version": project.guidelines_version,
                            "verdict": names[code],
                            "left_position": side,
                            "created_at": moment,
                        }
                        for assignment, item, a, side, code, ms, moment in zip(
                            ids.tolist(),
                            item_of.tolist(),
                            annotators.tolist(),
                            left.tolist(),
                            verdict.tolist(),
                            spent.tolist(),
                            moments,
                            strict=True,
                        )
                    ],
                )
                if (numbers[-1] // batch) % 10 == 0:
                    log(f"{target.label}: {int(numbers[-1]):,} items, {next_assignment - 1:,} judgments")
            if target.backend == "postgresql":
                for table in ("item", "response", "assignment", "judgment"):
                    session.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
                    )
            session.commit()
        if target.backend == "sqlite":
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    if target.backend == "sqlite":
        Path(f"{target.sqlite_template}.writelock").unlink(missing_ok=True)
    else:
        with pg_admin(target.template_url()) as admin, admin.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
    seconds = round(time.perf_counter() - started, 1)
    target.meta_path.write_text(
        json.dumps(
            {
                "backend": target.backend,
                "items": target.items,
                "judgments": target.items * OVERLAP,
                "slug": SLUG,
                "template": str(target.sqlite_template) if target.backend == "sqlite" else target.pg_template,
                "seed_s": seconds,
                "revision": git_revision(),
            },
            indent=1,
        )
    )
    log(f"{target.label}: seeded in {seconds} s")


# ------------------------------------------------------------------ one run (in its own process)
def report_once(url: str, resamples: int) -> dict[str, Any]:
    """The full quality report of the template at `url`: timings, sizes and peak RSS of this process."""
    from app.principal import command_line_principal
    from app.services import quality_reports
    from preference_store.engine import build_engine, session_factory

    engine = build_engine(url, pool_size=2)
    try:
        with session_factory(engine)() as session:
            principal = command_line_principal()
            started = time.perf_counter()
            cpu_started = time.process_time()
            report = quality_reports.full_report(session, principal=principal, slug=SLUG, resamples=resamples)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
    finally:
        engine.dispose()
    flagged = {card.name: [flag.code for flag in card.flags] for card in report.annotators.annotators if card.flags}
    return {
        "report_s": round(seconds, 3),
        "report_cpu_s": round(cpu, 2),
        "judgments": report.dashboard.judgments,
        "items": report.dashboard.items,
        "alpha": report.dashboard.agreement[0].alpha if report.dashboard.agreement else None,
        "flagged": flagged,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_one(target: Target, *, repeat: int, run_id: str, resamples: int, profile: Path | None) -> dict[str, Any]:
    loadavg = [round(x, 2) for x in os.getloadavg()]
    url = target.template_url()
    command = [sys.executable, str(Path(__file__).resolve()), "_one", "--url", url, "--resamples", str(resamples)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command[1:]]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, timeout=1800)
    process_s = time.perf_counter() - started
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "run_id": run_id,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "backend": target.backend,
        "items_seeded": target.items,
        "repeat": repeat,
        "resamples": resamples,
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
        for repeat in range(1, a.repeat + 1):
            profile = a.workdir / f"quality-profile-{target.label}-{repeat}.prof" if a.profile else None
            row = run_one(target, repeat=repeat, run_id=run_id, resamples=a.resamples, profile=profile)
            append(a.out, row)
            log(
                f"{target.label} #{repeat}: {row['report_s']} s ({row['report_cpu_s']} s CPU), "
                f"{row['judgments']:,} judgments, peak RSS {row['peak_rss_mb']} MB, flagged {row['flagged']}"
            )
    print(table(a.out, run_id=run_id))


def table(path: Path, *, run_id: str | None = None) -> str:
    """Medians of the repeats per backend (of one run, or of the newest run in the file)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if rows:
        wanted = run_id or rows[-1]["run_id"]
        rows = [row for row in rows if row["run_id"] == wanted]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["backend"], row["judgments"]), []).append(row)
    out = [
        "| backend | items | judgments | runs | report s (median) | min / max s | CPU s | peak RSS MB | < 5 s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (backend, judgments), group in groups.items():
        seconds = [row["report_s"] for row in group]
        median_s = statistics.median(seconds)
        profiled = " (profiled)" if any(row.get("profiled") for row in group) else ""
        out.append(
            f"| {backend}{profiled} | {group[-1]['items']:,} | {judgments:,} | {len(group)} | {median_s:.2f} | "
            f"{min(seconds):.2f} / {max(seconds):.2f} | {statistics.median(r['report_cpu_s'] for r in group):.2f} | "
            f"{statistics.median(r['peak_rss_mb'] for r in group):.0f} | "
            f"{'yes' if median_s < TARGET_SECONDS else 'no'} |"
        )
    return "\n".join(out)


def clean(a: argparse.Namespace) -> None:
    """Drop this benchmark's PostgreSQL databases and delete its files in the work folder."""
    for name in drop_databases(a.pg_url, PG_PREFIX):
        log(f"dropped database {name}")
    if a.workdir.exists():
        for path in sorted(a.workdir.glob("quality-*")):
            path.unlink()
            log(f"removed {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="SQLite templates")
        p.add_argument(
            "--pg-url",
            default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL),
            help="PostgreSQL admin URL (templates are created beside it)",
        )

    def targets(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--backend", type=str_list, default=["sqlite", "postgresql"], help="sqlite,postgresql")
        p.add_argument("--items", type=parse_size, default=200_000, help="items of the template (5 judgments each)")

    seed_parser = sub.add_parser("seed", help="build the template databases (skipped when they exist)")
    targets(seed_parser)
    seed_parser.add_argument("--batch", type=int, default=5000, help="items per insert batch")

    run_parser = sub.add_parser("run", help="time the full report, each run in a fresh process")
    targets(run_parser)
    run_parser.add_argument("--repeat", type=int, default=5, help="runs per backend")
    run_parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of every CI")
    run_parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results .jsonl (appended)")
    run_parser.add_argument(
        "--profile", action="store_true", help="cProfile each run (workdir/quality-profile-*.prof; python -m pstats)"
    )

    table_parser = sub.add_parser("table", help="markdown table of a results file (its newest run)")
    table_parser.add_argument("path", type=Path, nargs="?", default=DEFAULT_OUT)

    one_parser = sub.add_parser("_one", help=argparse.SUPPRESS)
    one_parser.add_argument("--url", required=True)
    one_parser.add_argument("--resamples", type=int, default=1000)

    clean_parser = sub.add_parser("clean", help="drop the PostgreSQL templates and delete the template files")
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
        print(json.dumps(report_once(a.url, a.resamples)))
    else:
        clean(a)


if __name__ == "__main__":
    main()
