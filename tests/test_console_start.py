"""The console's first frame: complete when it is drawn, and nothing else competing with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.app import TradedeskApp
from core import Engine, ManualClock
from widgets.event_log import EventLog


async def test_the_first_frame_shows_the_journal_line_and_the_halt_library_loads_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    painted: list[tuple[bool, str]] = []
    real_render_line = EventLog.render_line

    def render_line(self: EventLog, y: int):  # noqa: ANN202 - a Strip
        strip = real_render_line(self, y)
        painted.append((self._size_known, strip.text))
        return strip

    monkeypatch.setattr(EventLog, "render_line", render_line)
    warmed: list[bool] = []  # for each warm_halt call: had the first frame been drawn?
    engine = Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=ManualClock())
    real_warm = engine.warm_halt
    monkeypatch.setattr(engine, "warm_halt", lambda: (warmed.append(app.ready_seen), real_warm())[1])

    class App(TradedeskApp):
        ready_seen = False

        def on_ready(self) -> None:  # runs after TradedeskApp.on_ready, in the same event
            App.ready_seen = True

    app = App(engine, run_loops=False, flush_interval=0, clock_interval=3600.0)
    # as the tradedesk command runs it (run_async): the journal restored before the screen is built
    app._starting = asyncio.ensure_future(engine.start(warm_halt=False))
    await app._starting
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.pause()
        # painted by the first layout, before the log was told its size (a Resize after the frame)
        first_frame = " ".join(text.strip() for known, text in painted if not known)
        assert "journal" in first_frame and "0 orders restored, trading ACTIVE" in first_frame
        assert warmed == [True]  # once, and not while the screen was being built
    await engine.close()


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
