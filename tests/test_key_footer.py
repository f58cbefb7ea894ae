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


async def test_every_drawn_key_is_whole_and_a_click_on_it_presses_it(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        for width in range(0, 120):  # every width from nothing to all keys
            text = str(footer.line(width))
            assert len(text) <= width
            for start, end, key in footer._spans:  # the span holds the key's own cells, and only them
                drawn = text[start:end].strip()
                assert drawn.startswith(key.display) and drawn.endswith(key.description), (width, drawn, key)
            if width >= len("^k HALT▏^p palette "):
                assert text.startswith(("^k HALT", " ^k HALT")) and text.endswith("▏^p palette ")
            elif width >= len("^k HALT"):
                assert text.startswith("^k HALT")  # the palette's key gives way first


async def test_hover_keeps_the_keys_colour(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        plain = footer.render().get_style_at_offset(app.console, 1)  # the "^" of " ^k "
        await pilot.hover(KeyFooter, offset=(1, 0))
        await pilot.pause()
        hovered = footer.render().get_style_at_offset(app.console, 1)
        assert hovered.color == plain.color and hovered.bold
        assert hovered.bgcolor != plain.bgcolor
