"""Logging set-up, with a last line of defence against credentials and unbounded input in log lines.

Libraries log what strangers send (aiohttp quotes a bad request line verbatim), so every record is cut
to a bounded length before anything else looks at it, then redacted by :mod:`edgeagent.urls`, whose cost
is linear in the length.
"""

from __future__ import annotations

import logging
import sys

from edgeagent.urls import redact_text

MAX_MESSAGE_CHARS = 2000  # a log message; what is cut is counted, never shown
MAX_DETAIL_CHARS = 8000  # a traceback or stack: its end, where the error is, is kept
MAX_DETAIL_LINE_CHARS = 500


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """At most ``limit`` characters of ``text`` and a marker saying how much was cut.

    The cut falls at the last whitespace before the limit, so a credential that runs across the limit is
    dropped whole rather than shown in part before redaction could recognise it.
    """
    if len(text) <= limit:
        return text
    head = text[:limit]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    head = head[:boundary] if boundary > 0 else ""
    return f"{head} [... {len(text) - len(head)} characters cut]"


def _clip_detail(text: str) -> str:
    """The end of a traceback, in whole lines (a line cut anywhere but at a space could show part of a
    secret), each line clipped."""
    kept: list[str] = []
    size = 0
    for line in reversed(text.splitlines()):
        line = clip(line, MAX_DETAIL_LINE_CHARS)
        size += len(line) + 1
        if size > MAX_DETAIL_CHARS:
            kept.append("[... start cut]")
            break
        kept.append(line)
    return "\n".join(reversed(kept))


def redact(text: str) -> str:
    """Kept for older callers: :func:`edgeagent.urls.redact_text`."""
    return redact_text(text)


class RedactingFormatter(logging.Formatter):
    """Secrets are never passed to the logger on purpose; this catches what a library might add.

    As :meth:`logging.Formatter.format`, with the message and any traceback bounded, then redacted.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = clip(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        if details:
            text = f"{text}\n{_clip_detail(chr(10).join(details))}"
        return redact_text(text)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Quiet libraries whose routine chatter would drown the agent's own lines.
    for noisy in ("aioice", "aiortc", "aiohttp.access", "edgeagent.paho"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
