"""Atomic file writes, torch-free: a temp file in the same folder, flushed and fsynced, then
``os.replace``d over the target, and the folder fsynced. A process killed at any point leaves
either the old file or the new one, never half of one. Run folders, data sets, shard caches
and the priors all write through here."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write_path(path: str | Path, write_to: Callable[[Path], None]) -> None:
    """Call ``write_to(tmp)`` on a temp path next to ``path``, fsync it, move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); this one gets the usual umask-derived mode.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write_to(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fh)`` on a temp file next to ``path``, then move it over ``path``."""

    def write_to(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            write(fh)

    atomic_write_path(path, write_to)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder: a rename is only durable once the directory entry is on disk too."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
