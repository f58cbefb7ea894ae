"""Parsed style sheets kept between starts (console.styles_cache): the next start parses nothing,
draws the same screen, and anything wrong with the file only means parsing as before."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import textual.css.stylesheet as stylesheet_module
from textual.css.stylesheet import Stylesheet

from console.app import TradedeskApp
from console.styles_cache import StylesCache
from core import Engine, ManualClock

SIZE = (120, 36)
CSS = "Static { color: $accent; }"


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts Textual's parser is handed (the stylesheet module's own reference to it)."""
    calls: list[str] = []
    real = stylesheet_module.parse

    def counting(scope, css, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(css)
        return real(scope, css, *args, **kwargs)

    monkeypatch.setattr(stylesheet_module, "parse", counting)
    return calls


async def _start(db: Path, folder: Path) -> tuple[str, TradedeskApp]:
    """One start of the console until its first frame: the screen as text, and the app."""
    app = TradedeskApp(Engine.paper(db=db, seed=7, clock=ManualClock()), run_loops=False,
                       flush_interval=0, clock_interval=3600.0, cache_folder=folder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if app.styles_written is not None:
            await app.styles_written
        screen = app.export_screenshot()
    await app.engine.close()
    return screen, app


async def test_second_start_parses_no_sheet_and_draws_the_same_screen(tmp_path: Path, parses: list[str]) -> None:
    folder = tmp_path / "cache"
    first, app = await _start(tmp_path / "a.sqlite", folder)
    assert len(parses) > 20  # ours and every widget's DEFAULT_CSS
    path = folder / "styles.pickle"
    assert app.styles_written is not None and path.exists()
    assert path.stat().st_mode & 0o777 == 0o600

    parses.clear()
    second, app = await _start(tmp_path / "a.sqlite", folder)  # the same journal: the same screen
    assert parses == []
    assert app.styles_written is None  # nothing new was parsed: the file is left as it is
    assert second == first


async def test_corrupt_file_means_parsing_as_before_and_is_replaced(tmp_path: Path, parses: list[str]) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "styles.pickle").write_bytes(b"not a pickle")
    os.chmod(folder / "styles.pickle", 0o600)
    await _start(tmp_path / "a.sqlite", folder)
    assert len(parses) > 20
    parses.clear()
    await _start(tmp_path / "b.sqlite", folder)
    assert parses == []


def _sheet(variables: dict[str, str], css: str = CSS) -> Stylesheet:
    sheet = Stylesheet(variables=variables)
    sheet.add_source(css, read_from=("test.tcss", ""))
    sheet.parse()
    return sheet


def _written(folder: Path, sheet: Stylesheet) -> StylesCache:
    cache = StylesCache(sheet, folder)
    data = cache.snapshot()
    assert data is not None
    cache.write(data)
    return cache


def test_other_theme_variables_are_not_used(tmp_path: Path, parses: list[str]) -> None:
    _written(tmp_path, _sheet({"accent": "red"}))
    fresh = Stylesheet(variables={"accent": "blue"})
    assert StylesCache(fresh, tmp_path).load() == 0  # the parse substituted red: not for blue
    same = Stylesheet(variables={"accent": "red"})
    assert StylesCache(same, tmp_path).load() == 1


def test_an_edited_sheet_is_parsed_afresh_and_written_back(tmp_path: Path, parses: list[str]) -> None:
    _written(tmp_path, _sheet({"accent": "red"}))
    parses.clear()
    sheet = Stylesheet(variables={"accent": "red"})
    cache = StylesCache(sheet, tmp_path)
    assert cache.load() == 1
    edited = "Static { color: $accent; background: $accent; }"
    sheet.add_source(edited, read_from=("test.tcss", ""))
    sheet.parse()
    assert parses == [edited]
    assert sheet.rules[0].styles.background is not None
    data = cache.snapshot()  # the new text is a new entry: written for the next start
    assert data is not None
    cache.write(data)
    again = Stylesheet(variables={"accent": "red"})
    assert StylesCache(again, tmp_path).load() == 1  # the old text is dropped: the file does not grow with edits
    again.add_source(edited, read_from=("test.tcss", ""))
    again.parse()
    assert parses == [edited]


def test_file_others_could_have_written_is_not_read(tmp_path: Path) -> None:
    _written(tmp_path, _sheet({"accent": "red"}))
    os.chmod(tmp_path / "styles.pickle", 0o666)
    assert StylesCache(Stylesheet(variables={"accent": "red"}), tmp_path).load() == 0


def test_a_cache_from_another_install_is_not_used(tmp_path: Path) -> None:
    _written(tmp_path, _sheet({"accent": "red"}))
    path = tmp_path / "styles.pickle"
    with open(path, "rb") as f:
        header, entries = pickle.load(f), pickle.load(f)
    name, versions, stats = header[1]
    files = [file for file, *_ in stats]
    assert name == "textual" and versions
    assert {"css/parse.py", "css/styles.py", "css/_styles_builder.py", "layouts/grid.py", "color.py"} <= set(files)
    edited = files.index("css/parse.py")
    for other in ((name, ["textual-0.1.dist-info"], stats),  # another version
                  (name, versions, [(f, size, time + (i == edited)) for i, (f, size, time) in enumerate(stats)])):
        path.write_bytes(pickle.dumps((header[0], other, *header[2:])) + pickle.dumps(entries))
        assert StylesCache(Stylesheet(variables={"accent": "red"}), tmp_path).load() == 0
    path.write_bytes(pickle.dumps(header) + pickle.dumps(entries))
    assert StylesCache(Stylesheet(variables={"accent": "red"}), tmp_path).load() == 1


def test_a_folder_that_cannot_be_written_is_only_logged(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    cache = StylesCache(_sheet({"accent": "red"}), blocked)
    cache.write(b"data")  # no exception
    assert not list(tmp_path.glob("**/*.tmp"))


def test_rules_that_cannot_be_pickled_mean_no_cache_not_a_failure(tmp_path: Path) -> None:
    sheet = _sheet({"accent": "red"})
    cache = StylesCache(sheet, tmp_path)
    [key] = list(sheet._parse_cache.keys())
    sheet._parse_cache.discard(key)
    sheet._parse_cache.set(key, [lambda: None])  # a lambda does not pickle
    assert cache.snapshot() is None
