"""A project whose every stored text is hostile, seeded over HTTP (a TestClient or a live server's client)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy.orm import Session

from app.services import accounts
from preference_store.models import Role
from tests.security.xss_corpus import PAYLOADS, SHORT, TEXT

QUESTION = "\n".join(PAYLOADS[:20])


class Http(Protocol):
    def request(self, method: str, url: str, **kwargs: Any) -> Any: ...


@dataclass
class HostileWorld:
    """Who is who, and every page that shows hostile text, per viewer."""

    slug: str
    tokens: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    pages: dict[str, list[str]] = field(default_factory=dict)


def _call(http: Http, method: str, url: str, token: str, **kwargs: Any) -> Any:
    response = http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert response.status_code < 400, f"{method} {url}: {response.status_code} {response.text[:500]}"
    return response


def _item(external_id: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "prompt": TEXT,
        "responses": [{"model": SHORT[0], "content": TEXT}, {"model": "m-b", "content": TEXT}],
        "metadata": {"language": "th", "market": SHORT[1], "category": SHORT[2], "note": SHORT[3]},
    }


def seed_hostile(http: Any, session: Session, *, tag: str) -> HostileWorld:
    """Users, a project, judgments, gold, cases, a revealed calibration round, questions, an export, an upload."""
    slug = f"xss-{tag}"
    world = HostileWorld(slug=slug)
    team = f"{SHORT[0]} {tag}"
    for who, role in (("lead", Role.LEAD), ("admin", Role.ADMIN), ("owner", Role.ANNOTATOR), ("peer", Role.ANNOTATOR)):
        email = f"xss-{who}-{tag}@example.org"
        name = f"{SHORT[1 + len(who) % 4]} {who}"
        accounts.create_user(
            session, email=email, name=name, role=role, password=None, team=team if role is Role.ANNOTATOR else None
        )
        world.emails[who] = email
        world.tokens[who] = accounts.create_api_token(session, email=email).token
    lead, owner = world.tokens["lead"], world.tokens["owner"]
    api = f"/api/v1/projects/{slug}"

    _call(
        http,
        "POST",
        "/api/v1/projects",
        lead,
        json={"slug": slug, "name": " ".join(SHORT), "overlap": 2, "rewrite": True},
    )
    _call(http, "PUT", f"{api}/guidelines", lead, json={"text": TEXT, "note": SHORT[0]})
    _call(http, "POST", f"{api}/members", lead, json={"emails": [world.emails["owner"], world.emails["peer"]]})
    items = [_item(f"x-{n}") for n in range(1, 7)]
    _call(http, "POST", f"{api}/items", lead, content=orjson.dumps(items))

    task = _call(http, "GET", f"{api}/next", owner).json()
    judgment = {"choice": "A", "rationale": TEXT, "rewrite": TEXT}
    judged = _call(http, "POST", f"/api/v1/assignments/{task['assignment_id']}/judgment", owner, json=judgment).json()
    judged_item = task["item"]["external_id"]
    peer_task = _call(http, "GET", f"{api}/next", world.tokens["peer"]).json()
    _call(http, "POST", f"/api/v1/assignments/{peer_task['assignment_id']}/judgment", world.tokens["peer"],
          json={"choice": "B", "rationale": TEXT})  # fmt: skip
    _call(http, "GET", f"{api}/next", owner)  # an open task on the annotate page

    _call(http, "PUT", f"{api}/items/x-6/gold", lead, json={"answer": {"choice": "A"}, "explanation": TEXT})
    resolved = _call(http, "POST", f"{api}/items/x-5/arbitration", lead).json()["case_id"]
    _call(http, "POST", f"{api}/arbitration/{resolved}/verdict", lead, json={"choice": "B", "rationale": TEXT})
    still_open = _call(http, "POST", f"{api}/items/{judged_item}/arbitration", lead).json()["case_id"]

    calibration = _call(
        http, "POST", f"{api}/calibration-sessions", lead, json={"name": SHORT[0], "notes": TEXT, "teams": [team]}
    ).json()["id"]
    base = f"{api}/calibration-sessions/{calibration}"
    _call(http, "POST", f"{base}/items", lead, json={"external_ids": ["x-4"]})
    calibration_item = _call(http, "GET", f"{base}/my-items", owner).json()["calibration_item_id"]
    _call(http, "PUT", f"{base}/items/{calibration_item}/answer", owner, json={"choice": "A", "rationale": TEXT})
    _call(http, "POST", f"{base}/reveal", lead)
    _call(http, "PUT", f"{base}/items/{calibration_item}/agreed", lead, json={"choice": "A", "note": TEXT})

    asked = _call(http, "POST", f"{api}/clarifications", owner, json={"question": QUESTION, "external_id": "x-1"})
    _call(http, "POST", f"{api}/clarifications/{asked.json()['id']}/answer", lead, json={"answer": TEXT})
    _call(http, "POST", f"{api}/clarifications", owner, json={"question": QUESTION})

    job = _call(http, "POST", f"{api}/exports", lead, json={"kind": "dpo", "provenance": True}).json()["id"]
    rows = b"\n".join(orjson.dumps(_item(f"up-{n}")) for n in range(3)) + b"\n" + TEXT.encode()[:300] + b"\n"
    upload = http.request(
        "POST",
        f"/projects/{slug}/import",
        headers={"Authorization": f"Bearer {lead}"},
        files={"file": (f"{SHORT[0]}.jsonl", io.BytesIO(rows), "application/json")},
        data={"format": "auto", "on_error": "skip"},
        follow_redirects=False,
    )
    assert upload.status_code in (200, 303), upload.text[:500]
    found = re.search(rf"/projects/{slug}/import/([A-Za-z0-9_-]+)", upload.headers.get("location") or upload.text)
    assert found is not None, upload.text[:500]
    token = found.group(1)

    pages = f"/projects/{slug}"
    world.pages["lead"] = [
        "/",
        f"{pages}/items",
        f"{pages}/items/{judged_item}",
        f"{pages}/items/x-6",
        f"{pages}/quality",
        f"{pages}/quality/annotators",
        f"{pages}/quality/teams",
        f"{pages}/quality/gaps",
        f"{pages}/quality/judges",
        f"{pages}/leaderboard",
        "/quality/trends",
        f"{pages}/arbitration",
        f"{pages}/arbitration/{resolved}",
        f"{pages}/arbitration/{still_open}",
        f"{pages}/calibration",
        f"{pages}/calibration/{calibration}",
        f"{pages}/calibration/{calibration}/items/{calibration_item}/agree",
        f"{pages}/clarifications",
        f"{pages}/exports",
        f"{pages}/exports/{job}/card",
        f"{pages}/import/{token}",
        f"{pages}/gold-card?item=x-6",
        "/notifications",
    ]
    world.pages["owner"] = [
        "/",
        f"{pages}/annotate",
        f"{pages}/recent",
        f"/projects/{slug}/judgments/{judged['judgment_id']}",
        f"{pages}/clarifications/panel",
        f"{pages}/clarifications/answers",
        f"{pages}/calibration/{calibration}/task",
    ]
    return world
