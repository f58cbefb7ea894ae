"""The user cache folder's files (console.styles_cache, console.code_cache): who may have
written one, and writing one so that a reader sees the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def own(info: os.stat_result) -> bool:
    """The user's own file, that nobody else can write (POSIX; elsewhere the cache folder is
    the user's own). Both caches hold what runs when read (unpickling, code objects), so a file
    anybody else could have written is not read, as Python would not trust such a ``.pyc``."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return True
    return info.st_uid == getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600, its folder 0700 if made) through a temporary file and a
    rename. Raises OSError, with the temporary file removed."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
