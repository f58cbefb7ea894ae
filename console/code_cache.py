"""Code the standard library generates at import, compiled once and kept between runs.

``dataclasses`` writes the source of each dataclass's ``__init__``, ``__repr__`` and ``__eq__``
and hands it to ``exec``; ``typing`` compiles each string annotation it evaluates; ``namedtuple``
evaluates the source of each ``__new__``. At the console's start that is ~1,800 sources (Textual,
Rich, pydantic, the core, the widgets), ~860 of them distinct, parsed and compiled afresh each
time: ~35-45 ms of the cold start. Python's bytecode cache cannot hold them (they are not files),
so this module does it for them: each code object, keyed by its source's exact text, is
marshalled to the user cache folder after the first frame, and the next start compiles only what
it does not find there (the file loads in ~3 ms).

A cached code object is what compiling the same text with the same flags makes, so every
generated function is the same. Each of the three modules gets a wrapper under the name of the
builtin it calls (``dataclasses.exec``, ``typing.compile``, ``collections.eval``): a module's
globals come before the builtins, so only that module's own calls go through it, and any call
of another shape goes straight to the builtin.

Anything wrong with the file (missing, corrupt, from another Python, not the user's own) only
means the sources are compiled as before. The file is the user's, mode 0600, and read only if
nobody else could have written it: its code runs, as a ``.pyc`` file's does.
"""

from __future__ import annotations

import __future__ as future_flags
import builtins
import collections
import dataclasses
import sys
import typing
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from console.cache_files import read_table, write_table

FILE_NAME = "generated-code.marshal"
_FORMAT = 1  # bump when what is stored changes

_compiled: dict[tuple[str, str], CodeType] = {}  # (mode, source) -> code: read from the file, or compiled
_used: set[tuple[str, str]] = set()  # the keys this run asked for
_recording = True  # until used() is taken: code generated later (as the app runs) is not kept
_loaded: frozenset[tuple[str, str]] = frozenset()
_installed = False
stats = {"hits": 0, "compiled": 0}


def _code(source: str, mode: str) -> CodeType:
    key = (mode, source)
    code = _compiled.get(key)
    if code is None:
        # dont_inherit: compiled as the calling module would (install checks it has no
        # __future__ import), not with this module's `annotations`, which would turn the
        # generated functions' annotations into strings. A source that does not compile
        # raises here, as it would have, and is not remembered.
        code = builtins.compile(source, "<string>", mode, dont_inherit=True)
        stats["compiled"] += 1
        if not _recording:
            return code
        _compiled[key] = code  # before _used: save() may read both from another thread
    else:
        stats["hits"] += 1
    if _recording:
        _used.add(key)
    return code


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:  # noqa: A002 - exec's own names
    if type(source) is str:
        source = _code(source, "exec")
    if globals is None:  # as the builtin: the caller's namespace, not this module's
        caller = sys._getframe(1)
        globals, locals = caller.f_globals, caller.f_locals if locals is None else locals
    builtins.exec(source, globals, locals)


def _eval(source: Any, globals: Any = None, locals: Any = None, /) -> Any:  # noqa: A002
    if type(source) is str:
        source = _code(source.lstrip(" \t"), "eval")  # as the builtin, which skips leading blanks
    if globals is None:
        caller = sys._getframe(1)
        globals, locals = caller.f_globals, caller.f_locals if locals is None else locals
    return builtins.eval(source, globals, locals)


def _compile(source: Any, filename: Any, mode: Any, *args: Any, **kwargs: Any) -> Any:
    if type(source) is str and filename == "<string>" and mode == "eval" and not args and not kwargs:
        return _code(source, "eval")
    return builtins.compile(source, filename, mode, *args, **kwargs)


# The builtin each module calls on generated source, and the wrapper it gets in its place.
_ROUTES: tuple[tuple[ModuleType, str, Any], ...] = (
    (dataclasses, "exec", _exec),
    (typing, "compile", _compile),
    (collections, "eval", _eval),
)


def _plain(module: ModuleType) -> bool:
    """No ``from __future__`` import: what it compiles gets no flags, as ``_code`` compiles."""
    return not any(isinstance(value, future_flags._Feature) for value in vars(module).values())


def _header() -> tuple[object, ...]:
    # marshal's format for code objects and the bytecode change between Python builds, and
    # compile's output with -O (as .pyc files are kept apart by it)
    return (_FORMAT, sys.version, sys.implementation.cache_tag, sys.flags.optimize)


def install(folder: Path) -> int:
    """Route the modules' generated code through the cache, primed from ``folder``. Returns how
    many code objects were read (0: everything is compiled as usual). Once per process."""
    global _installed, _loaded
    if _installed:
        return len(_loaded)
    _installed = True
    for module, name, wrapper in _ROUTES:
        if name not in vars(module) and _plain(module):  # a module that defines the name itself: left alone
            setattr(module, name, wrapper)
    entries = read_table(folder / FILE_NAME, _header(), _entry)
    if entries is None:  # missing, corrupt, another Python's: compiled, and written afresh
        return 0
    _compiled.update(entries)
    _loaded = frozenset(entries)
    return len(entries)


def _entry(item: tuple[Any, Any]) -> bool:
    key, code = item
    return (type(key) is tuple and len(key) == 2 and key[0] in ("exec", "eval") and type(key[1]) is str
            and type(code) is CodeType)


def used() -> frozenset[tuple[str, str]]:
    """What this run has asked for, from its start. Taken when the first frame is up, before
    anything started then imports more (the halt's retry library, in a thread): what a start
    asks for is then the same each time, and the file is not rewritten at every start. Nothing
    is recorded after it: a console running for hours keeps no more than its start's code."""
    global _recording
    _recording = False
    return frozenset(_used)  # one step under the GIL: imports in other threads may still add


def save(folder: Path, keys: frozenset[tuple[str, str]]) -> bool:
    """Write ``keys`` (from ``used``) for the next start, unless the file held them all (see
    ``write_table``). A failure is only a start that compiles."""
    return _installed and write_table(folder / FILE_NAME, _header(), _compiled, keys, _loaded)
