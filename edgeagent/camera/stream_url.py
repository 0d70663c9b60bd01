"""Where a camera's stream is: the configured URL, or the one its ONVIF service names.

With a ``resolver`` (ONVIF's GetStreamUri, set by unit.py) the URL is asked in the ingest thread before
each connect: cameras change address or path after a firmware update. It is asked once per attempt: the
ask before the probe is the one the connect uses, and an ask that failed fails the attempt without a
second login (a device that refuses the credentials must not lock its account).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import SecretStr

from edgeagent.camera.reachability import rtsp_address
from edgeagent.config import CameraSection
from edgeagent.urls import redact_url, url_with_password

log = logging.getLogger(__name__)


class StreamUrl:
    def __init__(self, camera: str, section: CameraSection, password: SecretStr | None) -> None:
        self.camera = camera
        self.section = section
        self.password = password
        self.resolver: Callable[[], str] | None = None
        # False for a camera configured by ONVIF alone until its device names the stream: the URL is a
        # placeholder, so there is nothing to probe, and the device is asked again instead.
        self.known = True
        self._asked = False  # already asked for this attempt
        self._error: Exception | None = None  # what that ask raised: the attempt fails with it
        self._use(section.url)

    def _use(self, url: str) -> None:
        self.display = redact_url(url)
        self.with_password = url_with_password(url, self.password)
        self.address = rtsp_address(url)

    def resolve(self) -> None:
        """The URL for this attempt: asked now, or the answer of this attempt's earlier ask (raised again
        if that failed)."""
        if self.resolver is None:
            return
        if self._asked:
            error, self._error = self._error, None
            if error is not None:
                raise error
            return
        self._asked = True
        try:
            url = self.resolver()
        except Exception as exc:
            self._error = exc
            raise
        self.known = True
        if url != self.section.url:
            self.section = self.section.model_copy(update={"url": url})  # as if configured so
        self._use(url)

    def resolve_quietly(self) -> None:
        """Before a probe: the camera may have moved. A failure is the connect's to report."""
        try:
            self.resolve()
        except Exception as exc:
            log.debug("camera %s: stream URL not resolved before the probe: %s", self.camera, exc)

    def forget(self) -> None:
        """The attempt is over (or a probe was woken by a restart or a stop): the next one asks afresh."""
        self._asked, self._error = False, None
