"""An agent pays in memory only for the clients it uses: without offload or ONVIF cameras, neither the S3 client
(aiobotocore, 21 MB of RSS) nor the SOAP client (zeep and onvif-zeep-async, 9.5 MB) is imported, not even by
the command line that starts it."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL_CLIENTS = ("aiobotocore", "botocore", "zeep", "onvif")
REPORT = f"print(' '.join(m for m in {OPTIONAL_CLIENTS!r} if m in sys.modules))"


def loaded_after(statements: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", f"import sys\n{statements}\n{REPORT}"], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    return run.stdout.split()


def test_the_agent_and_its_command_line_import_no_optional_client() -> None:
    assert loaded_after("import edgeagent.agent, edgeagent.cli\nedgeagent.cli.build_parser()") == []


def test_the_clients_are_loaded_where_offload_or_onvif_needs_them() -> None:
    # the check above can fail: these are the modules that the uploader and the ONVIF link import
    assert loaded_after("import edgeagent.offload.s3, edgeagent.onvif.device") == list(OPTIONAL_CLIENTS)
