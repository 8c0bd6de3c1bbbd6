"""Refuse oversized request bodies (413) before they are read whole.

Bulk endpoints (imports, verdicts, gold lists, the upload page) may take up to
`annotation.max_upload_mb`; every other request up to `annotation.max_request_kb`. The
declared `Content-Length` is checked first; chunked bodies are counted as they arrive.
"""

from __future__ import annotations

import re
from typing import Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BULK_PATHS: Final = re.compile(
    r"^(?:/api/v1/projects/[^/]+/(?:items|verdicts|gold)|/projects/[^/]+/import)/?$",
)


class BodyLimit:
    """Pure ASGI middleware: a 413 as soon as a body is known to exceed its path's limit."""

    def __init__(self, app: ASGIApp, *, default_bytes: int, bulk_bytes: int) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.bulk_bytes = bulk_bytes

    def limit_for(self, path: str) -> int:
        return self.bulk_bytes if BULK_PATHS.match(path) else self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit, html=not scope["path"].startswith("/api/"))
            return
        received = 0
        response_started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not response_started:
                    # Answer now and tell the app the client left: parsers that wrap
                    # errors (form bodies become a 400) cannot turn this into another answer.
                    refused = True
                    await _refuse(send, limit, html=not scope["path"].startswith("/api/"))
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int, *, html: bool) -> None:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    message = f"The request body is larger than {size}."
    if html:
        # Pages get a page: a browser without JavaScript would otherwise show raw JSON.
        body = (
            '<!doctype html><html lang="en"><meta charset="utf-8"><title>Too large</title>'
            f"<h1>413: too large</h1><p>{message} Go back and choose a smaller file.</p></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        error = {"code": "payload_too_large", "message": message, "field": None, "row": None}
        body = orjson.dumps({"error": error})
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
