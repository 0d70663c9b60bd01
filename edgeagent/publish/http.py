"""HTTP: health, metrics, camera state, snapshots, the operator page, and the live-view routes.

Everything but ``/healthz`` and the page's static files needs the bearer token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import ssl
from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from edgeagent.config import ConfigError, HttpSection
from edgeagent.publish.auth_guard import AuthGuard, Verdict, refusal
from edgeagent.publish.http_limits import ConnectionGuard, address_key
from edgeagent.publish.recordings_http import SIGNED_PREFIX
from edgeagent.unit import CameraUnit

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PUBLIC_PATHS = {"/healthz", "/", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static/", SIGNED_PREFIX)  # signed recording URLs carry their own short-lived signature
MAX_REQUEST_BYTES = 256 * 1024  # SDP offers are a few kB; nothing else takes a body
BODY_TIMEOUT_S = 10.0  # a body must arrive whole within this, before a handler waits on it
BUFFERED_BODY_BYTES = 128 * 1024  # what aiohttp buffers before it stops reading: waited for whole
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}

CAMERAS_KEY: web.AppKey[Mapping[str, CameraUnit]] = web.AppKey("cameras")
AUTH_KEY = web.AppKey("auth", AuthGuard)
CONNECTIONS_KEY: web.AppKey[ConnectionGuard | None] = web.AppKey("connections")
HEALTH_KEY: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("health")
METRICS_KEY: web.AppKey[Callable[[], bytes]] = web.AppKey("metrics")
READY_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")


def load_or_create_token(section: HttpSection, state_dir: Path, configured: SecretStr | None) -> SecretStr:
    """The bearer token read from ``token_file`` (``configured``); without one, a random token made once
    and kept 0600 in ``state_dir``. Its location is logged, never its value."""
    if section.token_file is not None:
        if configured is None or len(configured.get_secret_value()) < 16:
            raise ConfigError(["http.token_file: the token must be at least 16 characters"])
        return configured
    path = state_dir / "http-token"
    if path.exists():
        stored = path.read_text().strip()
        if len(stored) >= 16:
            return SecretStr(stored)
        log.warning("http: %s holds no usable token; making a new one", path)
    state_dir.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(32)
    # Written beside and renamed into place: a full disk leaves no half-written token behind.
    partial = path.with_name(path.name + ".partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(made + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    log.info("http: no token_file configured; made a random API token, stored in %s (mode 0600)", path)
    return SecretStr(made)


async def _body_arrived(request: web.Request) -> bool:
    """Wait (bounded) until a request's body is buffered whole, so no handler waits on a slow sender."""
    length = request.content_length
    if not request.body_exists or (length is not None and length > BUFFERED_BODY_BYTES):
        return True  # none, or refused by its length before it is read
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            await request.content.wait_eof()
    except TimeoutError:
        return False
    return True


@web.middleware
async def _auth_and_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    public = request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)
    auth = request.app[AUTH_KEY]
    result = None if public else auth.check(request.headers.get("Authorization"), address_key(request.remote))
    connections = request.app[CONNECTIONS_KEY]
    if result is not None and result.verdict != Verdict.ALLOWED:
        # Not marked busy: a throttled guesser's connection may be closed to make room for others.
        response: web.StreamResponse = await refusal(result)
    elif not await _body_arrived(request):
        response = web.Response(status=408, text="request body too slow\n")
        response.force_close()
    else:
        with connections.busy(request.transport) if connections is not None else nullcontext():
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # returned as a plain response: aiohttp deprecates returning exc
                response = web.Response(status=exc.status, reason=exc.reason, body=exc.body, headers=exc.headers)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _hide_versions(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "edgeagent"


async def _healthz(request: web.Request) -> web.Response:
    ok = request.app[READY_KEY]()
    return web.Response(status=200 if ok else 503, text="ok\n" if ok else "degraded\n")


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY]()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def _cameras(request: web.Request) -> web.Response:
    return web.json_response(request.app[HEALTH_KEY]())


def _camera(request: web.Request) -> CameraUnit:
    unit = request.app[CAMERAS_KEY].get(request.match_info["camera"])
    if unit is None:
        raise web.HTTPNotFound(text="unknown camera\n")
    return unit


async def _snapshot(request: web.Request) -> web.Response:
    snapshot = await _camera(request).snapshotter.snapshot()
    if snapshot is None:
        raise web.HTTPServiceUnavailable(text="no picture from this camera yet\n", headers={"Retry-After": "2"})
    return web.Response(body=snapshot.jpeg, content_type="image/jpeg")


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html")


def make_app(
    cameras: Mapping[str, CameraUnit],
    token: SecretStr,
    health: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes],
    ready: Callable[[], bool],
    connections: ConnectionGuard | None = None,
    auth: AuthGuard | None = None,
) -> web.Application:
    app = web.Application(middlewares=[_auth_and_headers], client_max_size=MAX_REQUEST_BYTES)
    app[CAMERAS_KEY] = cameras  # the agent's own mapping: a camera added on a reload is served at once
    app[AUTH_KEY] = auth or AuthGuard(token)
    app[CONNECTIONS_KEY] = connections
    app[HEALTH_KEY] = health
    app[METRICS_KEY] = metrics
    app[READY_KEY] = ready
    app.on_response_prepare.append(_hide_versions)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/cameras", _cameras)
    app.router.add_get("/cameras/{camera}/snapshot.jpg", _snapshot)
    if (WEB_DIR / "index.html").exists():
        app.router.add_get("/", _index)
        app.router.add_static("/static/", WEB_DIR, follow_symlinks=False, show_index=False)
    return app


def ssl_context(section: HttpSection) -> ssl.SSLContext | None:
    if section.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(section.tls.cert_file, section.tls.key_file)
    return context
