"""Regular expressions' programs kept between starts (console.regex_cache): the next start
compiles none of the patterns the last one compiled, each pattern is the one Python makes, and
anything wrong with the file only means compiling as before.

Each start is a new process: the cache routes the ``re`` module's compiles for the whole process.
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

# Compiles patterns of every kind and says how each behaves, and what the cache did.
_SCRIPT = textwrap.dedent(r"""
    import json, re, sys
    from pathlib import Path

    from console import regex_cache  # importing the console installs it

    if len(sys.argv) > 2:  # as if taking a pattern apart gave another program than compiling it
        import types
        real = regex_cache._compiler
        regex_cache._compiler = types.SimpleNamespace(_code=lambda p, f: real._code(regex_cache._parser.parse("x"), f))

    patterns = [
        (r"(?P<side>buy|sell)\s+(?P<amount>\d+(?:\.\d+)?)\s*@\s*(?P<price>\d+)", re.IGNORECASE),
        (r"^\s*#.*$", re.MULTILINE),
        (r"(?<=\$)\d+ | (?<!\w)[A-Z]{3}/[A-Z]{3,4}\b", re.VERBOSE),
        (rb"\x1b\[(\d+);(\d+)R", 0),
        (r"(a)(b)?(?:c)(?P<d>d)\1", 0),
        (r"[^\W\d_]+", re.ASCII),
    ]
    samples = ["BUY 0.5 @ 50000", "  # note\nx", "$12 BTC/USDT", "abcda", "abda", "héllo wörld"]
    out = []
    for text, flags in patterns:
        p = re.compile(text, flags)
        subject = b"\x1b[12;40R" if isinstance(text, bytes) else "\n".join(samples)
        found = [m.group(0) for m in p.finditer(subject)]
        out.append([p.pattern if isinstance(text, str) else p.pattern.decode(), p.flags, p.groups,
                    dict(p.groupindex), [f if isinstance(f, str) else f.decode() for f in found]])
    try:  # a pattern that does not compile fails as it would, and nothing is kept for it
        re.compile(r"(unclosed")
    except re.error:
        bad = "error"
    else:
        bad = "compiled"
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()) as shown:  # re.DEBUG prints the program at each compile
        re.compile(r"debug(ged)?", re.DEBUG)
    debug = bool(shown.getvalue())
    saved = regex_cache.save(Path(sys.argv[1]) / "tradedesk", regex_cache.used()) if len(sys.argv) > 1 else None
    # after the first frame's snapshot (used()), nothing more is recorded: a pattern per palette search
    kept, counts = (len(regex_cache._programs), len(regex_cache._used)), dict(regex_cache.stats)
    regex_cache.used()
    later = re.compile(r"searched (for)? something").search("searched for something") is not None
    later = later and (len(regex_cache._programs), len(regex_cache._used)) == kept
    read = [(text, flags) in regex_cache._loaded for text, flags in patterns]  # each one's program was in the file
    print(json.dumps({"patterns": out, "bad": bad, "debug": debug, "later": later, "read": read, "loaded": len(regex_cache._loaded), "saved": saved,
                      **counts}))
""")


def _start(cache_home: Path, *, save: bool = True) -> dict[str, Any]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, *([str(cache_home)] if save else [])],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _file(cache_home: Path) -> Path:
    return cache_home / "tradedesk" / "regexes.marshal"


def test_a_second_start_compiles_nothing_and_the_patterns_are_the_same(tmp_path: Path) -> None:
    first = _start(tmp_path)
    assert first["loaded"] == 0 and first["compiled"] >= 6 and first["saved"] is True
    assert first["bad"] == "error"
    assert _file(tmp_path).stat().st_mode & 0o777 == 0o600
    second = _start(tmp_path)
    assert second["compiled"] == 0 and second["hits"] == first["compiled"]  # the one that failed is not counted
    assert first["read"] == [False] * 6 and second["read"] == [True] * 6
    assert second["patterns"] == first["patterns"]  # text, flags, groups, names, what each finds
    assert second["bad"] == "error"
    assert first["debug"] is second["debug"] is True  # printed at each start, as Python does
    assert first["later"] is second["later"] is True  # compiled and working, not kept
    assert second["saved"] is False


_WARNS = textwrap.dedent(r"""
    import json, re, sys, warnings
    from pathlib import Path

    from console import regex_cache

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        re.compile(r"[[a]-z]")  # FutureWarning: possible nested set
    saved = regex_cache.save(Path(sys.argv[1]) / "tradedesk", regex_cache.used())
    with warnings.catch_warnings(record=True) as later:  # after the first frame: re as it always is
        warnings.simplefilter("always")
        re.compile(r"[[b]-z]")
    print(json.dumps({"warnings": [str(w.message) for w in warned], "saved": saved,
                      "later_from": [w.filename for w in later]}))
""")


def test_a_pattern_python_warns_about_warns_at_every_start_once(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def start() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", _WARNS, str(tmp_path)], capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=60, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = start()
    assert len(first["warnings"]) == 1 and "nested set" in first["warnings"][0]
    assert start()["warnings"] == first["warnings"]  # not kept, so parsed (and warned about) again
    assert first["later_from"] == ["<string>"]  # the line that compiled it, as without the cache


def test_a_program_that_does_not_rebuild_python_s_pattern_is_not_kept(tmp_path: Path) -> None:
    # the program of "x" for every pattern, where compiling gives Python's own
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), "sabotage"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    after = _start(tmp_path)
    assert after["read"] == [False] * 6  # none was kept: each compiled as Python does
    assert after["patterns"] == _start(tmp_path / "clean")["patterns"]


def test_a_file_others_could_write_is_not_read(tmp_path: Path) -> None:
    assert _start(tmp_path)["saved"] is True
    os.chmod(_file(tmp_path), 0o664)
    after = _start(tmp_path, save=False)
    assert after["loaded"] == 0 and after["hits"] == 0


@pytest.mark.parametrize("damage", ["garbage", "a flipped byte", "another python", "other types",
                                    "a program the engine refuses"])
def test_a_damaged_or_foreign_file_means_compiling_as_before(tmp_path: Path, damage: str) -> None:
    first = _start(tmp_path)
    path = _file(tmp_path)
    header, table = cache_tables.read(path)
    if damage == "garbage":
        path.write_bytes(b"not marshal data")
    elif damage == "a flipped byte":  # the engine does not check all of a program: a damaged one could crash it
        cache_tables.flip_a_byte(path)
    elif damage == "another python":
        cache_tables.write(path, (header[0], "3.11.0 (another build)", *header[2:]), table)
    elif damage == "other types":
        cache_tables.write(path, header, {key: (flags, [str(c) for c in code], *rest)
                                          for key, (flags, code, *rest) in table.items()})
    else:  # well-formed, but not code the regex engine accepts
        cache_tables.write(path, header, {key: (flags, [999] * len(code), *rest)
                                          for key, (flags, code, *rest) in table.items()})
    after = _start(tmp_path)
    assert after["patterns"] == first["patterns"] and after["hits"] == 0
    assert after["saved"] is True  # written afresh
    assert _start(tmp_path)["compiled"] == 0


def test_a_fifo_at_its_place_does_not_stop_the_start(tmp_path: Path) -> None:
    _file(tmp_path).parent.mkdir(parents=True)
    os.mkfifo(_file(tmp_path), 0o600)
    after = _start(tmp_path, save=False)  # no writer ever opens the FIFO: a blocking open would hang here
    assert after["loaded"] == 0 and after["bad"] == "error"
