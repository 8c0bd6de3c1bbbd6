"""Crash safety against a real `prefstack serve`: the short versions of bench/crash.py.

A SIGKILLed server loses no acknowledged judgment and its interrupted leases return to the pool;
a SIGKILLed import leaves nothing behind; on PostgreSQL, the server survives its database
connections being cut and serves again without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import database
from app.principal import command_line_principal
from app.services import accounts, projects
from preference_store.engine import build_engine, session_factory
from preference_store.models import Role
from tests.databases import backend, fresh_database

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from annotate import free_port, prefstack_server, prepare_cell  # noqa: E402
from benchlib import bench_item  # noqa: E402
from crash import item_count, read_offset  # noqa: E402
from soak import Crowd, check  # noqa: E402

pytestmark = pytest.mark.concurrency

PREFSTACK = Path(sys.executable).parent / "prefstack"
SLUG = "crash"
ANNOTATORS = 12
DROP_INS = 6
LEASE = 4
OVERLAP = 3


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int, list[str], list[str]]]:
    """A migrated database with project `crash` (400 items, overlap 3, 4-second leases) and tokens."""
    monkeypatch.setenv("PREFSTACK_ANNOTATION__LEASE_SWEEP_SECONDS", "0.5")
    with fresh_database(tmp_path) as url:
        engine = build_engine(url, pool_size=2)
        database.upgrade(engine)
        operator = command_line_principal()
        rnd = random.Random(7)
        words = ["".join(rnd.choices("abcdefghij", k=rnd.randint(2, 8))) for _ in range(300)]
        source = tmp_path / "items.jsonl"
        source.write_text("".join(json.dumps(bench_item(rnd, words, n)) + "\n" for n in range(1, 401)))
        with session_factory(engine)() as session:
            project_id = projects.create_project(
                session, principal=operator, slug=SLUG, name="Crash", overlap=OVERLAP
            ).id
            accounts.create_user(session, email="seed@example.org", name="Seed", role=Role.ANNOTATOR, password=None)
            projects.add_members(session, principal=operator, slug=SLUG, emails=["seed@example.org"])
        engine.dispose()
        imported = subprocess.run(
            [str(PREFSTACK), "import", SLUG, str(source)], env=_env(url), capture_output=True, text=True, check=False
        )
        assert imported.returncode == 0, imported.stderr
        made = prepare_cell(url, slug=SLUG, have=0, want=ANNOTATORS + DROP_INS, lease_seconds=LEASE)
        tokens = [entry["token"] for entry in made]
        yield url, project_id, tokens[:ANNOTATORS], tokens[ANNOTATORS:]


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFSTACK_DATABASE_URL": url,
        "PREFSTACK_ENVIRONMENT": "development",
        "PREFSTACK_SECRET_KEY": "crash-test-" + "x" * 40,
    }


def _run(coroutine: object) -> None:
    """Run the load on its own thread: the browser tests' Playwright may hold this thread's event loop."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)  # type: ignore[arg-type]
        except BaseException as error:  # re-raised in the test's thread
            failure.append(error)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def test_sigkilled_server_loses_no_acknowledged_judgment(
    seeded: tuple[str, int, list[str], list[str]], tmp_path: Path
) -> None:
    url, project_id, tokens, drop_ins = seeded
    port = free_port()
    serve = {"prefstack": PREFSTACK, "database_url": url, "workers": 1, "cwd": tmp_path, "port": port}
    serve |= {"log_path": tmp_path / "server.log", "secret_key": "crash-test-" + "x" * 40}
    # Annotators hold each task ~0.5 s, so the kill finds leases in hand.
    crowd = Crowd(port=port, slug=SLUG, tokens=tokens, drop_ins=drop_ins, lease=LEASE, think=0.5)
    facts: dict[str, set[int]] = {}
    with ExitStack() as stack:
        server, _ = stack.enter_context(prefstack_server(**serve))  # type: ignore[arg-type]

        async def scenario() -> None:
            load = asyncio.create_task(crowd.run(None))
            await asyncio.sleep(4)
            while len(crowd.ledger.held) < 2:  # the kill must find leases in hand
                await asyncio.sleep(0.01)
            os.killpg(server.pid, signal.SIGKILL)
            held = dict(crowd.ledger.held)
            facts["before"] = set(crowd.ledger.acknowledged)
            facts["interrupted"] = set(held.values())
            crowd.walk_away = set(list(held)[: max(1, len(held) // 2)])  # never back for the items they hold
            facts["abandoned_by_walkers"] = {held[n] for n in crowd.walk_away}
            await asyncio.to_thread(server.wait)
            await asyncio.to_thread(stack.enter_context, prefstack_server(**serve | {"append_log": True}))  # type: ignore[arg-type]
            await asyncio.sleep(4)
            crowd.stopping = True
            await load

        _run(scenario())
        time.sleep(LEASE + 1.5)
        _run(crowd.sweep())

    assert facts["before"], "nothing was acknowledged before the kill: the load did not run"
    assert facts["abandoned_by_walkers"], "the walkers held nothing at the kill"
    assert any(key.startswith("judgment 201") for key in crowd.ledger.statuses)
    checked = check(
        url,
        project_id=project_id,
        overlap=OVERLAP,
        ledger=crowd.ledger,
        acknowledged_before=facts["before"],
        interrupted=facts["interrupted"],
    )
    assert checked["violations"] == dict.fromkeys(checked["violations"], 0), checked
    engine = create_engine(url)
    with engine.connect() as connection:
        for assignment in facts["abandoned_by_walkers"]:
            state = connection.execute(text("SELECT state FROM assignment WHERE id = :a"), {"a": assignment}).scalar()
            assert state == "expired", (assignment, state)
        if backend() == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    engine.dispose()


def test_sigkilled_import_leaves_nothing_behind(seeded: tuple[str, int, list[str], list[str]], tmp_path: Path) -> None:
    url, project_id, _, _ = seeded
    rnd = random.Random(11)
    words = ["".join(rnd.choices("klmnopqrst", k=rnd.randint(2, 8))) for _ in range(300)]
    source = tmp_path / "big.jsonl"
    with source.open("w") as out:
        for n in range(1, 12_001):
            out.write(json.dumps(bench_item(rnd, words, 100_000 + n)) + "\n")
    size = source.stat().st_size
    before = item_count(url, project_id)
    importer = subprocess.Popen(
        [str(PREFSTACK), "import", SLUG, str(source)],
        env=_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    offset, deadline = 0, time.monotonic() + 120
    while importer.poll() is None and offset < size // 2 and time.monotonic() < deadline:
        offset = read_offset(importer.pid, source) or offset
        time.sleep(0.02)
    assert importer.poll() is None, "the import finished before it could be killed: make the file bigger"
    os.killpg(importer.pid, signal.SIGKILL)
    importer.wait()
    assert offset >= size // 2

    assert item_count(url, project_id) == before
    engine = create_engine(url)
    with engine.connect() as connection:
        if backend() == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        else:
            time.sleep(0.5)
            left = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid != pg_backend_pid()"
                )
            ).scalar_one()
            assert left == 0
    engine.dispose()
    small = tmp_path / "small.jsonl"
    small.write_text("".join(source.read_text().splitlines(keepends=True)[:20]))
    again = subprocess.run(
        [str(PREFSTACK), "import", SLUG, str(small)], env=_env(url), capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert item_count(url, project_id) == before + 20


@pytest.mark.skipif(backend() != "postgresql", reason="PostgreSQL connections only")
def test_server_recovers_when_postgres_drops_its_connections(
    seeded: tuple[str, int, list[str], list[str]], tmp_path: Path
) -> None:
    """pg_terminate_backend on every connection of the database mid-load (bench/crash.py pg-restart
    restarts a private cluster instead): calls in flight may fail, none hangs, later ones succeed."""
    url, _, tokens, drop_ins = seeded
    with prefstack_server(
        prefstack=PREFSTACK, database_url=url, workers=1, log_path=tmp_path / "server.log", cwd=tmp_path
    ) as (server, port):
        crowd = Crowd(port=port, slug=SLUG, tokens=tokens, drop_ins=drop_ins, lease=1800, think=0.0)
        crowd.timeline = []
        cut: dict[str, float] = {}
        admin = create_engine(url, isolation_level="AUTOCOMMIT")

        def terminate() -> int:
            with admin.connect() as connection:
                return len(
                    connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid != pg_backend_pid()"
                        )
                    ).all()
                )

        async def scenario() -> None:
            load = asyncio.create_task(crowd.run(None))
            await asyncio.sleep(3)
            cut["at"] = time.perf_counter()
            cut["terminated"] = await asyncio.to_thread(terminate)
            await asyncio.sleep(5)
            crowd.stopping = True
            await load

        _run(scenario())
        admin.dispose()
        assert server.poll() is None, "the server died"
    assert cut["terminated"] > 0
    timeline = crowd.timeline
    assert max(t1 - t0 for t0, t1, *_ in timeline) < 15, "a call hung"
    later = [status for t0, _, _, status, _ in timeline if t0 > cut["at"] + 1.0]
    assert later, "no calls after the cut"
    assert all(status in (200, 201, 204) for status in later), sorted(set(later))
    failed = [status for t0, t1, _, status, _ in timeline if t0 <= cut["at"] + 1.0 <= t1 or status >= 400]
    assert all(status in (0, 500, 503) for status in failed if status not in (200, 201, 204))
