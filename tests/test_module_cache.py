"""Modules kept between starts (console.module_cache): the next start imports them from one file,
each module is the one Python would have imported (its source unchanged, nothing shadowing it),
with the same attributes, and anything wrong with the file only means importing as before.

Each start is a new process (the finder serves a whole process), run with bytecode writing on:
the file is made from the ``.pyc`` files Python writes.
"""

from __future__ import annotations

import json
import marshal
import os
import py_compile
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imports the console's package (which installs the finder), then a package of the test's own and
# Textual's app; prints what each module is and what the finder did; saves when asked.
_SCRIPT = textwrap.dedent("""
    import json, sys
    from importlib.machinery import SourceFileLoader
    from pathlib import Path

    from console import module_cache

    import textual.app

    if sys.argv[2]:  # a folder put first on the path after the start, as a script may
        sys.path.insert(0, sys.argv[2])
    if sys.argv[3]:  # a package made while running, in a folder on the path, as a program may
        import importlib
        made = Path(sys.argv[3]) / "shop"
        made.mkdir()
        (made / "__init__.py").write_text("")
        (made / "till.py").write_text("VALUE = 'made'\\nDEBUG = __debug__\\ndef where():\\n    pass\\n")
        importlib.invalidate_caches()
    import shop.till  # the test's own package (in a folder on PYTHONPATH) and its submodule

    def looks(name):
        m = sys.modules[name]
        spec = m.__spec__
        return [m.__file__, m.__cached__, spec.origin, spec.parent, m.__package__, getattr(m, "__path__", None),
                spec.submodule_search_locations, spec.has_location, m.__loader__.get_source(name) is not None,
                isinstance(m.__loader__, SourceFileLoader)]

    names = ["shop", "shop.till", "textual", "textual.app"]
    saved = None
    if sys.argv[1]:
        saved = module_cache.save(Path(sys.argv[1]) / "tradedesk", module_cache.imported())
        again = module_cache.save(Path(sys.argv[1]) / "tradedesk", module_cache.imported())
        assert again is False  # once per process
    print(json.dumps({
        "value": shop.till.VALUE, "served": sorted(module_cache._finder.served), "held": len(module_cache._finder.index),
        "saved": saved, "looks": {n: looks(n) for n in names}, "code_file": shop.till.where.__code__.co_filename,
        "debug": shop.till.DEBUG,
    }))
""")


def _env(cache_home: Path, path: list[Path], *, write_bytecode: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": os.pathsep.join(map(str, [*path, ROOT]))}


def _start(tmp: Path, *, save: bool = True, path: list[Path] | None = None, ahead: Path | None = None,
           make_in: Path | None = None, flags: tuple[str, ...] = (), write_bytecode: bool = True,
           env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [str(tmp / "cache") if save else "", str(ahead) if ahead else "", str(make_in) if make_in else ""]
    out = subprocess.run([sys.executable, *flags, "-c", _SCRIPT, *args], capture_output=True, text=True,
                         env={**_env(tmp / "cache", path or [tmp / "lib"], write_bytecode=write_bytecode), **(env or {})},
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _till(value: object) -> str:
    return f"VALUE = {value!r}\nDEBUG = __debug__\n\ndef where():\n    pass\n"


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    shop = tmp_path / "lib" / "shop"
    shop.mkdir(parents=True)
    (shop / "__init__.py").write_text("NAME = 'shop'\n")
    (shop / "till.py").write_text(_till(1))
    return tmp_path


def _file(tmp: Path) -> Path:
    return tmp / "cache" / "tradedesk" / "modules.bin"


def test_a_second_start_imports_from_the_file_and_the_modules_are_the_same(tmp: Path) -> None:
    first = _start(tmp)
    assert first["saved"] is True and first["served"] == [] and first["held"] == 0
    assert _file(tmp).stat().st_mode & 0o777 == 0o600

    second = _start(tmp)
    served = set(second["served"])
    assert {"shop", "shop.till", "textual", "textual.app"} <= served
    assert len(served) > 100  # Textual's and Rich's modules, asyncio's...
    assert second["value"] == 1
    # __file__, __cached__, the spec, a package's __path__, the source, the loader's kind: as Python's own
    assert second["looks"] == first["looks"]
    assert second["code_file"] == first["code_file"] == str(tmp / "lib" / "shop" / "till.py")
    assert second["saved"] is False  # it served everything it imported: the file is left as it is


def test_a_changed_source_is_imported_from_itself(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    till = tmp / "lib" / "shop" / "till.py"
    till.write_text(_till(22))  # another size
    after = _start(tmp)
    assert after["value"] == 22 and "shop.till" not in after["served"] and "shop" in after["served"]
    assert after["saved"] is True  # rewritten with the new code
    assert _start(tmp)["value"] == 22


def test_a_source_touched_with_the_same_size_is_imported_from_itself(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    till = tmp / "lib" / "shop" / "till.py"
    info = till.stat()
    till.write_text(_till(7))  # the same size; Python's .pyc check wants another second
    os.utime(till, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))
    after = _start(tmp)
    assert after["value"] == 7 and "shop.till" not in after["served"]


def test_a_stale_pyc_is_served_only_while_python_would_load_it(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    till = tmp / "lib" / "shop" / "till.py"
    info = till.stat()
    till.write_text(_till(9))  # the same size, in the same second: Python's .pyc check misses it
    os.utime(till, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert _start(tmp)["value"] == 1  # Python's own import: the stale .pyc
    assert _start(tmp)["value"] == 1  # served: the same code Python would load
    py_compile.compile(str(till))  # the cure for a stale .pyc (as deleting it), in its folder: nothing else changes
    assert _start(tmp)["value"] == 9


def test_a_stale_pyc_read_through_a_pycache_prefix_is_not_served(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    till = tmp / "lib" / "shop" / "till.py"
    info = till.stat()
    till.write_text(_till(9))
    os.utime(till, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert _start(tmp)["value"] == 1  # the stale .pyc, kept
    prefixed = _start(tmp, env={"PYTHONPYCACHEPREFIX": str(tmp / "prefix")})
    assert prefixed["value"] == 9 and prefixed["served"] == []  # Python compiles afresh there


def test_an_outdated_pyc_is_not_kept(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    (tmp / "lib" / "shop" / "till.py").write_text(_till(22))
    # Python compiles the edited source and cannot replace the .pyc: the old one stays beside it
    after = _start(tmp, write_bytecode=False)
    assert after["value"] == 22 and after["saved"] is True
    assert _start(tmp, write_bytecode=False)["value"] == 22


def test_a_tree_moved_with_its_pycache_has_its_new_place_in_its_code(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    shutil.copytree(tmp / "lib", tmp / "moved", copy_function=shutil.copy2)  # .pyc files keep their times
    moved = tmp / "moved" / "shop" / "till.py"
    assert _start(tmp, path=[tmp / "moved"])["saved"] is True
    after = _start(tmp, path=[tmp / "moved"])
    assert "shop.till" in after["served"]
    assert after["code_file"] == str(moved)  # as Python's loader fixes it


def test_code_compiled_with_o_is_kept_apart(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    optimized = _start(tmp, flags=("-O",))
    assert optimized["debug"] is False and optimized["served"] == []
    assert _start(tmp)["debug"] is True


@pytest.mark.parametrize("made", ["package folder", "init in a folder that was there"])
def test_a_package_made_beside_a_module_comes_first(tmp: Path, made: str) -> None:
    folder = tmp / "lib" / "shop" / "till"
    if made != "package folder":
        folder.mkdir()  # a plain folder of the module's name, there when the file is written
    assert _start(tmp)["saved"] is True
    assert _start(tmp)["value"] == 1
    folder.mkdir(exist_ok=True)
    (folder / "__init__.py").write_text(_till("package"))
    after = _start(tmp)
    assert after["value"] == "package" and "shop.till" not in after["served"]


def test_a_module_found_through_a_folder_put_on_the_path_later_is_not_kept(tmp: Path) -> None:
    ahead = tmp / "ahead"
    (ahead / "shop").mkdir(parents=True)
    (ahead / "shop" / "__init__.py").write_text("")
    (ahead / "shop" / "till.py").write_text(_till("ahead"))
    assert _start(tmp, ahead=ahead)["value"] == "ahead"
    after = _start(tmp)  # the path as the start has it: shop is in lib
    assert after["value"] == 1 and "shop" not in after["served"]
    assert "textual.app" in after["served"]


def test_a_package_made_ahead_on_the_path_while_running_is_imported(tmp: Path) -> None:
    ahead = tmp / "ahead"
    ahead.mkdir()
    assert _start(tmp, path=[ahead, tmp / "lib"])["saved"] is True
    after = _start(tmp, path=[ahead, tmp / "lib"], make_in=ahead)  # after importlib.invalidate_caches()
    assert after["value"] == "made" and "shop" not in after["served"]
    assert "textual.app" in after["served"]


def test_a_folder_ahead_on_the_path_that_becomes_a_package_comes_first(tmp: Path) -> None:
    ahead = tmp / "ahead"
    (ahead / "shop").mkdir(parents=True)  # a plain folder of the same name: no package, lib's shop wins
    assert _start(tmp, path=[ahead, tmp / "lib"])["saved"] is True
    assert _start(tmp, path=[ahead, tmp / "lib"])["value"] == 1
    (ahead / "shop" / "__init__.py").write_text("")
    (ahead / "shop" / "till.py").write_text(_till("ahead"))
    after = _start(tmp, path=[ahead, tmp / "lib"])
    assert after["value"] == "ahead" and "shop" not in after["served"]


def _run(tmp: Path, code: str, *, cwd: Path, path: list[Path]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp / "cache")], capture_output=True,
                         text=True, env=_env(tmp / "cache", path), cwd=cwd, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_working_folder_on_the_path_is_the_one_of_the_moment(tmp: Path) -> None:
    # '' on the path (python -c, the REPL) is the working folder, wherever that is when importing
    here, there = tmp / "here", tmp / "there"
    for folder in (here, there):
        folder.mkdir()
        (folder / "spot.py").write_text(f"WHERE = {folder.name!r}\n")
    code = f"""
        import json, os, sys
        from pathlib import Path
        from console import module_cache
        if len(sys.argv) > 1 and os.path.exists({str(tmp / "go-there")!r}):
            os.chdir({str(there)!r})
        import spot
        saved = module_cache.save(Path(sys.argv[1]) / "tradedesk", module_cache.imported())
        print(json.dumps({{"where": spot.WHERE, "served": "spot" in module_cache._finder.served, "saved": saved}}))
    """
    for _ in range(2):  # the first start also makes here/__pycache__, which changes the folder on the path
        assert _run(tmp, code, cwd=here, path=[])["saved"] is True
    assert _run(tmp, code, cwd=here, path=[])["served"] is True
    (tmp / "go-there").touch()
    moved = _run(tmp, code, cwd=here, path=[])
    assert moved["where"] == "there" and moved["served"] is False


def test_a_module_in_a_namespace_package_s_second_folder_does_not_rewrite_the_file(tmp: Path) -> None:
    first, second = tmp / "one", tmp / "two"
    (first / "spaces").mkdir(parents=True)  # a namespace package in two folders, the module in the second
    (second / "spaces").mkdir(parents=True)
    (second / "spaces" / "corner.py").write_text("VALUE = 'corner'\n")
    code = """
        import json, sys
        from pathlib import Path
        from console import module_cache
        import spaces.corner
        saved = module_cache.save(Path(sys.argv[1]) / "tradedesk", module_cache.imported())
        print(json.dumps({"value": spaces.corner.VALUE, "saved": saved}))
    """
    assert _run(tmp, code, cwd=ROOT, path=[first, second]) == {"value": "corner", "saved": True}
    assert _run(tmp, code, cwd=ROOT, path=[first, second]) == {"value": "corner", "saved": False}


def test_modules_without_a_current_pyc_do_not_rewrite_the_file_at_every_start(tmp: Path) -> None:
    first = _start(tmp, write_bytecode=False)  # shop's .pyc files are never written
    assert first["saved"] is True
    again = _start(tmp, write_bytecode=False)
    assert "shop" not in again["served"] and "textual.app" in again["served"]
    assert again["saved"] is False


def test_a_deleted_working_folder_does_not_stop_the_import(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"import os; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); import console; print('ok')"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env=_env(tmp_path / "cache", []))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_module_added_ahead_on_the_path_shadows_the_one_kept(tmp: Path) -> None:
    ahead = tmp / "ahead"
    ahead.mkdir()
    assert _start(tmp, path=[ahead, tmp / "lib"])["saved"] is True
    (ahead / "shop").mkdir()
    (ahead / "shop" / "__init__.py").write_text("")
    (ahead / "shop" / "till.py").write_text(_till("ahead"))
    after = _start(tmp, path=[ahead, tmp / "lib"])
    assert after["value"] == "ahead"
    assert after["served"] == [] and after["held"] == 0  # a folder on the path changed: none is trusted


def test_a_package_that_looks_in_another_folder_first_gets_the_module_from_there(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    alt = tmp / "alt"
    alt.mkdir()
    (alt / "till.py").write_text(_till("alt"))
    (tmp / "lib" / "shop" / "__init__.py").write_text(f"__path__.insert(0, {str(alt)!r})\n")
    after = _start(tmp)
    assert after["value"] == "alt" and "shop.till" not in after["served"]


def test_a_folder_put_on_the_path_after_the_start_is_looked_in(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    ahead = tmp / "ahead"
    (ahead / "shop").mkdir(parents=True)
    (ahead / "shop" / "__init__.py").write_text("")
    (ahead / "shop" / "till.py").write_text(_till("ahead"))
    after = _start(tmp, ahead=ahead)
    assert after["value"] == "ahead" and "shop" not in after["served"]
    assert "textual.app" in after["served"]  # imported before it was put there


def test_another_path_means_importing_as_usual(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    other = tmp / "other"
    other.mkdir()
    after = _start(tmp, path=[other, tmp / "lib"])
    assert after["value"] == 1 and after["served"] == [] and after["saved"] is True


def test_a_file_others_could_write_is_not_read(tmp: Path) -> None:
    assert _start(tmp)["saved"] is True
    os.chmod(_file(tmp), 0o664)
    after = _start(tmp, save=False)
    assert after["value"] == 1 and after["served"] == [] and after["held"] == 0


@pytest.mark.parametrize("damage", ["garbage", "header", "index", "short entry", "skipped", "cut", "flipped", "code"])
def test_a_damaged_or_foreign_file_means_importing_as_usual(tmp: Path, damage: str) -> None:
    first = _start(tmp)
    assert first["saved"] is True
    path = _file(tmp)
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header, index, skipped = marshal.loads(data[8:8 + length])
    body = data[8 + length:]

    def rewritten(body: bytes = body) -> bytes:
        head = marshal.dumps((header, index, skipped))
        return len(head).to_bytes(8, "little") + head + body

    if damage == "garbage":
        data = b"not a cache at all"
    elif damage == "header":
        header = (header[0], "3.11.0 (another build)", *header[2:])
        data = rewritten()
    elif damage == "index":
        index = {**index, "shop.till": (*index["shop.till"][:2], "mtime", *index["shop.till"][3:])}
        data = rewritten()
    elif damage == "short entry":
        index = {**index, "shop.till": index["shop.till"][:9]}
        data = rewritten()
    elif damage == "skipped":
        skipped = frozenset({1})
        data = rewritten()
    elif damage == "cut":  # the index is whole, the code it points to is not there
        data = data[:8 + length + 10]
    elif damage == "flipped":  # a byte of shop.till's code changed: its checksum no longer matches
        at = 8 + length + index["shop.till"][8] + index["shop.till"][9] // 2
        data = data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]
    else:  # the code's place holds something that is not code (with the right checksum)
        junk = marshal.dumps(42)
        index["shop.till"] = (*index["shop.till"][:8], len(body), len(junk), zlib.crc32(junk))
        data = rewritten(body + junk)
    path.write_bytes(data)
    after = _start(tmp)
    assert after["value"] == 1 and after["looks"] == first["looks"]
    assert "shop.till" not in after["served"]
    assert after["saved"] is True  # written afresh
    assert "shop.till" in _start(tmp)["served"]


def test_a_fifo_at_its_place_does_not_stop_the_start(tmp: Path) -> None:
    (tmp / "cache" / "tradedesk").mkdir(parents=True)
    os.mkfifo(_file(tmp), 0o600)
    after = _start(tmp, save=False)  # no writer ever opens the FIFO: a blocking open would hang here
    assert after["value"] == 1 and after["held"] == 0


def test_starts_importing_other_modules_do_not_rewrite_the_file_in_turn(tmp: Path) -> None:
    (tmp / "lib" / "shop" / "desk.py").write_text("VALUE = 'desk'\n")
    code = """
        import importlib, json, sys
        from pathlib import Path
        from console import module_cache
        module = importlib.import_module(sys.argv[2])
        saved = module_cache.save(Path(sys.argv[1]) / "tradedesk", module_cache.imported())
        print(json.dumps({"value": module.VALUE, "served": sorted(module_cache._finder.served), "saved": saved}))
    """

    def start(module: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp / "cache"), module],
                             capture_output=True, text=True, env=_env(tmp / "cache", [tmp / "lib"]), cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert start("shop.till")["saved"] is True
    assert start("shop.desk")["saved"] is True  # a module the file did not hold: written, till kept
    till = start("shop.till")
    assert till["value"] == 1 and "shop.till" in till["served"] and till["saved"] is False
    assert start("shop.desk")["saved"] is False
    (tmp / "lib" / "shop" / "desk.py").write_text("VALUE = 'edited desk'\n")
    assert start("shop.till")["saved"] is False  # an entry gone stale is not a reason to write
    desk = start("shop.desk")
    assert desk["value"] == "edited desk" and desk["saved"] is True
