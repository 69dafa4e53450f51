"""The embedded SQLite store's file: made readable by its owner only, before SQLite opens it.

The file holds password hashes and the server secret. SQLite creates a missing database file
with mode 0644 less the umask, and gives its ``-wal`` and ``-shm`` files the database file's own
mode (it ``fchmod``s them to it, whatever the umask). So creating the database file 0600 before
SQLite opens it makes all three owner-only from their first byte.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

logger = logging.getLogger("gateway.store")

OWNER_ONLY_FILE: Final = 0o600
OWNER_ONLY_FOLDER: Final = 0o700

_reported: set[Path] = set()


def sqlite_file_of(url: str) -> Path | None:
    """The database file a SQLite URL names; None for an in-memory or URI-style database."""
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if parsed.query.get("uri") in ("true", "1"):
        return None
    return Path(database)


def prepare_sqlite_file(path: Path) -> None:
    """Create ``path`` (and every missing folder above it) for its owner only, if missing.

    Folders that already exist are the operator's and keep their mode. An existing database
    file that other users may read is reported, not changed, as the keystore does for its keys.
    """
    missing: list[Path] = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=OWNER_ONLY_FOLDER, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY_FILE)
    except FileExistsError:
        _report_if_readable_by_others(path)
    else:
        os.close(descriptor)


def _report_if_readable_by_others(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # SQLite itself says what is wrong with the file
    if mode & 0o077 and path not in _reported:
        _reported.add(path)
        logger.warning(
            "%s (the store: password hashes, server secret) is readable by other users: "
            "chmod 600 it (its -wal and -shm files take its mode)",
            path,
        )
    elif not mode & 0o077:
        _reported.discard(path)
