"""What aiohttp logs about bad requests, made safe: one short line, never the request's bytes.

aiohttp logs "Error handling request" with the exception, and a parser error's message quotes the
offending header (an ``Authorization`` header with a NUL put the token in the log) or request line (tens
of kilobytes, all attacker-chosen). This filter, on aiohttp's own loggers, rewrites such records: the
client's address, the exception's type and status, and for a failure inside the agent the traceback's
frames (where it failed), never an exception message, which may quote input. Lines are rate-limited per
client address, so a flood of bad requests cannot flood the log.
"""

from __future__ import annotations

import logging
import traceback

from aiohttp.http_exceptions import HttpProcessingError

from edgeagent.publish.ratelimit import LogThrottle, bounded

LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.internal")


class AiohttpErrorFilter(logging.Filter):
    def __init__(self, throttle: LogThrottle | None = None) -> None:
        super().__init__()
        self.throttle = throttle or LogThrottle(period_s=60.0, max_lines=20)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        client = bounded(str(remote), 64) if remote is not None else "a client"
        if isinstance(exc, HttpProcessingError):
            what = f"{type(exc).__name__} ({exc.code})"
        elif exc is not None:
            frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            what = f"{type(exc).__name__} in the agent\n{frames}"
        else:
            # A plain message (no exception): keep aiohttp's words, without its arguments.
            what = bounded(str(record.msg), 120)
        unlogged = self.throttle.should_log(f"{record.name}/{client}")
        if unlogged is None:
            return False
        more = f" ({unlogged} more since the last line)" if unlogged else ""
        record.msg = "http: bad request from %s: %s%s"
        record.args = (client, what, more)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def install() -> AiohttpErrorFilter:
    """Put the filter on aiohttp's loggers (once; calling again returns the installed one)."""
    for existing in logging.getLogger(LOGGERS[0]).filters:
        if isinstance(existing, AiohttpErrorFilter):
            return existing
    shared = AiohttpErrorFilter()
    for name in LOGGERS:
        logging.getLogger(name).addFilter(shared)
    return shared
