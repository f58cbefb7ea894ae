"""The footer of keys (widgets.key_footer): one line, the HALT key first whatever has focus, the
focused pane's keys next, the palette's key on the right even when the line is too narrow, and a
click presses the key under the pointer.
Same rules as test_console_flows: a ManualClock and a market that moves only when a test ticks it.
"""

from __future__ import annotations

from console.app import TradedeskApp
from core import TradingState
from widgets.help_screen import HelpScreen
from widgets.key_footer import KeyFooter

from .test_console_flows import SIZE, app, settle  # noqa: F401


def footer_text(app: TradedeskApp) -> str:
    footer = app.screen.query_one(KeyFooter)
    return str(footer.render())


async def test_halt_first_then_the_focused_panes_keys(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        assert not footer.children  # one line, not a widget per key
        assert footer_text(app).startswith(" ^k HALT  ^q Quit  f8 Flatten all")
        await pilot.press("f3")  # the orders pane: its keys come before the app's, after HALT
        await pilot.pause()
        assert footer_text(app).startswith(" ^k HALT  c Cancel  m Modify  C Cancel symbol  f Filter  ^q Quit")
        assert footer_text(app).rstrip().endswith("▏^p palette")
        assert footer_text(app).count("^k HALT") == 1


async def test_a_narrow_line_drops_padding_then_the_last_keys_but_keeps_halt_and_the_palette(app: TradedeskApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        text = footer_text(app)
        assert len(text) == 80
        assert text.startswith("^k HALT c Cancel")  # compact: no padding round the keys
        assert "…" in text
        assert text.endswith("▏^p palette ")


async def test_a_click_presses_the_key_under_the_pointer(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = footer_text(app)
        assert await pilot.click(KeyFooter, offset=(text.index("f1 Help") + 1, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert await pilot.click(KeyFooter, offset=(text.index("^k HALT") + 1, 0))
        await settle(pilot)
        assert app.engine.trading_state is TradingState.HALTED
