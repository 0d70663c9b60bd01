"""A real mosquitto broker for tests: password auth, a plain and a TLS listener (and one that needs a
client certificate), all on 127.0.0.1 with ports picked beforehand (mosquitto cannot bind port 0)."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.net import free_port, wait_for_port
from tests.support.process import ManagedProcess

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_tls_files(directory: Path, client_cn: str = "edge-test-client") -> TlsFiles:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate (EC P-256)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=edgeagent test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    (d / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    (d / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    )
    for name, cn in (("server", "127.0.0.1"), ("client", client_cn)):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650",
                 "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    for key in ("ca.key", "server.key", "client.key"):
        os.chmod(d / key, 0o600)
    return TlsFiles(
        ca_file=d / "ca.crt",
        ca_key=d / "ca.key",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
    )


class Broker:
    """``mosquitto -c CONF`` in the foreground.

    Listeners (all 127.0.0.1, all with username/password, no anonymous access):
      ``port``       plain MQTT
      ``tls_port``   TLS (server certificate signed by ``ca_file``)
      ``mtls_port``  TLS that also requires a client certificate (``client_cert``/``client_key``)
    ``stop()`` and ``start()`` restart it on the same ports (a broker reboot; nothing is persisted).
    """

    def __init__(
        self,
        directory: Path,
        tls: TlsFiles,
        *,
        username: str = "edge-test",
        password: str | None = None,
        host: str = "127.0.0.1",
        ready_timeout: float = 15.0,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.host = host
        self.port = free_port(host)
        self.tls_port = free_port(host)
        self.mtls_port = free_port(host)
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.password_file = self.dir / "mosquitto.passwd"
        self.config_file = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.ready_timeout = ready_timeout
        self.process = ManagedProcess(
            [MOSQUITTO, "-c", str(self.config_file)], name="mosquitto", log_path=self.log_path, pump="stderr"
        )
        self._write_files()

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    @property
    def client_cert(self) -> Path:
        return self.tls.client_cert

    @property
    def client_key(self) -> Path:
        return self.tls.client_key

    def add_user(self, username: str, password: str) -> None:
        """Add a user to the password file (takes effect at the next start, or now with ``reload()``)."""
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", str(self.password_file), username, password],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

    def _write_files(self) -> None:
        if self.password_file.exists():
            self.password_file.unlink()
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", "-c", str(self.password_file), self.username, self.password],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        os.chmod(self.password_file, 0o600)
        t = self.tls
        tls_lines = f"cafile {t.ca_file}\ncertfile {t.server_cert}\nkeyfile {t.server_key}\n"
        self.config_file.write_text(
            "per_listener_settings false\n"
            "user root\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            "log_timestamp_format %H:%M:%S\n"
            "persistence false\n"
            "allow_anonymous false\n"
            f"password_file {self.password_file}\n"
            f"\nlistener {self.port} {self.host}\n"
            f"\nlistener {self.tls_port} {self.host}\n{tls_lines}"
            f"\nlistener {self.mtls_port} {self.host}\n{tls_lines}require_certificate true\n"
        )

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc

    def start(self) -> Broker:
        if self.running:
            raise RuntimeError("broker already running")
        mark = self.process.mark()
        self.process.start()
        # mosquitto logs "... running" once every listener is open (or exits on a bind error).
        try:
            self.process.wait_line(lambda line: " running" in line, self.ready_timeout, after=mark)
        except (TimeoutError, RuntimeError):
            self.kill()
            raise RuntimeError(f"mosquitto did not start\n--- log ---\n{self.log_text()[-3000:]}") from None
        for port in (self.port, self.tls_port, self.mtls_port):
            wait_for_port(self.host, port, timeout=self.ready_timeout, alive=lambda: self.running)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait: clients lose their connection (no will is sent for them on a broker stop)."""
        return self.process.stop(timeout)

    def kill(self) -> int | None:
        return self.process.kill()

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads the password file."""
        self.process.signal(signal.SIGHUP)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_mark(self) -> int:
        """A position in the log, for ``wait_log(..., after=mark)``."""
        return self.process.mark()

    def wait_log(self, needle: str, timeout: float = 10.0, after: int = 0) -> str:
        """Wait for a log line (from line number ``after`` on) that contains ``needle``; return it.

        E.g. ``broker.wait_log("New client connected")`` or ``"Client edge-1 disconnected"``. The lines of
        every start count, so a test may wait across a broker restart.
        """
        try:
            return self.process.wait_line(lambda line: needle in line, timeout, after, until_exit=False)
        except TimeoutError:
            raise TimeoutError(f"{needle!r} not in the mosquitto log after {timeout} s") from None

    def __repr__(self) -> str:
        return f"<Broker {self.host} plain={self.port} tls={self.tls_port} mtls={self.mtls_port}>"
