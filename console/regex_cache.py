"""Regular expressions compiled at import, their compiled programs kept between runs.

Textual's CSS tokenizer, Rich's markup and highlighters, ``logging``, ``platform``, ``email`` and
others compile ~80 patterns as they are imported: Python parses each pattern and compiles it to
a program for its regex engine, in Python, ~10 ms of the console's cold start each time. This
module keeps each pattern's program (its code and groups) in the user cache folder, and the next
start hands it straight to the engine.

``re._compiler.compile`` (what ``re.compile`` and every ``re`` function call for a pattern not in
the process's own cache) gets a wrapper until the first frame is up; then ``re`` is as it always
is. A pattern the wrapper has not seen is compiled as before, and its program is taken apart
(``_parser.parse`` and ``_compiler._code``, what ``compile`` runs) and kept only if the engine
builds from it a pattern equal to Python's own (the same text, flags and code, compared by ``==``,
and the same groups). So a kept program is the one Python makes, for this Python build and regex
engine (both in the file's header). A pattern the parser warns about is not kept: its warning
comes at every start, as without the cache.

Anything wrong with the file (missing, another Python's, not the user's own, damaged: it holds a
checksum, since the engine checks a program only in part and a damaged one could crash it) only
means compiling as before. The file is the user's, mode 0600, and read only if nobody else could
have written it.
"""

from __future__ import annotations

import _sre
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from console.cache_files import read_table, write_table

FILE_NAME = "regexes.marshal"
_FORMAT = 1  # bump when what is stored changes

_compiler: Any = re._compiler  # type: ignore[attr-defined]  # the module re calls to compile a pattern
_parser: Any = re._parser  # type: ignore[attr-defined]
_original = _compiler.compile

# (pattern, flags asked for) -> (flags, code, groups, groupindex, indexgroup): _sre.compile's arguments
_programs: dict[tuple[str | bytes, int], tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]] = {}
_used: set[tuple[str | bytes, int]] = set()
_loaded: frozenset[tuple[str | bytes, int]] = frozenset()
_installed = False
_recording = True  # until used() is taken: patterns compiled later (a search typed in the palette) are not kept
stats = {"hits": 0, "compiled": 0}


def _compile(p: Any, flags: int = 0) -> Any:
    global _loaded
    if type(p) not in (str, bytes) or type(flags) is not int or flags & re.DEBUG:
        return _original(p, flags)  # a parsed pattern (re.Scanner), or one compiled to print
    key = (p, flags)
    program = _programs.get(key)
    if program is not None:
        try:
            pattern = _sre.compile(p, *program)
        except Exception:  # noqa: BLE001 - the engine refused the program: compiled as Python does
            pattern = None
            _loaded = _loaded - {key}  # and the file written again
        if pattern is not None:
            stats["hits"] += 1
            if _recording:
                _used.add(key)
            return pattern
    pattern = _original(p, flags)  # raises for a bad pattern, as it would: nothing is kept then
    stats["compiled"] += 1
    if not _recording:
        return pattern
    program = _program(p, flags, pattern)
    if program is not None:
        _programs[key] = program  # before _used: save() may read both from another thread
        _used.add(key)
    return pattern


def _program(p: str | bytes, flags: int, pattern: Any) -> Any:
    """The engine's arguments for ``pattern``, if they build it again exactly."""
    try:
        # A pattern the parser warns about (a possible nested set, a bad group name) is not
        # kept: the warning must come at every start, as it does without the cache. Recorded
        # here, this second parse's warnings are not shown twice (only during start-up, see used()).
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            parsed = _parser.parse(p, flags)
        if warned:
            return None
        code = [int(c) for c in _compiler._code(parsed, flags)]  # opcodes are int subclasses
        groupindex = dict(pattern.groupindex)
        indexgroup: list[str | None] = [None] * (pattern.groups + 1)
        for name, index in groupindex.items():
            indexgroup[index] = name
        program = (pattern.flags, code, pattern.groups, groupindex, tuple(indexgroup))
        again = _sre.compile(p, *program)
        # == compares the text, flags and code; the groups are compared here
        same = again == pattern and again.groups == pattern.groups and again.groupindex == pattern.groupindex
        return program if same else None
    except Exception:  # noqa: BLE001 - a pattern this cannot take apart: compiled each time
        return None


def _header() -> tuple[object, ...]:
    # the engine's code format and the parser and compiler that make it change between Python builds
    return (_FORMAT, sys.version, _sre.MAGIC, _sre.CODESIZE)


def _entry(item: tuple[Any, Any]) -> bool:
    key, program = item
    if not (type(key) is tuple and len(key) == 2 and type(key[0]) in (str, bytes) and type(key[1]) is int
            and type(program) is tuple and len(program) == 5):
        return False
    flags, code, groups, groupindex, indexgroup = program
    return (type(flags) is int and type(code) is list and all(type(c) is int for c in code) and type(groups) is int
            and type(groupindex) is dict and all(type(k) is str and type(v) is int for k, v in groupindex.items())
            and type(indexgroup) is tuple and all(v is None or type(v) is str for v in indexgroup))


def install(folder: Path) -> int:
    """Route pattern compiles through the cache, primed from ``folder``. Returns how many
    programs were read (0: every pattern is compiled as usual). Once per process."""
    global _installed, _loaded
    if _installed:
        return len(_loaded)
    _installed = True
    _compiler.compile = _compile
    entries = read_table(folder / FILE_NAME, _header(), _entry)
    if entries is None:
        return 0
    _programs.update(entries)
    _loaded = frozenset(entries)
    return len(entries)


def used() -> frozenset[tuple[str | bytes, int]]:
    """What this run has compiled, from its start (taken when the first frame is up, as
    code_cache.used). Nothing is recorded after it: Textual's palette compiles a pattern for
    each search typed, and a console running for hours keeps no more than its start's."""
    global _recording
    _recording = False
    if _installed:  # from now on re compiles as it always does, the process's own cache aside
        _compiler.compile = _original
    return frozenset(_used)


def save(folder: Path, keys: frozenset[tuple[str | bytes, int]]) -> bool:
    """Write ``keys`` (from ``used``) for the next start, unless the file held them all (see
    ``write_table``). A failure is only a start that compiles."""
    return _installed and write_table(folder / FILE_NAME, _header(), _programs, keys, _loaded)
