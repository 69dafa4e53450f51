"""A recording stand-in for PostgREST: a real TCP server that notes each request head.

It answers every request with ``reply`` (raw HTTP/1.1 bytes, settable by a test), so a test
can say exactly what reached the upstream and what the upstream said back.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


@dataclass
class RecordingUpstream:
    reply: bytes = OK
    heads: list[bytes] = field(default_factory=list)
    sock: socket.socket = field(default_factory=socket.socket)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingUpstream:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def close(self) -> None:
        self.sock.close()

    def request_lines(self, since: int = 0) -> list[bytes]:
        return [head.split(b"\r\n", 1)[0] for head in self.heads[since:]]

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(30)
        with connection:
            try:
                data = b""
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = connection.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    head, _, data = data.partition(b"\r\n\r\n")
                    self.heads.append(head)
                    length = _content_length(head)
                    while len(data) < length:
                        chunk = connection.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    data = data[length:]
                    connection.sendall(self.reply)
                    if b"connection: close" in self.reply.lower():
                        return
            except OSError:
                return


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0
