"""A recording stand-in for PostgREST: a real TCP server that notes each request head.

It answers every request with ``reply`` (raw HTTP/1.1 bytes, settable by a test), so a test
can say exactly what reached the upstream and what the upstream said back.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
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


# What a ScriptedUpstream handler returns instead of bytes: close without a word, or never
# answer (until the server is closed).
CLOSE = b""
HANG = None


@dataclass
class ScriptedUpstream:
    """A raw-socket upstream whose every answer a test scripts, for what PostgREST cannot do
    (1xx answers, a close mid-body, garbage, silence).

    ``handler(connection_number, request_number_on_it, head, body)`` returns the raw bytes to
    send (:data:`CLOSE`: close the connection unanswered; :data:`HANG`: stay silent), and closes
    the connection after a reply that says ``Connection: close``. A tuple of byte strings is
    sent piece by piece, each after the first once the test sets ``next_piece``. Request
    bodies are read by Content-Length or chunked framing.
    """

    handler: Callable[[int, int, bytes, bytes], bytes | tuple[bytes, ...] | None]
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0
    finished: int = 0  # connections that have ended (either side closed)
    sock: socket.socket = field(default_factory=socket.socket)
    stopped: threading.Event = field(default_factory=threading.Event)
    next_piece: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> ScriptedUpstream:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(
                target=self._handle, args=(connection, self.connections), daemon=True
            ).start()

    def _handle(self, connection: socket.socket, number: int) -> None:
        connection.settimeout(30)
        buffer = _Buffer(connection)
        try:
            self._exchange(connection, number, buffer)
        finally:
            self.finished += 1

    def _exchange(self, connection: socket.socket, number: int, buffer: _Buffer) -> None:
        with connection:
            try:
                request = 0
                while True:
                    head = buffer.until(b"\r\n\r\n")
                    if head is None:
                        return
                    body = _read_body(buffer, head)
                    request += 1
                    self.heads.append(head)
                    self.bodies.append(body)
                    reply = self.handler(number, request, head, body)
                    if reply is HANG:
                        self.stopped.wait()
                        return
                    if not reply:
                        return
                    pieces = reply if isinstance(reply, tuple) else (reply,)
                    connection.sendall(pieces[0])
                    for piece in pieces[1:]:
                        self.next_piece.wait(30)
                        self.next_piece.clear()
                        connection.sendall(piece)
                    if b"\r\nconnection: close\r\n" in pieces[0].lower():
                        return
            except OSError:
                return


class _Buffer:
    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.data = b""

    def fill(self) -> bool:
        chunk = self.connection.recv(65536)
        self.data += chunk
        return bool(chunk)

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.data:
            if not self.fill():
                return None
        found, _, self.data = self.data.partition(marker)
        return found

    def exactly(self, size: int) -> bytes:
        while len(self.data) < size:
            if not self.fill():
                raise OSError("closed mid-body")
        found, self.data = self.data[:size], self.data[size:]
        return found


def _read_body(buffer: _Buffer, head: bytes) -> bytes:
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        parts: list[bytes] = []
        while True:
            size_line = buffer.until(b"\r\n")
            if size_line is None:
                raise OSError("closed mid-body")
            size = int(size_line, 16)
            data = buffer.exactly(size + 2)[:-2]
            if size == 0:
                return b"".join(parts)
            parts.append(data)
    return buffer.exactly(_content_length(head))
