"""What a failed ONVIF call says: one line, fit for a log, a health field or an HTTP answer."""

from __future__ import annotations


class OnvifError(Exception):
    """An ONVIF call that failed or ran out of time; ``str()`` is one line without secrets."""


class OnvifTimeout(OnvifError):
    pass


class OnvifAuthError(OnvifError):
    pass


class OnvifUnreachable(OnvifError):
    """No connection to the device (refused, reset, no route): it is away or rebooting."""
