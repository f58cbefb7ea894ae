"""The tradedesk theme is the console's theme from the first frame (TradedeskApp sets it before
any style sheet is parsed, not through App.theme's watcher), and switching themes still works."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.color import Color

from console.app import TradedeskApp
from console.theme import TRADEDESK_THEME
from core import Engine, ManualClock
from widgets.halt_button import HaltButton


async def test_the_first_frame_has_the_tradedesk_colours(tmp_path: Path, clock: ManualClock) -> None:
    app = TradedeskApp(Engine.paper(db=tmp_path / "j.sqlite", clock=clock), run_loops=False, flush_interval=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "tradedesk" and app.current_theme is TRADEDESK_THEME
        assert app.has_class("-theme-tradedesk", "-dark-mode")
        assert app.screen.styles.background == Color.parse(TRADEDESK_THEME.background)
        halt = app.main_screen.query_one(HaltButton)
        assert halt.styles.background == Color.parse(TRADEDESK_THEME.variables["halt"])

        # Later changes go through App.theme's watcher, as in any Textual app.
        app.register_theme(replace(TRADEDESK_THEME, name="variant", background="#000000"))
        app.theme = "variant"
        await pilot.pause()
        assert app.screen.styles.background == Color.parse("#000000")
        # A built-in theme (the palette offers them) has none of $halt, $paper...: ours fill in.
        app.theme = "nord"
        await pilot.pause()
        assert app.current_theme.name == "nord"
        assert halt.styles.background == Color.parse(TRADEDESK_THEME.variables["halt"])
        app.theme = "tradedesk"
        await pilot.pause()
        assert app.screen.styles.background == Color.parse(TRADEDESK_THEME.background)
