"""Logging set-up, with a last line of defence against credentials in log lines."""

from __future__ import annotations

import logging
import re
import sys

_CREDENTIALS_IN_URL = re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s@/]*@", re.IGNORECASE)


def redact(text: str) -> str:
    return _CREDENTIALS_IN_URL.sub(r"\1:***@", text)


class RedactingFormatter(logging.Formatter):
    """Secrets are never passed to the logger on purpose; this catches what a library might add."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Quiet libraries whose routine chatter would drown the agent's own lines.
    for noisy in ("aioice", "aiortc", "aiohttp.access", "edgeagent.paho"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
