"""The modules the console imports at start, their compiled code kept in one file between runs.

Importing a module from its ``.pyc`` costs Python's import machinery ~50 us beyond running the
module: look for it in each folder of its search path, stat the source, open, read and check
the ``.pyc``, all in Python. The console imports ~400 such modules before its first frame
(Textual, Rich, pydantic, asyncio, the core, the widgets): ~15 ms of the cold start. This
finder, just ahead of Python's own, serves each module the last start imported from one file in
the user cache folder: an index (module -> its source and ``.pyc`` files, where its code is, its
crc32) and the code, the very bytes of each ``.pyc`` Python loaded.

A module is served only when Python would import that same code:
- its source and its ``.pyc`` are both unchanged (mtime to the nanosecond, and size): Python
  would load that ``.pyc``, so the code is the same, a stale one included (a same-second,
  same-size edit), until the ``.pyc`` is deleted or rewritten;
- nothing could shadow it: ``sys.path`` is the one the file was written under ('' still the
  same working folder), and none of its folders changed; nor did the module's own folder or any
  folder Python looks in before it (a new file or folder in one changes its mtime: a module,
  package or extension module of the same name would come first), nor a folder of the module's
  name in one of them (an ``__init__.py`` put there would make it a package). The folders are
  looked at again after ``importlib.invalidate_caches()``, as Python's finders do;
- a submodule's folder is the first on its package's ``__path__``;
- when the file was written, Python's own finders found that module there with the start's
  ``sys.path`` (one loaded from a folder put on the path later, or from a file by path, is not
  kept).
Anything else, and anything wrong with the file (missing, corrupt, from another Python, not the
user's own), means Python's own import for that module or for all. The file is the user's, mode
0600, and read only if nobody else could have written it: its code runs, as a ``.pyc`` file's
does. It is written after the first frame, when this start imported what the file did not hold,
keeping what it held that is still current.
"""

from __future__ import annotations

import _imp
import marshal
import os
import sys
import zlib
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from importlib.util import MAGIC_NUMBER, cache_from_source
from pathlib import Path
from types import CodeType
from typing import Any

from console.cache_files import open_own, write_atomic

FILE_NAME = "modules.bin"
_FORMAT = 3  # bump when what is stored changes
_MAX_BYTES = 256 << 20  # the console's modules take ~8 MB
_HEAD = 8  # the file starts with the length of the marshalled (header, index, skipped) that follows

# module -> (source, is a package, source mtime_ns, size, .pyc, its mtime_ns, size,
#            ((folder, mtime_ns), ...) that nothing may have been added to, offset, length, crc32)
_Entry = tuple[str, bool, int, int, str, int, int, tuple[tuple[str, int], ...], int, int, int]


class _Loader(SourceFileLoader):
    """Python's own loader for a source file (``__file__``, ``get_source``, resources all as
    usual), whose code comes from the file when it can."""

    where: tuple[int, int, int]  # offset, length and checksum of the code in the file

    def get_code(self, fullname: str) -> CodeType | None:
        try:
            offset, length, checksum = self.where
            data = os.pread(_finder.fd, length, _finder.base + offset)
            # a flipped bit in code can crash the interpreter (as in a .pyc, which Python does
            # not check): ~1.5 ms for the whole start
            code = marshal.loads(data) if zlib.crc32(data) == checksum else None
        except Exception:  # noqa: BLE001 - the file changed under us or is damaged: the .pyc then
            code = None
        if type(code) is not CodeType:
            return super().get_code(fullname)
        # as Python's loader: a tree moved with its __pycache__ has the old path in the .pyc
        _imp._fix_co_filename(code, self.path)
        _finder.served.add(fullname)
        return code


class _Finder:
    def __init__(self, fd: int, base: int, index: dict[str, _Entry], skipped: frozenset[str]) -> None:
        self.fd = fd
        self.base = base
        self.index = index
        self.skipped = skipped  # imported last time, but not kept (no current .pyc): not a reason to write
        self.served: set[str] = set()
        self._mtimes: dict[str, int | None] = {}  # folder -> mtime_ns now, each stat'd once

    def _mtime(self, folder: str) -> int | None:
        try:
            return self._mtimes[folder]
        except KeyError:
            pass
        try:
            mtime: int | None = os.stat(folder).st_mtime_ns
        except OSError:
            mtime = None
        self._mtimes[folder] = mtime
        return mtime

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        entry = self.index.get(fullname)
        if entry is None:
            return None
        origin, package, mtime_ns, size, pyc, pyc_mtime_ns, pyc_size, folders, offset, length, checksum = entry
        if path is None:
            if sys.path != _path:  # changed since the start: Python might find another
                return None
            if _cwd_on_path and _getcwd() != _cwd:  # '' is the working folder, which changed
                return None
        elif next(iter(path), None) != _search_folder(origin, package):
            return None  # its package looks in another folder first: Python might find another
        for folder, mtime in folders:
            if self._mtime(folder) != mtime:
                return None
        try:
            source, compiled = os.stat(origin), os.stat(pyc)
        except OSError:
            return None
        if (source.st_mtime_ns, source.st_size, compiled.st_mtime_ns, compiled.st_size) != (
                mtime_ns, size, pyc_mtime_ns, pyc_size):
            return None
        loader = _Loader(fullname, origin)
        loader.where = (offset, length, checksum)
        spec = ModuleSpec(fullname, loader, origin=origin, is_package=package)
        spec.has_location = True  # __file__ and __cached__, as Python's finder sets them
        if package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    def invalidate_caches(self) -> None:
        self._mtimes.clear()


def _search_folder(origin: str, package: bool) -> str:
    """The folder Python found the module in (a package's: the one holding its folder)."""
    folder = os.path.dirname(origin)
    return os.path.dirname(folder) if package else folder


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # deleted
        return None


_finder = _Finder(-1, 0, {}, frozenset())
_installed = False
_saved = False
_before: frozenset[str] = frozenset()  # imported before install: not this module's to serve
_path: list[str] = []  # sys.path at install
_cwd: str | None = None  # the working folder at install, which '' on sys.path means
_cwd_on_path = False
_key: tuple[object, ...] = ()


def _folder(entry: str) -> str:
    """The folder a ``sys.path`` entry means (as at install: '' is the working folder then)."""
    return entry or _cwd or ""


def _path_key() -> tuple[tuple[str, int | None], ...]:
    key = []
    for entry in _path:
        folder = _folder(entry)
        try:
            key.append((folder, os.stat(folder).st_mtime_ns))
        except OSError:
            key.append((folder, None))
    return tuple(key)


def _header() -> tuple[object, ...]:
    # marshal's format for code objects and the bytecode change between Python builds; -O
    # compiles differently and a pycache prefix puts .pyc files elsewhere; and where modules are found
    return (_FORMAT, sys.version, sys.implementation.cache_tag, sys.flags.optimize, sys.pycache_prefix, _key)


def install(folder: Path) -> int:
    """Serve modules from the file in ``folder``. Returns how many it holds (0: Python imports
    every module as usual). Once per process."""
    global _installed, _before, _path, _cwd, _cwd_on_path, _key, _finder
    if _installed:
        return len(_finder.index)
    _installed = True
    _before = frozenset(sys.modules)
    _path = list(sys.path)
    _cwd_on_path = "" in _path
    _cwd = _getcwd()
    if _cwd_on_path and _cwd is None:  # '' on the path means a deleted folder: nothing to compare with
        return 0
    _key = _path_key()
    fd = open_own(folder / FILE_NAME, _MAX_BYTES)
    if fd is None:
        return 0
    try:
        length = int.from_bytes(os.pread(fd, _HEAD, 0), "little")
        header, index, skipped = marshal.loads(os.pread(fd, length, _HEAD))
        if (header != _header() or type(index) is not dict or not all(map(_entry, index.items()))
                or type(skipped) is not frozenset or not all(type(name) is str for name in skipped)):
            raise ValueError("not this Python's, or not what this module writes")
    except Exception:  # noqa: BLE001 - corrupt or foreign: imported as usual, written afresh
        os.close(fd)
        return 0
    _finder = _Finder(fd, _HEAD + length, index, skipped)
    # ahead of Python's finder for files, behind any a tool put first (pytest's, coverage's)
    at = sys.meta_path.index(PathFinder) if PathFinder in sys.meta_path else 0
    sys.meta_path.insert(at, _finder)
    return len(index)


def _entry(item: tuple[Any, Any]) -> bool:
    """A well-formed index entry (one of another length raises here, inside install's try)."""
    name, entry = item
    if not (type(name) is str and type(entry) is tuple):
        return False
    origin, package, mtime_ns, size, pyc, pyc_mtime_ns, pyc_size, folders, offset, length, checksum = entry
    return (type(origin) is str and type(package) is bool and type(pyc) is str and type(folders) is tuple
            and all(type(v) is int for v in (mtime_ns, size, pyc_mtime_ns, pyc_size, offset, length, checksum))
            and all(type(f) is tuple and len(f) == 2 and type(f[0]) is str and type(f[1]) is int for f in folders))


def imported() -> list[tuple[str, ModuleSpec]]:
    """The modules imported from source files since ``install`` (a module built into Python, an
    extension module, one from a zip are Python's to import). Taken when the first frame is up,
    before anything started then imports more: what a start needs is then the same each time,
    and the file is not rewritten at every start."""
    return [(name, spec) for name, module in list(sys.modules.items())
            if name not in _before and (spec := getattr(module, "__spec__", None)) is not None
            and type(spec.loader) in (SourceFileLoader, _Loader) and spec.origin]


def _found_by_python(name: str) -> str | None:
    """Where Python's own finders find ``name`` now, with the start's ``sys.path``."""
    parent, _, _ = name.rpartition(".")
    search = None
    if parent:
        search = getattr(sys.modules.get(parent), "__path__", None)
        if search is None:
            return None
        search = list(search)
    for finder in list(sys.meta_path):
        find = getattr(finder, "find_spec", None)
        if finder is _finder or find is None:
            continue
        try:
            spec = find(name, [_folder(e) for e in _path] if finder is PathFinder and search is None else search)
        except Exception:  # noqa: BLE001 - a finder that fails here: not kept
            return None
        if spec is not None:
            return spec.origin if type(spec.loader) is SourceFileLoader else None
    return None


def _keep(name: str, spec: ModuleSpec) -> tuple[_Entry, bytes] | None:
    """The module's entry and code, if it can be served next time: Python finds it where it was
    loaded from, and its ``.pyc`` is current (checked as Python checks a timestamp ``.pyc``: its
    magic number, flags, source mtime and size)."""
    origin = spec.origin
    package = spec.submodule_search_locations is not None
    if origin is None or _found_by_python(name) != origin:
        return None
    pyc = cache_from_source(origin)
    try:
        source = os.stat(origin)
        with open(pyc, "rb") as f:
            compiled = os.fstat(f.fileno())
            data = f.read()
    except OSError:
        return None
    if (len(data) < 16 or data[:4] != MAGIC_NUMBER or data[4:8] != bytes(4)
            or int.from_bytes(data[8:12], "little") != int(source.st_mtime) & 0xFFFFFFFF
            or int.from_bytes(data[12:16], "little") != source.st_size & 0xFFFFFFFF):
        return None
    search = _search_folder(origin, package)
    parent, _, last = name.rpartition(".")
    if parent:
        if next(iter(getattr(sys.modules.get(parent), "__path__", ())), None) != search:
            return None  # a package that looks in another folder first: find_spec would refuse it
        ahead = [search]
    else:  # each folder Python looks in before the module's own could come to hold one of its name
        ahead = []
        for entry in _path:
            ahead.append(_folder(entry))
            if ahead[-1] == search:
                break
    folders = []
    for where in ahead:
        # the folder (a new file or folder in it), and a folder of the module's name in it (an
        # __init__.py put there): a package's own folder, or one a module's name could become
        for folder in (where, os.path.join(where, last)):
            try:
                folders.append((folder, os.stat(folder).st_mtime_ns))
            except OSError:
                pass
    entry = (origin, package, source.st_mtime_ns, source.st_size, pyc, compiled.st_mtime_ns, compiled.st_size,
             tuple(folders), 0, 0, 0)
    return entry, data[16:]


def _unchanged(entry: _Entry) -> bool:
    try:
        source, compiled = os.stat(entry[0]), os.stat(entry[4])
    except OSError:
        return False
    return (source.st_mtime_ns, source.st_size, compiled.st_mtime_ns, compiled.st_size) == entry[2:4] + entry[5:7]


def save(folder: Path, modules: list[tuple[str, ModuleSpec]]) -> bool:
    """Write ``modules`` (from ``imported``) for the next start, unless the file served all of
    them or holds why not. Once per process (a test session starts many apps); atomic: a reader
    sees the old file or the new one. A failure only means a start that imports as usual."""
    global _saved
    if not _installed or _saved or not _key:
        return False
    _saved = True
    if {name for name, _ in modules} <= _finder.served | _finder.skipped:
        return False
    index: dict[str, _Entry] = {}
    skipped = set()
    blobs: list[bytes] = []
    offset = 0
    try:
        for name, spec in modules:
            kept = _keep(name, spec)
            if kept is None:
                skipped.add(name)
                continue
            entry, code = kept
            index[name] = (*entry[:8], offset, len(code), zlib.crc32(code))
            blobs.append(code)
            offset += len(code)
        # What the file held that this start did not import stays, while its source and .pyc are
        # unchanged: starts of another kind (paper, live; an empty journal, a full one) import
        # other modules, and would otherwise rewrite the file each time.
        for name, entry in _finder.index.items():
            if name in index or name in skipped or not _unchanged(entry):
                continue
            code = os.pread(_finder.fd, entry[9], _finder.base + entry[8])
            if zlib.crc32(code) == entry[10]:
                index[name] = (*entry[:8], offset, len(code), entry[10])
                blobs.append(code)
                offset += len(code)
        skipped |= _finder.skipped - index.keys()
        head = marshal.dumps((_header(), index, frozenset(skipped)))
        write_atomic(folder / FILE_NAME, len(head).to_bytes(_HEAD, "little") + head + b"".join(blobs))
    except Exception:  # noqa: BLE001 - a full disk, a folder we cannot write: imported as usual next time
        return False
    return True
