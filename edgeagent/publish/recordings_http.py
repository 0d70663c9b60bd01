"""HTTP routes for recordings: what was recorded, bookmarks, clips, signed exports, locks, the signing key.

Every route checks the bearer token itself (``authorized``, the HTTP server's check) as well as behind
the server's middleware, except ``/recordings-signed/...``: those URLs carry a short-lived signature instead
(see ``signed_urls``), for the browser's ``<video>`` and download links; the server must list
``SIGNED_PREFIX`` among its public prefixes. Times are RFC 3339 with a time zone; answers in UTC.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from edgeagent.http_body import read_bounded
from edgeagent.publish.signed_urls import SignedUrls
from edgeagent.publish.thread_stream import StreamCounts, one_line, stream_from_thread
from edgeagent.record.bookmark_table import MAX_BOOKMARKS
from edgeagent.record.bookmarks import bookmark_json
from edgeagent.record.clip import ClipError, ClipPlan, ClipSettings, plan_clip, write_clip
from edgeagent.record.export import write_export
from edgeagent.record.growing import not_recorded_yet, readable, with_growing
from edgeagent.record.model import Bookmark, Gap, Lock, Segment
from edgeagent.record.signing import public_pem
from edgeagent.record.times import TimeRangeError, parse_range, rfc3339

SIGNED_PREFIX = "/recordings-signed/"
MAX_BODY_BYTES = 4096
LOCK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RecordingsHttpSettings(BaseModel):
    """Limits of the recordings API (a config section the agent may expose, e.g. ``recording.http``)."""

    model_config = ConfigDict(extra="forbid")
    max_clip_s: float = Field(default=3600.0, gt=0, le=24 * 3600,
                              description="longest clip or export one request may ask for, in seconds (413 beyond)")
    max_list_s: float = Field(default=7 * 86400.0, gt=0,
                              description="longest range one listing of recordings may cover, in seconds")
    max_lock_s: float = Field(default=90 * 86400.0, gt=0, description="longest range one lock may cover, in seconds")
    signed_url_ttl_s: float = Field(default=60.0, gt=0, le=3600,
                                    description="how long a signed clip or export URL for the browser stays valid")
    max_concurrent_clips: int = Field(default=4, ge=1,
                                      description="clips and exports cut at once; more get 503 with Retry-After")


class Index(Protocol):
    """What these routes need of the recording index (``edgeagent.record.index.RecordingIndex``)."""

    def segments(self, camera: str, start: datetime, end: datetime) -> list[Segment]: ...
    def gaps(self, camera: str, start: datetime, end: datetime) -> list[Gap]: ...
    def spans(self, camera: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]: ...
    def add_lock(self, camera: str, start: datetime, end: datetime, reason: str) -> Lock: ...
    def locks(self, camera: str) -> list[Lock]: ...
    def remove_lock(self, lock_id: str) -> Any: ...
    def bookmarks(self, camera: str, start: datetime, end: datetime, limit: int) -> list[Bookmark]: ...


class ExportKeeper(Protocol):
    """Keeps a copy of an export for object storage (``edgeagent.offload.exports.ExportSpool``)."""

    def wrap(self, name: str, job: Callable[[Any], object], expected_bytes: int = 0) -> Callable[[Any], object]: ...


class Refused(Exception):
    """A request answered with ``status`` and one line saying why."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def bearer_check(token: SecretStr) -> Callable[[web.Request], bool]:
    """The check the HTTP server makes, for these routes to make it again themselves."""
    expected = token.get_secret_value().encode()

    def authorized(request: web.Request) -> bool:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(presented) and hmac.compare_digest(presented.strip().encode(),
                                                                                       expected)
    return authorized


def export_name(agent_id: str, plan: ClipPlan) -> str:
    """The export's name in object storage: the same video (camera and actual range) is kept once."""
    return f"{agent_id}-{plan.camera}-{plan.start:%Y%m%dT%H%M%S.%fZ}-{plan.end:%Y%m%dT%H%M%S.%fZ}.zip"


def lock_json(lock: Lock) -> dict[str, Any]:
    return {"id": lock.id, "camera": lock.camera, "start": rfc3339(lock.start), "end": rfc3339(lock.end),
            "reason": lock.reason, "created": rfc3339(lock.created)}


class RecordingRoutes:
    def __init__(self, index: Index, cameras: Collection[str], key: Ed25519PrivateKey, agent_id: str,
                 authorized: Callable[[web.Request], bool], settings: RecordingsHttpSettings | None = None,
                 growing: Callable[[str], Segment | None] | None = None, exports: ExportKeeper | None = None) -> None:
        self.index, self.cameras, self.key, self.agent_id = index, set(cameras), key, agent_id
        self.authorized = authorized
        # The segment each camera is writing, up to its last whole fragment (``Recorder.growing``), and
        # where exports are kept for offload; neither when the agent has no recorder or no offload.
        self.growing = growing or (lambda camera: None)
        self.exports = exports
        self.settings = settings or RecordingsHttpSettings()
        self.clip_settings = ClipSettings(max_seconds=self.settings.max_clip_s)
        self.urls = SignedUrls(self.settings.signed_url_ttl_s)
        self.streams = 0
        self.counts = StreamCounts()

    # -- guards ------------------------------------------------------------------------------------

    def _camera(self, request: web.Request) -> str:
        camera = request.match_info["camera"]
        if camera not in self.cameras:
            raise Refused("unknown camera", status=404)
        return camera

    @staticmethod
    def guarded(handler: Callable[..., Any], *, signed: bool = False) -> Callable[..., Any]:
        async def run(self: RecordingRoutes, request: web.Request) -> web.StreamResponse:
            if not signed and not self.authorized(request):
                return web.Response(status=401, text="unauthorized\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="edgeagent"'})
            try:
                return await handler(self, request)
            except (Refused, TimeRangeError, ClipError) as exc:
                return one_line(exc.status, str(exc))
        return run

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise Refused(f"body is larger than {MAX_BODY_BYTES} bytes", status=413)
        raw = await read_bounded(request.content, MAX_BODY_BYTES)
        if len(raw) > MAX_BODY_BYTES:
            raise Refused(f"body is larger than {MAX_BODY_BYTES} bytes", status=413)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise Refused("body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused("body must be a JSON object")
        return body

    # -- listing, clips, exports -------------------------------------------------------------------

    async def listing(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        start, end = parse_range(request.query.get("start"), request.query.get("end"), self.settings.max_list_s)
        # ``segments=no``: spans and gaps only (the page's timeline polls them; a day is 1440 segments).
        with_segments = request.query.get("segments", "yes") != "no"
        growing = self.growing(camera)  # before the index: see edgeagent.record.growing
        closed = await asyncio.to_thread(self.index.segments, camera, start, end) if with_segments else []
        gaps = await asyncio.to_thread(self.index.gaps, camera, start, end)
        spans, open_span = with_growing(await asyncio.to_thread(self.index.spans, camera, start, end), growing,
                                        start, end)
        body: dict[str, Any] = {
            "camera": camera, "start": rfc3339(start), "end": rfc3339(end),
            "spans": [{"start": rfc3339(a), "end": rfc3339(b), **({"open": True} if i == open_span else {})}
                      for i, (a, b) in enumerate(spans)],
            "gaps": [{"start": rfc3339(g.start), "end": rfc3339(g.end), "reason": g.reason.value} for g in gaps],
        }  # fmt: skip
        if with_segments:
            # The one being written: up to its last whole fragment, its SHA-256 not known until it is closed.
            body["segments"] = [{"start": rfc3339(s.start), "end": rfc3339(s.end), "bytes": s.bytes,
                                 **({"sha256": None, "open": True} if s.open else {"sha256": s.sha256})}
                                for s in readable(closed, growing, start, end)]  # fmt: skip
        return web.json_response(body)

    async def list_bookmarks(self, request: web.Request) -> web.Response:
        """At most MAX_BOOKMARKS, oldest first; ``truncated`` says there are more (ask again from the last)."""
        camera = self._camera(request)
        start, end = parse_range(request.query.get("start"), request.query.get("end"), self.settings.max_list_s)
        found = await asyncio.to_thread(self.index.bookmarks, camera, start, end, MAX_BOOKMARKS + 1)
        return web.json_response({"camera": camera, "start": rfc3339(start), "end": rfc3339(end),
                                  "bookmarks": [bookmark_json(b) for b in found[:MAX_BOOKMARKS]],
                                  "truncated": len(found) > MAX_BOOKMARKS})  # fmt: skip

    async def _plan(self, camera: str, start: datetime, end: datetime) -> ClipPlan:
        growing = self.growing(camera)  # before the index: see edgeagent.record.growing
        # Segments begin on a keyframe: the one overlapping ``start`` holds the keyframe at or before it.
        closed = await asyncio.to_thread(self.index.segments, camera, start, end)
        if (why := not_recorded_yet(closed, growing, start)) is not None:
            raise Refused(why, status=416)
        return plan_clip(camera, readable(closed, growing, start, end), start, end, self.clip_settings)

    async def _send(self, request: web.Request, camera: str, start: datetime, end: datetime, export: bool
                    ) -> web.StreamResponse:
        if (end - start).total_seconds() > self.settings.max_clip_s:
            raise Refused(f"a clip may be at most {self.settings.max_clip_s:g} s long", status=413)
        plan = await self._plan(camera, start, end)
        marks = (await asyncio.to_thread(self.index.bookmarks, camera, plan.start, plan.end, MAX_BOOKMARKS)
                 if export else [])  # an export signs the range's bookmarks into its manifest
        if self.streams >= self.settings.max_concurrent_clips:
            return web.Response(status=503, text="too many clips being cut; try again shortly\n",
                                headers={"Retry-After": "5"})
        stamp = plan.start.strftime("%Y%m%dT%H%M%SZ")
        if export:
            job: Callable[[Any], object] = partial(write_export, plan, key=self.key, agent_id=self.agent_id,
                                                   bookmarks=marks)
            if self.exports is not None:  # also kept, once, for object storage
                job = self.exports.wrap(export_name(self.agent_id, plan), job, plan.expected_bytes())
            headers = {"Content-Type": "application/zip",
                       "Content-Disposition": f'attachment; filename="{self.agent_id}-{camera}-{stamp}.zip"'}
        else:
            job = partial(write_clip, plan)
            headers = {"Content-Type": "video/mp4",
                       "Content-Disposition": f'inline; filename="{camera}-{stamp}.mp4"'}
        headers.update({"Cache-Control": "no-store", "X-Actual-Start": rfc3339(plan.start),
                        "X-Actual-End": rfc3339(plan.end)})
        self.streams += 1
        try:
            return await stream_from_thread(request, job, headers, self.counts)
        finally:
            self.streams -= 1

    async def clip(self, request: web.Request) -> web.StreamResponse:
        camera = self._camera(request)
        start, end = parse_range(request.query.get("start"), request.query.get("end"), self.settings.max_clip_s)
        return await self._send(request, camera, start, end, export=False)

    async def export(self, request: web.Request) -> web.StreamResponse:
        camera = self._camera(request)
        start, end = parse_range(request.query.get("start"), request.query.get("end"), self.settings.max_clip_s)
        return await self._send(request, camera, start, end, export=True)

    async def signed_url(self, request: web.Request, purpose: str) -> web.Response:
        camera = self._camera(request)
        query = request.query
        parse_range(query.get("start"), query.get("end"), self.settings.max_clip_s)
        signed, expires = self.urls.query(purpose, camera, query["start"], query["end"])
        url = f"{SIGNED_PREFIX}{camera}/{purpose}.{'zip' if purpose == 'export' else 'mp4'}?{signed}"
        return web.json_response({"url": url, "expires": rfc3339(datetime.fromtimestamp(expires, UTC))})

    async def signed(self, request: web.Request) -> web.StreamResponse:
        """No bearer token here: the signature is checked before anything else is looked at, so a stranger
        learns nothing (not even which cameras exist)."""
        camera, purpose = request.match_info["camera"], request.match_info["purpose"]
        query = request.query
        start_text, end_text = query.get("start", ""), query.get("end", "")
        why = self.urls.check(purpose, camera, start_text, end_text, query.get("expires", ""), query.get("sig", ""))
        if why is not None:
            return web.Response(status=403, text=why + "\n")
        if (purpose, request.match_info["ext"]) not in {("clip", "mp4"), ("export", "zip")}:
            raise Refused("not found", status=404)
        camera = self._camera(request)
        start, end = parse_range(start_text, end_text, self.settings.max_clip_s)
        return await self._send(request, camera, start, end, export=purpose == "export")

    # -- locks and the key -------------------------------------------------------------------------

    async def add_lock(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        body = await self._body(request)
        start_text, end_text, reason = body.get("start"), body.get("end"), body.get("reason", "")
        if not all(isinstance(v, str) for v in (start_text, end_text, reason)):
            raise Refused("start, end and reason must be strings")
        start, end = parse_range(start_text, end_text, self.settings.max_lock_s)
        reason = reason.strip()
        if not 1 <= len(reason) <= 200 or not reason.isprintable():
            raise Refused("reason must be 1 to 200 printable characters")
        lock = await asyncio.to_thread(self.index.add_lock, camera, start, end, reason)
        return web.json_response(lock_json(lock), status=201)

    async def list_locks(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        locks = await asyncio.to_thread(self.index.locks, camera)
        return web.json_response({"camera": camera, "locks": [lock_json(lock) for lock in locks]})

    async def remove_lock(self, request: web.Request) -> web.Response:
        lock_id = request.match_info["lock_id"]
        if not LOCK_ID.match(lock_id):
            raise Refused("malformed lock id")
        removed = await asyncio.to_thread(self.index.remove_lock, lock_id)
        if removed is False:
            raise Refused("no such lock", status=404)
        return web.json_response({"removed": lock_id})

    async def signing_key(self, request: web.Request) -> web.Response:
        return web.Response(body=public_pem(self.key.public_key()), content_type="application/x-pem-file")


def add_routes(app: web.Application, routes: RecordingRoutes) -> None:
    g = RecordingRoutes.guarded

    def bind(handler: Callable[..., Any], signed: bool = False) -> Callable[[web.Request], Any]:
        return partial(g(handler, signed=signed), routes)

    app.router.add_get("/signing-key", bind(RecordingRoutes.signing_key))
    app.router.add_delete("/recordings/locks/{lock_id}", bind(RecordingRoutes.remove_lock))
    app.router.add_get("/recordings/{camera}", bind(RecordingRoutes.listing))
    app.router.add_get("/recordings/{camera}/bookmarks", bind(RecordingRoutes.list_bookmarks))
    app.router.add_get("/recordings/{camera}/clip.mp4", bind(RecordingRoutes.clip))
    app.router.add_get("/recordings/{camera}/export.zip", bind(RecordingRoutes.export))
    app.router.add_post("/recordings/{camera}/clip-url",
                        bind(partial(RecordingRoutes.signed_url, purpose="clip")))
    app.router.add_post("/recordings/{camera}/export-url",
                        bind(partial(RecordingRoutes.signed_url, purpose="export")))
    app.router.add_get("/recordings/{camera}/locks", bind(RecordingRoutes.list_locks))
    app.router.add_post("/recordings/{camera}/locks", bind(RecordingRoutes.add_lock))
    app.router.add_get(SIGNED_PREFIX + "{camera}/{purpose:clip|export}.{ext:mp4|zip}",
                       bind(RecordingRoutes.signed, signed=True))
