"""Plain ASGI pieces the mount and the web layer share: types, scope readers, the client address."""

from __future__ import annotations

from gateway.asgi.client_address import client_address_of, is_trusted, parse_networks
from gateway.asgi.scope import raw_path_of, request_id_of, started_answer
from gateway.asgi.types import ASGIApp, Header, Message, Receive, Scope, Send

__all__ = [
    "ASGIApp",
    "Header",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "client_address_of",
    "is_trusted",
    "parse_networks",
    "raw_path_of",
    "request_id_of",
    "started_answer",
]
