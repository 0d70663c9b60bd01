"""A real mosquitto broker for tests: password auth, a plain and a TLS listener (and one that needs a
client certificate), all on 127.0.0.1 with ports picked beforehand (mosquitto cannot bind port 0)."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.support.net import free_port, wait_for_port

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
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._log_cond = threading.Condition()
        self._log_lines: list[str] = []  # every line since the first start
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
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Broker:
        if self.running:
            raise RuntimeError("broker already running")
        ready = threading.Event()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._pump = threading.Thread(
            target=self._pump_log, args=(self.proc, ready), name="mosquitto-log", daemon=True
        )
        self._pump.start()
        # mosquitto logs "... running" once every listener is open (or exits on a bind error).
        if not ready.wait(self.ready_timeout) or not self.running:
            self.kill()
            raise RuntimeError(f"mosquitto did not start\n--- log ---\n{self.log_text()[-3000:]}")
        for port in (self.port, self.tls_port, self.mtls_port):
            wait_for_port(self.host, port, timeout=self.ready_timeout, alive=lambda: self.running)
        return self

    def _pump_log(self, proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert proc.stderr is not None
        with open(self.log_path, "ab") as log:
            for line in proc.stderr:
                log.write(line)
                log.flush()
                with self._log_cond:
                    self._log_lines.append(line.decode(errors="replace"))
                    self._log_cond.notify_all()
                if b" running" in line:
                    ready.set()
        ready.set()  # EOF: the process exited
        with self._log_cond:
            self._log_cond.notify_all()

    def _end(self, sig: int, timeout: float) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._pump is not None:
            self._pump.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait: clients lose their connection (no will is sent for them on a broker stop)."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        return self._end(signal.SIGKILL, 10.0)

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads the password file."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGHUP)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_mark(self) -> int:
        """A position in the log, for ``wait_log(..., after=mark)``."""
        with self._log_cond:
            return len(self._log_lines)

    def wait_log(self, needle: str, timeout: float = 10.0, after: int = 0) -> str:
        """Wait for a log line (from line number ``after`` on) that contains ``needle``; return it.

        E.g. ``broker.wait_log("New client connected")`` or ``"Client edge-1 disconnected"``.
        """
        deadline = time.monotonic() + timeout
        with self._log_cond:
            seen = after
            while True:
                for line in self._log_lines[seen:]:
                    if needle in line:
                        return line
                seen = len(self._log_lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{needle!r} not in the mosquitto log after {timeout} s")
                self._log_cond.wait(remaining)

    def __repr__(self) -> str:
        return f"<Broker {self.host} plain={self.port} tls={self.tls_port} mtls={self.mtls_port}>"
