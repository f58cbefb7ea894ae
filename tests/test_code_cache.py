"""Generated code kept between starts (console.code_cache): the next start compiles none of what
the last one compiled, the generated functions are the ones Python makes, and anything wrong with
the file only means compiling as before.

Each start is a new process: the cache routes three standard modules' calls for the whole
process, so this one's are left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests import cache_tables

ROOT = Path(__file__).resolve().parents[1]

# Makes what the cache holds (a dataclass, a namedtuple, string annotations) and says what came of it.
_SCRIPT = textwrap.dedent("""
    import collections, dataclasses, json, sys, typing
    from pathlib import Path

    from console import code_cache  # importing the console installs it

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        tags: "tuple[str, ...]" = ()
        notes: list = dataclasses.field(default_factory=list, compare=False)

    Pair = collections.namedtuple("Pair", "left right")

    class Holder:
        point: "Point"
        pairs: "dict[str, Pair]"

    hints = typing.get_type_hints(Holder, localns={"Point": Point, "Pair": Pair})
    try:  # a source that does not compile fails as it would, and the rest is still kept
        typing.ForwardRef("not an expression!")
    except SyntaxError:
        pass
    else:
        raise AssertionError("compiled")
    works = (
        Point.__init__.__annotations__ == {"x": int, "tags": "tuple[str, ...]", "notes": list, "return": None}
        and Point(1) == Point(1, notes=[1]) and Point(1) != Point(2) and Point(1).notes == []
        and repr(Point(1, ("a",))) == "Point(x=1, tags=('a',), notes=[])" and hash(Point(3)) == hash(Point(3))
        and Pair(1, 2) == (1, 2) and Pair(1, right=2).right == 2
        and hints == {"point": Point, "pairs": dict[str, Pair]}
        # as the builtins: leading blanks skipped, and no namespace given means the caller's
        and collections.eval(" 1 + 1") == 2 and collections.eval("__name__") == "__main__"
        and (dataclasses.exec("here = __name__") or globals().get("here") == "__main__")
    )
    saved = code_cache.save(Path(sys.argv[1]) / "tradedesk", code_cache.used()) if len(sys.argv) > 1 else None
    # after the first frame's snapshot (used()), nothing more is recorded: an app running for hours
    kept, counts = (len(code_cache._compiled), len(code_cache._used)), dict(code_cache.stats)
    code_cache.used()
    Later = dataclasses.make_dataclass("Later", [("made_after_the_start", int)])
    works = works and Later(1).made_after_the_start == 1 and (len(code_cache._compiled), len(code_cache._used)) == kept
    print(json.dumps({"works": works, "loaded": len(code_cache._loaded), "saved": saved, **counts}))
""")


def _start(cache_home: Path, *, save: bool = True) -> dict[str, object]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, *([str(cache_home)] if save else [])],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_start_compiles_nothing_and_makes_the_same_functions(tmp_path: Path) -> None:
    first = _start(tmp_path)
    assert first["works"] is True
    assert first["loaded"] == 0 and first["compiled"] > 0 and first["saved"] is True
    path = tmp_path / "tradedesk" / "generated-code.marshal"
    assert path.stat().st_mode & 0o777 == 0o600

    second = _start(tmp_path)
    assert second["works"] is True  # annotations are types, not strings; eq, repr, hash, hints
    assert second["compiled"] == 0
    assert second["hits"] == first["compiled"] + first["hits"]
    assert second["loaded"] > 0
    assert second["saved"] is False  # it asked for what it read: the file is left as it is


def test_a_file_others_could_write_is_not_read(tmp_path: Path) -> None:
    assert _start(tmp_path)["saved"] is True
    path = tmp_path / "tradedesk" / "generated-code.marshal"
    os.chmod(path, 0o664)
    after = _start(tmp_path, save=False)
    assert after["works"] is True
    assert after["loaded"] == 0 and after["hits"] == 0 and after["compiled"] > 0


def test_a_corrupt_file_means_compiling_as_before_and_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "tradedesk"
    folder.mkdir()
    path = folder / "generated-code.marshal"
    path.write_bytes(b"not marshal data")
    os.chmod(path, 0o600)
    first = _start(tmp_path)
    assert first["works"] is True and first["loaded"] == 0 and first["hits"] == 0
    assert first["saved"] is True
    assert _start(tmp_path)["compiled"] == 0


def test_a_file_from_another_python_is_not_used(tmp_path: Path) -> None:
    assert _start(tmp_path)["saved"] is True
    path = tmp_path / "tradedesk" / "generated-code.marshal"
    header, entries = cache_tables.read(path)
    assert entries
    cache_tables.write(path, (header[0], "3.11.0 (another build)", *header[2:]), entries)
    after = _start(tmp_path)
    assert after["works"] is True and after["loaded"] == 0 and after["hits"] == 0
    assert after["saved"] is True  # written afresh for this Python
    assert cache_tables.read(path)[0] == header


@pytest.mark.parametrize("entries", [
    "values",  # a code object's place holds something else
    "keys",  # a key that is not (mode, source)
])
def test_a_file_holding_other_things_is_not_used(tmp_path: Path, entries: str) -> None:
    assert _start(tmp_path)["saved"] is True
    path = tmp_path / "tradedesk" / "generated-code.marshal"
    header, good = cache_tables.read(path)
    bad = {k: 0 for k in good} if entries == "values" else {**good, ("exec",): next(iter(good.values()))}
    cache_tables.write(path, header, bad)
    after = _start(tmp_path)
    assert after["works"] is True and after["loaded"] == 0 and after["hits"] == 0 and after["saved"] is True


def test_a_damaged_file_means_compiling_as_before(tmp_path: Path) -> None:
    assert _start(tmp_path)["saved"] is True
    cache_tables.flip_a_byte(tmp_path / "tradedesk" / "generated-code.marshal")  # its checksum no longer matches
    after = _start(tmp_path)
    assert after["works"] is True and after["loaded"] == 0 and after["hits"] == 0 and after["saved"] is True


def test_a_fifo_at_its_place_does_not_stop_the_start(tmp_path: Path) -> None:
    folder = tmp_path / "tradedesk"
    folder.mkdir()
    os.mkfifo(folder / "generated-code.marshal", 0o600)
    after = _start(tmp_path, save=False)  # no writer ever opens the FIFO: a blocking open would hang here
    assert after["works"] is True and after["loaded"] == 0


# Makes N dataclasses whose fields are named after KIND, as starts of different kinds generate
# different code; saves; says what came of it.
_KINDS = textwrap.dedent("""
    import dataclasses, json, marshal, sys
    from pathlib import Path

    from console import code_cache

    kind, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        dataclasses.make_dataclass(f"C{i}", [(f"{kind}_{i}", int)])
    folder = Path(sys.argv[1]) / "tradedesk"
    saved = code_cache.save(folder, code_cache.used())
    held = len(marshal.loads(marshal.loads((folder / code_cache.FILE_NAME).read_bytes())[2]))
    print(json.dumps({"compiled": code_cache.stats["compiled"], "saved": saved, "held": held}))
""")


def _kind(cache_home: Path, kind: str, n: int = 1) -> dict[str, Any]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _KINDS, str(cache_home), kind, str(n)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_starts_of_two_kinds_do_not_rewrite_the_file_in_turn(tmp_path: Path) -> None:
    assert _kind(tmp_path, "paper")["saved"] is True
    assert _kind(tmp_path, "live")["saved"] is True  # its own code, added to the paper start's
    again = _kind(tmp_path, "paper")
    assert again["compiled"] == 0 and again["saved"] is False
    assert _kind(tmp_path, "live")["saved"] is False


def test_code_no_start_asks_for_any_more_is_dropped_once_it_is_most_of_the_file(tmp_path: Path) -> None:
    big = _kind(tmp_path, "old", 40)  # say, a library since upgraded
    small = _kind(tmp_path, "new", 1)
    assert small["saved"] is True and small["held"] < big["held"] / 2
