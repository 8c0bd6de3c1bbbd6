"""Fuzz the JSON API (issue 7): schemathesis over /openapi.json against a live `prefstack serve`.

A fresh database (SQLite file or a PostgreSQL database) is migrated and seeded with a lead, an
admin, two annotators with API tokens and a project with items, judgments, a gold answer, an
arbitration case and a calibration round. Every operation of the schema then gets
`--max-examples` generated requests as the lead and as an annotator (path `slug`s pinned to the
seeded project so requests get past the lookup), checked for `not_a_server_error` and
`response_schema_conformance`. The server logs JSON lines to a file: anything it logs at ERROR
(an export job accepted with 202 that then fails in the background, an exception a handler
caught and logged) is a failure too. Prints a summary, appends one JSON line to
bench/results/fuzz.jsonl and exits 1 on any failure.

  .venv/bin/python bench/fuzz.py --backend sqlite --max-examples 50
  .venv/bin/python bench/fuzz.py --backend postgresql --max-examples 25
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import schemathesis
from benchlib import log, pg_database_url, pg_execute, remove_sqlite
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.orm import Session

from app import database
from app.services import accounts
from preference_store.engine import build_engine, session_factory
from preference_store.models import Role

RESULTS = Path(__file__).parent / "results" / "fuzz.jsonl"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SLUG = "fuzz"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed_users(database_url: str) -> dict[str, str]:
    """Users with tokens, made through the services (as the command line would)."""
    engine = build_engine(database_url, pool_size=1)
    database.upgrade(engine)
    tokens = {}
    with session_factory(engine)() as session:
        for who, role in (
            ("lead", Role.LEAD),
            ("admin", Role.ADMIN),
            ("ann1", Role.ANNOTATOR),
            ("ann2", Role.ANNOTATOR),
        ):
            email = f"fuzz-{who}@example.org"
            accounts.create_user(session, email=email, name=who, role=role, password=None, team="Fuzz team")
            tokens[who] = _token(session, email)
    engine.dispose()
    return tokens


def _token(session: Session, email: str) -> str:
    return accounts.create_api_token(session, email=email, name="fuzz").token


def seed_project(base: str, tokens: dict[str, str]) -> None:
    lead = {"Authorization": f"Bearer {tokens['lead']}"}
    with httpx.Client(base_url=base, headers=lead, timeout=30) as http:

        def ok(response: httpx.Response) -> Any:
            if response.status_code >= 400:
                raise SystemExit(f"seeding failed: {response.request.method} {response.url}: {response.text}")
            return response.json() if response.content else None

        ok(http.post("/api/v1/projects", json={"slug": SLUG, "name": "Fuzz", "overlap": 2}))
        ok(
            http.post(
                f"/api/v1/projects/{SLUG}/members", json={"emails": ["fuzz-ann1@example.org", "fuzz-ann2@example.org"]}
            )
        )
        items = [
            {
                "external_id": f"f-{n}",
                "prompt": f"Prompt {n}?",
                "responses": [{"model": "m-a", "content": "Yes."}, {"model": "m-b", "content": "No."}],
                "metadata": {"language": "en", "market": "US", "category": "spam"},
            }
            for n in range(1, 21)
        ]
        ok(http.post(f"/api/v1/projects/{SLUG}/items", content=orjson.dumps(items)))
        for who in ("ann1", "ann2"):
            annotator = {"Authorization": f"Bearer {tokens[who]}"}
            for _ in range(5):
                task = ok(http.get(f"/api/v1/projects/{SLUG}/next", headers=annotator))
                ok(
                    http.post(
                        f"/api/v1/assignments/{task['assignment_id']}/judgment", json={"choice": "A"}, headers=annotator
                    )
                )
        ok(http.put(f"/api/v1/projects/{SLUG}/items/f-20/gold", json={"answer": {"choice": "A"}}))
        ok(http.post(f"/api/v1/projects/{SLUG}/items/f-19/arbitration"))
        round_ = ok(
            http.post(f"/api/v1/projects/{SLUG}/calibration-sessions", json={"name": "R", "teams": ["Fuzz team"]})
        )
        ok(
            http.post(
                f"/api/v1/projects/{SLUG}/calibration-sessions/{round_['id']}/items", json={"external_ids": ["f-18"]}
            )
        )


def run_operation(operation: Any, base: str, headers: dict[str, str], *, max_examples: int, seed_value: int) -> int:
    """Generated requests for one operation and caller; raises the first failure. Returns the requests made."""
    counted: list[int] = []

    @seed(seed_value)
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        if case.path_parameters and "slug" in case.path_parameters:
            case.path_parameters["slug"] = SLUG
        counted.append(1)
        response = case.call(base_url=base, headers=headers)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    check()
    return len(counted)


def fuzz(base: str, tokens: dict[str, str], *, max_examples: int, seed_value: int) -> dict[str, Any]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[dict[str, str]] = []
    operations = calls = 0
    callers = {"lead": tokens["lead"], "annotator": tokens["ann1"]}
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # a part of the schema that does not resolve
            raise result.err()
        operation = result.ok()
        operations += 1
        for name, token in callers.items():
            try:
                calls += run_operation(
                    operation,
                    base,
                    {"Authorization": f"Bearer {token}"},
                    max_examples=max_examples,
                    seed_value=seed_value,
                )
            except Exception as error:
                failures.append({"operation": operation.label, "caller": name, "error": str(error)[:2000]})
                log(f"FAIL {operation.label} as {name}: {str(error).splitlines()[0][:200]}")
    return {"operations": operations, "requests": calls, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--max-examples", type=int, default=25, help="Generated requests per operation and caller.")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--port", type=int, default=0, help="Server port (default: a free one).")
    parser.add_argument("--pg-url", default=os.environ.get("PREFSTACK_BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="prefstack-fuzz-"))
    pg_database = f"prefstack_fuzz_{os.getpid()}"
    if args.backend == "sqlite":
        database_url = f"sqlite:///{workdir / 'fuzz.db'}"
    else:
        pg_execute(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_database}"', f'CREATE DATABASE "{pg_database}"')
        database_url = pg_database_url(args.pg_url, pg_database)
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PREFSTACK_ENVIRONMENT": "test",
        "PREFSTACK_DATABASE_URL": database_url,
        "PREFSTACK_SECRET_KEY": "fuzz-secret-key-0123456789abcdef0123",
        "PREFSTACK_EXPORTS__DIRECTORY": str(workdir / "exports"),
        "PREFSTACK_UPLOADS__DIRECTORY": str(workdir / "uploads"),
        "PREFSTACK_LOG__LEVEL": "WARNING",
        "PREFSTACK_LOG__FORMAT": "json",
    }
    server_log = workdir / "server.log"
    server: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    try:
        os.environ.update({key: env[key] for key in ("PREFSTACK_ENVIRONMENT", "PREFSTACK_DATABASE_URL")})
        tokens = seed_users(database_url)
        prefstack = Path(sys.executable).parent / "prefstack"
        with server_log.open("wb") as log_file:
            server = subprocess.Popen(
                [str(prefstack), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                tail = "\n".join(server_log.read_text(errors="replace").splitlines()[-20:])
                raise SystemExit(f"the server did not start; its log ends:\n{tail}")
            time.sleep(0.2)
        seed_project(base, tokens)
        log(f"fuzzing {base} ({args.backend}), {args.max_examples} examples per operation and caller")
        outcome = fuzz(base, tokens, max_examples=args.max_examples, seed_value=args.seed)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        if args.backend == "postgresql":
            pg_execute(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_database}"')
        else:
            remove_sqlite(workdir / "fuzz.db")
    logged_errors = errors_logged(server_log)
    for entry in logged_errors:
        log(f"FAIL the server logged an error: {entry['logger']}: {entry['message'][:200]}")
    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "max_examples": args.max_examples,
        "seed": args.seed,
        "operations": outcome["operations"],
        "requests": outcome["requests"],
        "failures": len(outcome["failures"]),
        "failed_operations": sorted({f"{item['operation']} ({item['caller']})" for item in outcome["failures"]}),
        "errors_logged": len(logged_errors),
        "seconds": round(time.monotonic() - started, 1),
        "schemathesis": schemathesis.__version__,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        results.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=2))
    return 1 if outcome["failures"] or logged_errors else 0


def errors_logged(path: Path) -> list[dict[str, Any]]:
    """The server's JSON log entries at ERROR or above (lines that are not JSON are uvicorn's own)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            entries.append(entry)
    return entries


if __name__ == "__main__":
    sys.exit(main())
