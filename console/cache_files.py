"""The user cache folder's files (console.styles_cache, console.code_cache): reading one only if
it is the user's own, and writing one so that a reader sees the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

MAX_BYTES = 64 << 20  # far above either cache (~0.8 MB together): anything bigger is not ours


def own(info: os.stat_result) -> bool:
    """The user's own file, that nobody else can write (POSIX; elsewhere the cache folder is
    the user's own). Both caches hold what runs when read (unpickling, code objects), so a file
    anybody else could have written is not read, as Python would not trust such a ``.pyc``."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return True
    return info.st_uid == getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_own(path: Path) -> bytes | None:
    """The file's bytes, or None when it is missing, not a regular file (a FIFO would block the
    start: it is opened without waiting), not the user's own, or too big to be a cache."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not own(info) or info.st_size > MAX_BYTES:
            return None
        try:
            return f.read()
        except OSError:
            return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a new temporary file beside it (mode 0600, a name nobody could
    have planted a link under) and a rename; the folder is made 0700 if missing. Raises
    OSError, with the temporary file removed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
