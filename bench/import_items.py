"""Import benchmark (issue 6): `prefstack import` of a native JSONL file into a fresh database.

  gen    write bench/.work/import-<size>.jsonl once: N items, each a ~300-character prompt and two
         ~1,500-character responses in English, Thai, Indonesian or Vietnamese (seeded, so the same every time).
  run    for each backend, `--repeat` runs, each in a fresh interpreter on a fresh, migrated, empty database:
         `importing.import_items` over `read_source(file)` (what `prefstack import` does); wall and CPU
         time, peak RSS (VmHWM) and RSS sampled while it runs (at 10 %, 50 % and 100 % of the rows); one
         JSON line per run into --out, then a table of the medians.
  table  the table of a results file (newest run).
  clean  drop the PostgreSQL template and run databases (prefstack_bench_import_*), delete the files.

Targets (issue 6): 100,000 items in under 20 s with a peak RSS under 300 MB, on SQLite and PostgreSQL;
memory flat on 1,000,000 items.
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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    template_copy,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = REPO / "bench" / ".work"
DEFAULT_OUT = REPO / "bench" / "results" / "import.jsonl"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_TEMPLATE = "prefstack_bench_import_tmpl"
SLUG = "bench-import"
# Words per language: the generated text mixes scripts and lengths like real multilingual data.
_TEXT = {
    "en": "the model answer should explain why this request is unsafe and offer a helpful alternative "
    "instead while keeping the tone polite and the facts correct for every market we serve today",
    "th": "คำตอบ ควร อธิบาย ว่า ทำไม คำขอ นี้ ไม่ ปลอดภัย และ เสนอ ทางเลือก ที่ เป็น ประโยชน์ "
    "โดย ใช้ น้ำเสียง สุภาพ และ ข้อมูล ถูกต้อง สำหรับ ผู้ใช้ ทุก คน",
    "id": "jawaban harus menjelaskan mengapa permintaan ini tidak aman dan menawarkan alternatif yang "
    "bermanfaat dengan nada sopan serta fakta yang benar untuk semua pengguna kami",
    "vi": "câu trả lời nên giải thích tại sao yêu cầu này không an toàn và đưa ra một lựa chọn "
    "hữu ích với giọng điệu lịch sự và thông tin chính xác cho mọi người dùng",
}
WORDS = {language: text.split() for language, text in _TEXT.items()}


def data_file(workdir: Path, items: int) -> Path:
    return workdir / f"import-{size_label(items)}.jsonl"


def generate(path: Path, items: int) -> None:
    """Write the native JSONL once (a `.done` marker beside it says it is complete)."""
    import orjson

    done = path.with_suffix(".done")
    if done.exists():
        log(f"{path.name} exists")
        return
    rnd = random.Random(6)
    sentences: dict[str, list[str]] = {}
    for language, words in WORDS.items():
        pool = []
        for _ in range(4000):
            text = " ".join(rnd.choice(words) for _ in range(rnd.randint(8, 24)))
            pool.append(text[:1].upper() + text[1:] + rnd.choice((".", ".", "?", "!")))
        sentences[language] = pool

    def prose(language: str, chars: int) -> str:
        parts: list[str] = []
        length = 0
        pool = sentences[language]
        while length < chars:
            sentence = rnd.choice(pool)
            parts.append(sentence)
            length += len(sentence) + 1
        return " ".join(parts)[:chars]

    languages = list(WORDS)
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for number in range(items):
            language = languages[number % len(languages)]
            item = {
                "external_id": f"imp-{number:08d}",
                "prompt": f"#{number} {prose(language, 300)}",
                "responses": [
                    {"model": "model-a", "content": prose(language, 1500)},
                    {"model": "model-b", "content": prose(language, 1500)},
                ],
                "metadata": {"language": language, "category": rnd.choice(("safety", "helpfulness", "facts"))},
            }
            out.write(orjson.dumps(item) + b"\n")
    done.write_text(json.dumps({"items": items, "seconds": round(time.perf_counter() - started, 1)}))
    log(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")


def empty_template(backend: str, workdir: Path, pg_url: str) -> str:
    """A migrated, empty database to copy for each run (made once, migrated to the current head each time)."""
    from sqlalchemy import create_engine

    from app import database

    if backend == "sqlite":
        path = workdir / "import-sqlite-empty.template.db"
        engine = create_engine(f"sqlite:///{path}")
        database.upgrade(engine)  # also brings an older template up to the current schema
        engine.dispose()
        return f"sqlite:///{path}"
    with pg_admin(pg_url) as admin, admin.connect() as connection:
        from sqlalchemy import text

        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_TEMPLATE}).first()
    url = pg_database_url(pg_url, PG_TEMPLATE)
    if exists is None:
        pg_execute(pg_url, f'CREATE DATABASE "{PG_TEMPLATE}"')
    engine = create_engine(url)
    database.upgrade(engine)
    engine.dispose()
    return url


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def import_once(url: str, path: Path, items: int) -> dict[str, Any]:
    """The measured part, in this (fresh) interpreter: project set-up untimed, then the import."""
    from app.import_formats import read_source
    from app.principal import command_line_principal
    from app.services import importing, projects
    from preference_store.engine import build_engine, session_factory

    engine = build_engine(url, pool_size=2)
    principal = command_line_principal()
    with session_factory(engine)() as session:
        projects.create_project(session, principal=principal, slug=SLUG, name="Import bench")
    rss_start = _status_mb("VmRSS")
    samples: list[tuple[int, float, float]] = []
    started = time.perf_counter()
    cpu = time.process_time()

    def sample(read: int) -> None:
        if read % 5000 == 0 or read == items:
            samples.append((read, _status_mb("VmRSS"), round(time.perf_counter() - started, 2)))
            if read % max(items // 10, 5000) == 0:
                log(f"{read:,} rows read, RSS {samples[-1][1]} MB, {samples[-1][2]} s")

    with session_factory(engine)() as session:
        result = importing.import_items(
            session, principal=principal, slug=SLUG, rows=read_source(path, "jsonl"), progress=sample
        )
    wall = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    engine.dispose()

    def at(share: float) -> float | None:
        wanted = items * share
        return next((rss for read, rss, _ in samples if read >= wanted), None)

    return {
        "created": result.created,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_s, 2),
        "items_per_s": round(result.created / wall),
        "rss_start_mb": rss_start,
        "rss_10_mb": at(0.1),
        "rss_50_mb": at(0.5),
        "rss_100_mb": at(1.0),
        "peak_rss_mb": _status_mb("VmHWM"),
        "samples": samples if items >= 500_000 else [],
    }


@contextmanager
def run_database(backend: str, workdir: Path, pg_url: str) -> Iterator[str]:
    template = empty_template(backend, workdir, pg_url)
    name = f"prefstack_bench_import_run_{os.getpid()}"
    with template_copy(
        template, copy_path=workdir / f"import-run-{os.getpid()}.db", pg_url=pg_url, pg_database=name
    ) as url:
        yield url


def git_revision() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def run(a: argparse.Namespace) -> None:
    items = parse_size(a.items)
    path = data_file(a.workdir, items)
    generate(path, items)
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for backend in str_list(a.backend):
        for repeat in range(1, a.repeat + 1):
            with run_database(backend, a.workdir, a.pg_url) as url:
                loadavg = [round(x, 2) for x in os.getloadavg()]
                command = [sys.executable, str(Path(__file__).resolve()), "_one", "--url", url]
                command += ["--file", str(path), "--items", str(items)]
                started = time.perf_counter()
                done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, timeout=7200)
                process_s = time.perf_counter() - started
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            row = {
                "run_id": run_id,
                "revision": git_revision(),
                "backend": backend,
                "items": items,
                "repeat": repeat,
                "loadavg_before": loadavg,
                "process_s": round(process_s, 2),
                **measured,
            }
            with a.out.open("a") as out:
                out.write(json.dumps(row) + "\n")
            log(
                f"{backend} {size_label(items)} #{repeat}: {row['wall_s']} s, peak {row['peak_rss_mb']} MB, "
                f"RSS 10/50/100 % {row['rss_10_mb']}/{row['rss_50_mb']}/{row['rss_100_mb']} MB"
            )
    print(table(a.out, run_id=run_id))


def table(path: Path, *, run_id: str | None = None) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    run_id = run_id or rows[-1]["run_id"]
    rows = [row for row in rows if row["run_id"] == run_id]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["backend"], row["items"]), []).append(row)
    lines = [
        "| backend | items | runs | median wall s | items/s | CPU s | peak RSS MB (max) | RSS at 10 / 50 / 100 % MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (backend, items), group in groups.items():
        median = statistics.median(row["wall_s"] for row in group)
        middle = min(group, key=lambda row: abs(row["wall_s"] - median))
        lines.append(
            f"| {backend} | {size_label(items)} | {len(group)} | {median:.2f} | {round(items / median):,} | "
            f"{middle['cpu_s']} | {max(row['peak_rss_mb'] for row in group)} | "
            f"{middle['rss_10_mb']} / {middle['rss_50_mb']} / {middle['rss_100_mb']} |"
        )
    return "\n".join(lines)


def clean(a: argparse.Namespace) -> None:
    drop_databases(a.pg_url, "prefstack_bench_import_")
    for path in a.workdir.glob("import-*"):
        if path.suffix in (".db", ".jsonl", ".done") or ".db-" in path.name:
            remove_sqlite(path) if ".db" in path.name else path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--pg-url", default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL))
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("gen")
    gen.add_argument("--items", default="100k")
    go = commands.add_parser("run")
    go.add_argument("--backend", default="sqlite,postgresql")
    go.add_argument("--items", default="100k")
    go.add_argument("--repeat", type=int, default=3)
    go.add_argument("--out", type=Path, default=DEFAULT_OUT)
    show = commands.add_parser("table")
    show.add_argument("path", type=Path, nargs="?", default=DEFAULT_OUT)
    commands.add_parser("clean")
    one = commands.add_parser("_one")
    one.add_argument("--url", required=True)
    one.add_argument("--file", type=Path, required=True)
    one.add_argument("--items", type=int, required=True)
    a = parser.parse_args()
    if a.command == "gen":
        generate(data_file(a.workdir, parse_size(a.items)), parse_size(a.items))
    elif a.command == "run":
        run(a)
    elif a.command == "table":
        print(table(a.path))
    elif a.command == "clean":
        clean(a)
    else:
        print(json.dumps(import_once(a.url, a.file, a.items)))


if __name__ == "__main__":
    main()
