"""Security headers on every response (CSP, nosniff, referrer policy, no framing), and the request's origin.

Pages load only their own scripts (htmx and ours are vendored; the one inline `<script>` kind
is `application/json` data, which CSP does not run), so `script-src 'self'` holds. Inline
style attributes stay allowed: templates draw bars and heat cells with them, and the markdown
sanitizer drops `style` from stored text. FastAPI's `/docs` and `/redoc` load Swagger UI and
ReDoc from a CDN with an inline script, so they get no CSP (they show no stored text).
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import request_id_var
from app.services import audit

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCUMENTATION_PATHS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
HSTS: Final = "max-age=31536000; includeSubDomains"


def _headers(path: str, *, https: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]
    if path not in DOCUMENTATION_PATHS:
        headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")))
    if https:
        headers.append((b"strict-transport-security", HSTS.encode("ascii")))
    return headers


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers above unless the app already set one of them.

    It also hands the request id and client address to `app.services.audit` for the audit log.
    """

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _headers(scope["path"], https=self.https)
        # The audit log notes which request and address an action came from.
        client = scope.get("client")
        origin = audit.request_origin.set((request_id_var.get(), client[0] if client else None))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers.extend((name, value) for name, value in extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            audit.request_origin.reset(origin)
