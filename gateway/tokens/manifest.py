"""``manifest.json``: the keystore's source of truth, and the key lifecycle as pure functions.

The manifest names every key, its algorithm and its state. Key files and ``jwks.json`` follow
it: a key file the manifest does not name is ignored, and ``jwks.json`` is derived from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias, cast

from gateway.tokens.algorithms import SigningAlgorithm, is_supported

KeyState: TypeAlias = Literal["next", "current", "retiring"]

MANIFEST_FORMAT: Final = 1

#: A kid is an RFC 7638 thumbprint (43 base64url characters for SHA-256). The pattern is what a
#: manifest may hold: a kid becomes a file name, so anything else (``../``, ``/``) is refused.
KID_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

_STATES: Final = ("current", "next", "retiring")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as the manifest describes it."""

    kid: str
    alg: SigningAlgorithm
    state: KeyState
    created_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state,
            "created_at": format_time(self.created_at),
            "activated_at": format_time(self.activated_at) if self.activated_at else None,
            "retired_at": format_time(self.retired_at) if self.retired_at else None,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every key of the keystore: exactly one ``current``, one ``next``, any number retiring."""

    keys: tuple[KeyRecord, ...]

    def __post_init__(self) -> None:
        kids = [key.kid for key in self.keys]
        if len(set(kids)) != len(kids):
            raise ValueError("a kid appears twice")
        for state in ("current", "next"):
            count = sum(1 for key in self.keys if key.state == state)
            if count != 1:
                raise ValueError(f"there must be exactly one {state} key, found {count}")

    @property
    def current(self) -> KeyRecord:
        return next(key for key in self.keys if key.state == "current")

    @property
    def next(self) -> KeyRecord:
        return next(key for key in self.keys if key.state == "next")

    @property
    def retiring(self) -> tuple[KeyRecord, ...]:
        return tuple(key for key in self.keys if key.state == "retiring")

    @classmethod
    def new(cls, current: KeyRecord, next_key: KeyRecord) -> Manifest:
        return cls(keys=(current, next_key))

    def rotated(self, new_next: KeyRecord, *, now: datetime) -> Manifest:
        """next becomes current, current becomes retiring, ``new_next`` becomes next."""
        promoted = replace(self.next, state="current", activated_at=now)
        retired = replace(self.current, state="retiring", retired_at=now)
        return Manifest(keys=(promoted, new_next, retired, *self.retiring))

    def without(self, kids: Iterable[str]) -> Manifest:
        dropped = set(kids)
        return Manifest(keys=tuple(key for key in self.keys if key.kid not in dropped))

    def render(self) -> bytes:
        document = {"format": MANIFEST_FORMAT, "keys": [key.to_json() for key in self.keys]}
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Read a manifest, refusing anything a gateway did not write.

        Raises:
            ValueError: the document is not a valid manifest; the message says what is wrong.
        """
        try:
            document = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"format {document.get('format')!r} is not {MANIFEST_FORMAT}, the one this "
                "gateway reads"
            )
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise ValueError("'keys' must be a non-empty list")
        records = tuple(_parse_record(entry, index) for index, entry in enumerate(entries))
        keys = tuple(sorted(records, key=lambda key: _STATES.index(key.state)))
        return cls(keys=keys)


def _parse_record(entry: object, index: int) -> KeyRecord:
    where = f"key #{index + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a JSON object")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise ValueError(f"{where} has a kid that is not a base64url thumbprint")
    where = f"key {kid}"
    alg = entry.get("alg")
    if not is_supported(alg):
        raise ValueError(f"{where} has an unsupported alg {alg!r}")
    state = entry.get("state")
    if state not in _STATES:
        raise ValueError(f"{where} has an unknown state {state!r}")
    record = KeyRecord(
        kid=kid,
        alg=cast(SigningAlgorithm, alg),
        state=cast(KeyState, state),
        created_at=_parse_time(entry.get("created_at"), f"{where} created_at"),
        activated_at=_parse_optional_time(entry.get("activated_at"), f"{where} activated_at"),
        retired_at=_parse_optional_time(entry.get("retired_at"), f"{where} retired_at"),
    )
    if record.state == "retiring" and record.retired_at is None:
        raise ValueError(f"{where} is retiring but has no retired_at")
    if record.state == "current" and record.retired_at is not None:
        raise ValueError(f"{where} is current but has a retired_at")
    return record


def format_time(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, to the second: ``2026-11-25T10:00:00Z``."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} has no time zone")
    return moment.astimezone(UTC)


def _parse_optional_time(value: object, what: str) -> datetime | None:
    return None if value is None else _parse_time(value, what)
