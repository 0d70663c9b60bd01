"""A TLS server at a camera's address that records every byte it receives (an impostor, or a camera that
streams), for the rtsps:// tests."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path


class TlsDevice:
    """A TLS server on 127.0.0.1 that records every byte it receives; ``flood`` bytes are sent after the
    handshake (a camera streaming), ``answer`` is sent back for each chunk received."""

    def __init__(self, cert: Path, key: Path, flood: bool = False, answer: bytes = b"") -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.flood, self.answer = flood, answer
        self.received = bytearray()
        self.connections = 0
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, user: str = "viewer") -> str:
        return f"rtsps://{user}@127.0.0.1:{self.port}/stream1"

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(raw)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            conn = self.context.wrap_socket(raw, server_side=True)
            self._open.append(conn)
            if self.flood:  # once asked, as a camera does after PLAY
                self.received += conn.recv(65536)
                chunk = b"\x24" * 65536
                while True:
                    conn.sendall(chunk)
                    self.sent += len(chunk)
            while chunk := conn.recv(65536):
                self.received += chunk
                if self.answer:
                    conn.sendall(self.answer)
        except (OSError, ssl.SSLError):
            return

    def close(self) -> None:
        self._listener.close()
        for conn in self._open:
            conn.close()
