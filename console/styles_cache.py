"""Parsed style sheets kept between runs, as Python keeps compiled bytecode.

Textual parses every style sheet at each start: ours and the DEFAULT_CSS of each widget class,
~30 ms of a ~330 ms cold start. After the first frame the parsed rule sets are pickled to the
user cache folder; the next start hands them to the stylesheet's own parse cache, where Textual
looks before parsing. Each entry is keyed as Textual keys it, by the sheet's text and origin, so
an edited sheet is parsed afresh; the file as a whole holds only for the installed Textual and
Rich (their files' size and time: ``textual.__version__`` would import importlib.metadata, ~12
ms), the Python version and the theme's variables it was written with (the parse substitutes them).

Anything wrong with the file (missing, corrupt, from another version, not the user's own) only
means the sheets are parsed as before. The file is the user's, mode 0600, and read only if
nobody else could have written it: unpickling runs code, as importing does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import stat
import sys
from pathlib import Path
from typing import Any

import rich
import textual
from textual.css.stylesheet import Stylesheet

log = logging.getLogger(__name__)
_FORMAT = 1  # bump when what is stored changes


def _installed(module: Any) -> tuple[int, int]:
    info = os.stat(module.__file__)  # rewritten by every install or upgrade of the package
    return info.st_size, info.st_mtime_ns


def _header(stylesheet: Stylesheet) -> tuple[Any, ...]:
    variables = getattr(stylesheet, "_variables", {})
    return (_FORMAT, _installed(textual), _installed(rich), sys.version_info[:2], sorted(variables.items()))


class StylesCache:
    """Primes one stylesheet's parse cache from ``folder`` and writes back what it parsed."""

    def __init__(self, stylesheet: Stylesheet, folder: Path) -> None:
        self.stylesheet = stylesheet
        self.path = folder / "styles.pickle"
        self.loaded: frozenset[object] = frozenset()

    def _parse_cache(self) -> Any:
        return getattr(self.stylesheet, "_parse_cache", None)  # Textual's own; absent: no cache

    def load(self) -> int:
        """Entries handed to the parse cache (0: parse as usual)."""
        cache = self._parse_cache()
        if cache is None:
            return 0
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    log.debug("styles cache %s: not the user's own file or writable by others; not read", self.path)
                    return 0
                header, entries = pickle.load(f)
        except FileNotFoundError:
            return 0
        except Exception as exc:  # corrupt or from another version: parse, and write it afresh
            log.debug("styles cache %s unreadable (%s): parsing the sheets", self.path, exc)
            return 0
        if header != _header(self.stylesheet):
            return 0
        if len(entries) > cache.maxsize:
            cache.grow(len(entries))
        for key, rules in entries:
            cache.set(key, rules)
        self.loaded = frozenset(key for key, _ in entries)
        return len(entries)

    def snapshot(self) -> bytes | None:
        """The parse cache as the next start wants it, or None when that is what was loaded."""
        cache = self._parse_cache()
        if cache is None:
            return None
        keys = list(cache.keys())
        if set(keys) <= self.loaded:
            return None
        try:
            return pickle.dumps((_header(self.stylesheet), [(key, cache.get(key)) for key in keys]),
                                protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a rule Textual may one day make unpicklable: no cache, no failure
            log.debug("styles cache %s not written: %s", self.path, exc)
            return None

    def write(self, data: bytes) -> None:
        """Atomically, so a reader sees the old file or the new one; a failure is only logged."""
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("styles cache %s not written: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
