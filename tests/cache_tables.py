"""Read and write the marshalled tables of console.code_cache and console.regex_cache as the
console does (console.cache_files), so a test can change what a file holds and keep it well-formed."""

from __future__ import annotations

import marshal
import os
import zlib
from pathlib import Path
from typing import Any


def read(path: Path) -> tuple[Any, dict[Any, Any]]:
    header, checksum, payload = marshal.loads(path.read_bytes())
    assert checksum == zlib.crc32(payload)
    return header, marshal.loads(payload)


def write(path: Path, header: Any, table: dict[Any, Any]) -> None:
    payload = marshal.dumps(table)
    path.write_bytes(marshal.dumps((header, zlib.crc32(payload), payload)))
    os.chmod(path, 0o600)


def flip_a_byte(path: Path) -> None:
    """A well-formed file with one byte of its table changed, as a damaged disk might leave it."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
