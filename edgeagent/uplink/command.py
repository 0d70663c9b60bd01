"""The uplink request a centre sends, over MQTT or HTTP: ``{"action": "start"}`` or ``{"action": "stop"}``."""

from __future__ import annotations

import json
from typing import Literal

MAX_COMMAND_BYTES = 1024
Action = Literal["start", "stop"]


def parse_action(payload: bytes) -> Action:
    """The action in ``payload``; ValueError with a one-line reason for anything else."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise ValueError(f"larger than {MAX_COMMAND_BYTES} bytes")
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ValueError('not JSON (expected {"action": "start"} or {"action": "stop"})') from None
    action = document.get("action") if isinstance(document, dict) else None
    if action == "start":
        return "start"
    if action == "stop":
        return "stop"
    raise ValueError('"action" must be "start" or "stop"')
