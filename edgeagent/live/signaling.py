"""Offers over MQTT, for an operator who reaches the cabinet through the central broker alone.

The publisher subscribes to ``<prefix>/<agent_id>/cameras/+/webrtc/offer`` and publishes what this returns
on ``<prefix>/<agent_id>/webrtc/<session_id>/answer``. The session id is the client's, so it is checked
to be safe as a topic level before anything is answered on it.
"""

from __future__ import annotations

import json
import logging

from edgeagent.live.errors import LiveError
from edgeagent.live.service import SESSION_ID_PATTERN, LiveService

log = logging.getLogger(__name__)


def _answer(**fields: str) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


async def handle_mqtt_offer(live: LiveService, camera: str, payload: bytes) -> tuple[str, bytes] | None:
    """``(session_id, answer_json)`` for an offer ``{"session_id", "sdp"}``; ``None`` when there is no
    usable session id to answer to (the message is logged and dropped)."""
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        log.warning("live: MQTT offer for camera %r is not JSON; ignored", camera[:64])
        return None
    session_id = message.get("session_id") if isinstance(message, dict) else None
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.match(session_id):
        log.warning("live: MQTT offer for camera %r has no valid session_id; ignored", camera[:64])
        return None
    sdp = message.get("sdp")
    if not isinstance(sdp, str):
        return session_id, _answer(error="400 the offer needs an \"sdp\" string")
    try:
        _, answer = await live.offer(camera, sdp, session_id=session_id)
    except LiveError as exc:
        return session_id, _answer(error=str(exc))
    return session_id, _answer(sdp=answer)
