"""Crash-safe file replacement: temp file in the same directory, fsync, rename, fsync directory."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Final

#: Names of the temp files :func:`write_atomic` leaves behind when a process dies mid-write, so
#: that the next writer can sweep them (and nothing else) away.
TEMP_NAME: Final = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")


class NotDurable(OSError):
    """``path`` was replaced, but the directory could not be fsynced afterwards.

    Readers already see the new file, so the write cannot be undone by deleting anything; only a
    power loss before the system flushes the directory may still bring the old file back.
    """


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never a mix.

    The temp file is created with ``mode`` by ``os.open`` itself (O_CREAT|O_EXCL), so a private
    key is never readable by others, not even for an instant; the umask can only narrow it.
    After the rename the directory is fsynced too: without it a power loss may forget the rename.

    Raises:
        NotDurable: ``path`` now holds ``data``, but the directory fsync failed (see there).
        OSError: otherwise, the file could not be written; ``path`` is then unchanged.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    try:
        fsync_directory(path.parent)
    except OSError as exc:
        raise NotDurable(exc.errno, exc.strerror, str(path.parent)) from exc


def fsync_directory(directory: Path) -> None:
    """Make the creation, rename or removal of entries in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
