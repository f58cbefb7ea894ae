"""The console's first frame: complete when it is drawn, and nothing else competing with it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from textual.pilot import Pilot

from console.app import TradedeskApp
from core import Engine, ManualClock
from widgets.event_log import EventLog


async def test_the_first_frame_shows_the_newest_log_lines_and_the_halt_library_loads_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run as the tradedesk command runs it (run_async: the engine starts before the screen is
    # built), with warnings held during the start: more early lines than the log has rows.
    painted: list[tuple[bool, str]] = []  # the rows the log showed: did it know its size then?
    real_render_line = EventLog.render_line

    def render_line(self: EventLog, y: int):  # noqa: ANN202 - a Strip
        strip = real_render_line(self, y)
        if y < self.scrollable_content_region.height:  # not a row under the sideways scrollbar
            painted.append((self._size_known, strip.text.strip()))
        return strip

    monkeypatch.setattr(EventLog, "render_line", render_line)
    warmed: list[bool] = []  # for each warm_halt call: had the first frame been drawn?
    engine = Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=ManualClock())
    real_start, real_warm = engine.start, engine.warm_halt

    async def start(**kw: bool) -> None:
        for i in range(6):
            logging.getLogger("core.venues").warning("stream %d down, polling instead", i)
        await real_start(**kw)  # its own warm-up, unless the console says not to, lands in warmed

    monkeypatch.setattr(engine, "start", start)
    monkeypatch.setattr(engine, "warm_halt", lambda: (warmed.append(app.ready_seen), real_warm())[1])

    class App(TradedeskApp):
        ready_seen = False

        def on_ready(self) -> None:  # runs just before TradedeskApp.on_ready (subclass first)
            App.ready_seen = True

    app = App(engine, run_loops=False, flush_interval=0, clock_interval=3600.0)
    async def look(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.pause()
        log = app.q(EventLog)
        assert log.scroll_offset.y == log.max_scroll_y > 0  # settled: the end is shown
        app.exit()

    try:
        await app.run_async(headless=True, size=(80, 24), auto_pilot=look)
    finally:
        await engine.close()
    # painted by the first layout, before the log was told its size (a Resize after the frame):
    # the newest lines (the journal's last), not the oldest warnings
    first_frame = [text for known, text in painted if not known]
    assert len(first_frame) == 5 and "journal" in " ".join(first_frame)  # 5 rows at 80x24
    assert first_frame[-1].endswith("orders restored, trading ACTIVE")
    assert first_frame[0].endswith("stream 4 down, polling instead")
    assert warmed == [True]  # once, and not while the screen was being built


async def test_the_console_starts_the_engine_without_loading_the_halt_library(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=ManualClock())
    calls: list[bool] = []
    app = TradedeskApp(engine, run_loops=False, flush_interval=0, clock_interval=3600.0)
    monkeypatch.setattr(engine, "warm_halt", lambda: calls.append(app.main_screen.is_mounted and app._dom_ready))
    async with app.run_test(size=(120, 36)) as pilot:  # the engine starts in on_mount here
        await pilot.pause()
        await pilot.pause()
        assert calls == [True]  # after the first frame only: not from the engine's own start
    await engine.close()
