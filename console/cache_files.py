"""The user cache folder's files (console.styles_cache, code_cache, regex_cache, module_cache):
reading one only if it is the user's own, and writing one so that a reader sees the old file or
the new one; and the marshalled tables two of them keep."""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import tempfile
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

MAX_BYTES = 64 << 20  # far above the styles and code caches (~0.7 MB together): anything bigger is not ours


def own(info: os.stat_result) -> bool:
    """The user's own file, that nobody else can write (POSIX; elsewhere the cache folder is
    the user's own). Both caches hold what runs when read (unpickling, code objects), so a file
    anybody else could have written is not read, as Python would not trust such a ``.pyc``."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return True
    return info.st_uid == getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def open_own(path: Path, max_bytes: int = MAX_BYTES) -> int | None:
    """A file descriptor open for reading, or None when the file is missing, not a regular file
    (a FIFO would block the start: it is opened without waiting), not the user's own, or bigger
    than ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode) or not own(info) or info.st_size > max_bytes:
        os.close(fd)
        return None
    return fd


def read_own(path: Path) -> bytes | None:
    """The file's bytes, or None for a file ``open_own`` refuses."""
    fd = open_own(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
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


def read_table(path: Path, header: object, valid: Callable[[tuple[Any, Any]], bool]) -> dict[Any, Any] | None:
    """The table marshalled at ``path`` with ``header``, or None when the file is refused (see
    ``read_own``), corrupt (its checksum), written for another header, or holds an item ``valid``
    refuses."""
    data = read_own(path)
    if data is None:
        return None
    try:
        # marshal.load(f) would read it object by object: ~12 ms against ~3 for the code cache
        stored, checksum, payload = marshal.loads(data)
        if stored != header or type(payload) is not bytes or checksum != zlib.crc32(payload):
            return None  # another Python; or damaged: a flipped bit in code could crash the start
        table = marshal.loads(payload)
    except Exception:  # noqa: BLE001 - corrupt: made afresh, and written again
        return None
    if type(table) is not dict or not all(map(valid, table.items())):
        return None  # not what the module writes
    return table


def write_table(path: Path, header: object, table: dict[Any, Any], used: frozenset[Hashable],
                loaded: frozenset[Hashable]) -> bool:
    """Write the entries of ``table`` this run ``used``, unless the file held them all. What the
    file held stays too: starts of another kind (paper, live; an empty journal, a full one) use
    other entries, and would otherwise rewrite the file each time. Unless that is most of it:
    entries no start asks for any more (an upgraded library) are dropped then. Atomic; a failure
    (a full disk, something marshal cannot write) only means making them again next time."""
    if used <= loaded:
        return False
    kept = used | loaded
    if len(kept) > 2 * len(used):
        kept = used
    try:
        payload = marshal.dumps({key: table[key] for key in kept})
        write_atomic(path, marshal.dumps((header, zlib.crc32(payload), payload)))
    except Exception:  # noqa: BLE001
        return False
    return True
