"""Parsed style sheets kept between runs, as Python keeps compiled bytecode.

Textual parses every style sheet at each start: ours and the DEFAULT_CSS of each widget class,
~30 ms of a ~330 ms cold start. After the first frame the parsed rule sets are pickled to the
user cache folder; the next start hands them to the stylesheet's own parse cache, where Textual
looks before parsing. Each entry is keyed as Textual keys it, by the sheet's text and origin, so
an edited sheet is parsed afresh. The file as a whole holds only for the Textual and Rich it was
written with (their versions, and the size and time of Textual's modules whose classes it holds
or that parse), the Python version and the theme's variables (the parse substitutes them).

Anything wrong with the file (missing, corrupt, from another version, not the user's own) only
means the sheets are parsed as before. The file is the user's, mode 0600, and read only if
nobody else could have written it: unpickling runs code, as importing does.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import rich
import textual
from textual.css.stylesheet import Stylesheet

from console.cache_files import read_own, write_atomic

log = logging.getLogger(__name__)
_FORMAT = 2  # bump when what is stored changes


def _installed(module: Any, *paths: str) -> tuple[object, ...]:
    """The installed package: the version in its dist-info folder's name (what ``__version__``
    would read through importlib.metadata, ~12 ms), and the size and time of every module under
    ``paths`` (files or folders), which an editable or patched install changes without a new
    version: those whose classes are pickled, and the parser that builds them."""
    package = Path(module.__file__).parent
    name = module.__name__
    with os.scandir(package.parent) as entries:
        versions = sorted(e.name for e in entries if e.name.startswith(f"{name}-") and e.name.endswith(".dist-info"))
    stats = []
    for path in paths:
        full = package / path
        files = sorted(full.glob("*.py")) if full.is_dir() else [full]
        for file in files:
            info = os.stat(file)
            stats.append((file.relative_to(package).as_posix(), info.st_size, info.st_mtime_ns))
    return name, versions, stats


# Rich's classes are not pickled (its version is still part of the key); Textual's are, from these.
_TEXTUAL_PATHS = ("css", "layouts", "color.py", "geometry.py")


def _header(stylesheet: Stylesheet) -> tuple[Any, ...]:
    variables = getattr(stylesheet, "_variables", {})
    return (_FORMAT, _installed(textual, *_TEXTUAL_PATHS), _installed(rich), sys.version_info[:2],
            sorted(variables.items()))


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
        data = read_own(self.path)
        if data is None:  # missing, or not a file only the user could have written
            return 0
        try:
            f = io.BytesIO(data)
            if pickle.load(f) != _header(self.stylesheet):  # the header first: a stale file costs no more
                return 0
            entries = pickle.load(f)
        except Exception as exc:  # corrupt or from another version: parse, and write it afresh
            log.debug("styles cache %s unreadable (%s): parsing the sheets", self.path, exc)
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
        sources = getattr(self.stylesheet, "source", {})

        def stale(key: Any) -> bool:  # an older text of a sheet this run has read: never asked for again
            source = sources.get(key[1]) if isinstance(key, tuple) and len(key) > 1 else None
            return source is not None and source.content != key[0]

        keys = [key for key in cache.keys() if not stale(key)]
        if set(keys) == self.loaded:
            return None
        try:
            return (pickle.dumps(_header(self.stylesheet), protocol=pickle.HIGHEST_PROTOCOL)
                    + pickle.dumps([(key, cache.get(key)) for key in keys], protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # a rule Textual may one day make unpicklable: no cache, no failure
            log.debug("styles cache %s not written: %s", self.path, exc)
            return None

    def write(self, data: bytes) -> None:
        """Atomically, so a reader sees the old file or the new one; a failure is only logged."""
        try:
            write_atomic(self.path, data)
        except OSError as exc:
            log.debug("styles cache %s not written: %s", self.path, exc)
