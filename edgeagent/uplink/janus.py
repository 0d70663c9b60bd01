"""Janus VideoRoom through Janus's HTTP API: one session, one handle, one publisher.

``publish`` creates a session, attaches ``janus.plugin.videoroom``, makes the room (H.264) when it does
not exist, joins it as a publisher and sends the offer with ``publish``; the answer and every other event
arrive by long poll (``GET /janus/<session>``), which also keeps the session alive in Janus. A long poll
or a keepalive answered with "no such session" (458), or a server that cannot be reached, sets ``lost``:
Janus was restarted or let the session expire, and the publisher publishes again. Every request carries
the ``api_secret`` when one is configured, and every request is bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

import aiohttp
from pydantic import SecretStr

from edgeagent.http_body import read_bounded
from edgeagent.uplink.signaling import SignalingError, SignalingLost, SignalingUnreachable

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
NO_SUCH_SESSION = 458
NO_SUCH_ROOM = 426
POLL_HOLD_S = 30  # Janus answers a long poll with a keepalive after 30 s without events
MAX_RESPONSE_BYTES = 256 * 1024


class JanusVideoRoom:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        room: int,
        display: str,
        api_secret: SecretStr | None = None,
        timeout_s: float = 10,
    ) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.room = room
        self.display = display
        self.api_secret = api_secret
        self.timeout_s = timeout_s
        self.session_id: int | None = None
        self.handle_id: int | None = None
        self.publisher_id: int | None = None
        self.lost = asyncio.Event()
        self.events: list[str] = []  # the plugin's and Janus's asynchronous events, latest last (bounded)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None

    # -- requests ---------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any], transaction: str | None = None) -> dict[str, Any]:
        body = {**body, "transaction": transaction or secrets.token_hex(8)}
        if self.api_secret is not None:
            body["apisecret"] = self.api_secret.get_secret_value()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self.http.post(self.url + path, json=body, timeout=timeout) as response:
                if response.status != 200:
                    raise SignalingError(f"janus: HTTP {response.status} for {body['janus']}")
                answer = await _json(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SignalingUnreachable(f"janus: {body['janus']} failed: {self._redacted(exc)}") from None
        return _checked(answer)

    def _redacted(self, exc: BaseException) -> str:
        """``exc`` as one line; the long poll's URL carries the api_secret, which must not reach a log."""
        text = f"{type(exc).__name__}: {exc}"[:300]
        if self.api_secret is not None and self.api_secret.get_secret_value():
            text = text.replace(self.api_secret.get_secret_value(), "<api_secret>")
        return text

    async def request(self, request: dict[str, Any], jsep: dict[str, str] | None = None) -> dict[str, Any]:
        """A VideoRoom request; an asynchronous one ("ack") is answered by an event with its transaction."""
        assert self.session_id is not None and self.handle_id is not None
        body: dict[str, Any] = {"janus": "message", "body": request}
        if jsep is not None:
            body["jsep"] = jsep
        transaction = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        try:
            answer = await self._post(f"/{self.session_id}/{self.handle_id}", body, transaction)
            if answer.get("janus") == "ack":
                answer = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            what = f"janus: no answer to {request['request']} within {self.timeout_s:g} s"
            raise SignalingUnreachable(what) from None
        finally:
            self._waiting.pop(transaction, None)
        data = answer.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise SignalingError(f"janus: {request['request']}: {data.get('error_code')} {str(data['error'])[:200]}")
        return answer

    # -- the long poll ----------------------------------------------------------------------------

    async def _poll(self) -> None:
        params = {"maxev": "10"}
        if self.api_secret is not None:
            params["apisecret"] = self.api_secret.get_secret_value()
        timeout = aiohttp.ClientTimeout(total=POLL_HOLD_S + self.timeout_s)
        while not self.lost.is_set():
            try:
                async with self.http.get(f"{self.url}/{self.session_id}", params=params, timeout=timeout) as response:
                    answer = await _json(response)
            except (aiohttp.ClientError, TimeoutError, SignalingError) as exc:
                self._lose(f"long poll failed: {self._redacted(exc)}")
                return
            for event in answer if isinstance(answer, list) else [answer]:
                self._dispatch(event)

    def _dispatch(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("janus")
        if kind == "error":
            code = event.get("error", {}).get("code")
            if code == NO_SUCH_SESSION:
                self._lose("the session is gone (Janus restarted or it expired)")
            return
        if kind == "keepalive":
            return
        future = self._waiting.get(str(event.get("transaction")))
        if future is not None and not future.done():
            future.set_result(event)
            return
        data = event.get("plugindata", {}).get("data", {})
        note = str(data.get("videoroom") or kind)
        self.events = [*self.events[-31:], note]
        if kind == "hangup" or data.get("unpublished") == "ok" or data.get("leaving") == "ok":
            self._lose(f"janus ended the publication ({kind}: {str(event.get('reason', ''))[:100]})")

    def _lose(self, why: str) -> None:
        if not self.lost.is_set():
            log.info("uplink: janus session %s lost: %s", self.session_id, why)
            self.lost.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(SignalingLost(f"janus: {why}"))

    # -- the interface ----------------------------------------------------------------------------

    async def open(self) -> None:
        """A session with its long poll, and a handle on the VideoRoom plugin."""
        created = await self._post("", {"janus": "create"})
        self.session_id = int(created["data"]["id"])
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name=f"janus-poll-{self.session_id}")
        attached = await self._post(f"/{self.session_id}", {"janus": "attach", "plugin": PLUGIN})
        self.handle_id = int(attached["data"]["id"])

    async def publish(self, offer_sdp: str) -> str:
        await self.open()
        exists = await self.request({"request": "exists", "room": self.room})
        if not exists.get("plugindata", {}).get("data", {}).get("exists"):
            await self._create_room()
        joined = await self.request(
            {"request": "join", "ptype": "publisher", "room": self.room, "display": self.display}
        )
        self.publisher_id = int(joined["plugindata"]["data"]["id"])
        published = await self.request(
            {"request": "publish", "audio": False, "video": True, "display": self.display},
            jsep={"type": "offer", "sdp": offer_sdp},
        )
        answer = published.get("jsep", {})
        if answer.get("type") != "answer" or not isinstance(answer.get("sdp"), str):
            raise SignalingError("janus: publish was not answered with an SDP answer")
        return str(answer["sdp"])

    async def _create_room(self) -> None:
        request = {
            "request": "create",
            "room": self.room,
            "description": "edgeagent uplink",
            "videocodec": "h264",
            "publishers": 64,
            "permanent": False,
        }
        try:
            await self.request(request)
        except SignalingError as exc:
            if "already exists" not in str(exc):  # another cabinet made it meanwhile
                raise

    async def keepalive(self) -> None:
        if self.lost.is_set():
            raise SignalingLost("janus: the session is gone")
        try:
            await self._post(f"/{self.session_id}", {"janus": "keepalive"})
        except SignalingError as exc:
            self._lose(str(exc))
            if isinstance(exc, SignalingLost):
                raise  # unreachable stays unreachable
            raise SignalingLost(str(exc)) from None

    async def unpublish(self) -> None:
        """Leave the room and destroy the session (best effort: a gone Janus has nothing to end)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.session_id is not None and not self.lost.is_set():
            with contextlib.suppress(SignalingError):
                await self._post(f"/{self.session_id}", {"janus": "destroy"})
        self.lost.set()


async def _json(response: aiohttp.ClientResponse) -> Any:
    body = await read_bounded(response.content, MAX_RESPONSE_BYTES)
    if len(body) > MAX_RESPONSE_BYTES:
        raise SignalingError("janus: response too large")
    if not body:
        raise SignalingError("janus: empty response (the server went away)")
    try:
        return json.loads(body)
    except ValueError:
        raise SignalingError("janus: response is not JSON") from None


def _checked(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise SignalingError("janus: unexpected response")
    if answer.get("janus") == "error":
        error = answer.get("error", {})
        code, reason = error.get("code"), str(error.get("reason", ""))[:200]
        if code == NO_SUCH_SESSION:
            raise SignalingLost(f"janus: {code} {reason}")
        raise SignalingError(f"janus: {code} {reason}")
    return answer
