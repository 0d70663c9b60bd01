"""A tiny scripted RTSP server on 127.0.0.1 for hostile-camera tests: it answers each request with what a
test's ``answer(method, headers)`` returns and records every request it received (to check, for instance,
that no Authorization header ever arrived)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]  # lower-case names


Answer = Callable[[Request], bytes | None]  # the bytes to send (None: say nothing, keep the connection)


def rtsp_answer(request: Request, status: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {request.headers.get('cseq', '0')}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class FakeRtspServer:
    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: a server context, for an rtsps:// camera (handshake failures are counted, not served)."""
        self.answer = answer
        self.tls = tls
        self.handshakes_failed = 0
        self.requests: list[Request] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, user: str | None = None, path: str = "/stream1") -> str:
        scheme = "rtsps" if self.tls else "rtsp"
        return f"{scheme}://{user + '@' if user else ''}127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        if self.tls is not None:
            try:
                connection.settimeout(5)
                connection = self.tls.wrap_socket(connection, server_side=True)
                connection.settimeout(None)
            except (OSError, ssl.SSLError):
                with self._lock:
                    self.handshakes_failed += 1
                connection.close()
                return
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    method, url = (lines[0].split(" ") + ["", ""])[:2]
                    headers = {}
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    request = Request(method, url, headers)
                    with self._lock:
                        self.requests.append(request)
                    reply = self.answer(request)
                    if reply:
                        connection.sendall(reply)
        except OSError:
            return

    def authorizations(self) -> list[str]:
        with self._lock:
            return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()
