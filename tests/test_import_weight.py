"""An agent pays in memory only for the clients it uses: without offload or ONVIF cameras, neither the S3 client
(aiobotocore, 21 MB of RSS) nor the SOAP client (zeep and onvif-zeep-async, 9.5 MB) is imported."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL_CLIENTS = ("aiobotocore", "botocore", "zeep", "onvif")
LOADED = (
    f"import sys, edgeagent.agent, edgeagent.cli; print(' '.join(m for m in {OPTIONAL_CLIENTS!r} if m in sys.modules))"
)


def test_the_agent_imports_no_optional_client_until_it_is_configured() -> None:
    loaded = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.split() == []


def test_the_clients_are_there_when_asked_for() -> None:
    # the check above can fail: these are the modules the agent imports when offload or ONVIF is configured
    import edgeagent.offload.s3
    import edgeagent.onvif.device

    assert all(name in sys.modules for name in OPTIONAL_CLIENTS)
    assert edgeagent.offload.s3.S3Uploader and edgeagent.onvif.device.OnvifDevice
