"""A new order, a new log line and the entry's preview are drawn without laying the whole screen
out again (widgets.in_place); the layout still runs when a size does change: a scrollbar comes,
an error needs another line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.screen import Screen
from textual.widgets import Input, Static

from console.app import TradedeskApp
from core import ManualClock
from widgets.event_log import EventLog
from widgets.modify_dialog import ModifyScreen
from widgets.order_entry import OrderEntry
from widgets.orders_view import OrdersView

from .test_console_flows import SIZE, limit, make_app, order_lines, settle


@pytest.fixture
async def app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TradedeskApp]:
    app = make_app(tmp_path / "j.sqlite", clock)
    yield app
    await app.engine.close()


@contextmanager
def layouts(app: TradedeskApp) -> Iterator[list[Screen]]:
    """The screens laid out while in the block."""
    seen: list[Screen] = []
    screen = app.screen
    original = screen._refresh_layout

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(screen)
        return original(*args, **kwargs)

    screen._refresh_layout = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del screen._refresh_layout


async def test_a_new_order_and_its_counts_are_drawn_without_a_layout(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await app.engine.place_order(limit("BTC/USDT", "50900", "0.01"))
        await settle(pilot)
        title = app.main_screen.query_one("#orders-title", Static)
        assert "(1 of 1)" in str(title.content)
        with layouts(app) as laid_out:
            await app.engine.place_order(limit("BTC/USDT", "50901", "0.02"))
            await settle(pilot)
        view = app.q(OrdersView)
        assert len(view._rows) == 2 and view.virtual_size.height == 3  # the header and two rows
        assert "(2 of 2)" in str(title.content)
        assert sum("50901" in line.replace(",", "") for line in order_lines(app)) == 1, order_lines(app)
        assert laid_out == []


async def test_rows_past_the_pane_bring_its_scrollbar_and_a_layout(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.q(OrdersView)
        assert not view.show_vertical_scrollbar
        with layouts(app) as laid_out:
            for i in range(view.size.height + 5):
                await app.engine.place_order(limit("BTC/USDT", str(50900 - i), "0.01"))
            await settle(pilot)
        bar = view.vertical_scrollbar
        assert view.show_vertical_scrollbar and bar.size.height >= view.size.height - 1  # a row for the other bar
        assert bar.window_virtual_size == len(view._rows) + 1  # the thumb sized to every row
        assert laid_out  # the scrollbar takes a column from the rows
        assert view.max_scroll_y == len(view._rows) + 1 - view.scrollable_content_region.height
        view.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y > 0


async def test_a_log_line_is_drawn_and_scrolled_to_without_a_layout(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        log = app.q(EventLog)
        for i in range(log.size.height + 3):  # past its height: its scrollbar is always shown
            app.log_line("info", f"line {i}")
        await pilot.pause()
        with layouts(app) as laid_out:
            app.log_line("warning", "the newest line")
            await pilot.pause()
            await pilot.pause()
        assert log.virtual_size.height == len(log.lines)
        assert log.scroll_y == log.max_scroll_y  # still at the end, the new line shown
        assert "the newest line" in log.render_line(log.scrollable_content_region.height - 1).text
        assert laid_out == []


async def test_an_error_that_needs_another_line_lays_the_form_out(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        entry = app.q(OrderEntry)
        errors = entry.query_one("#entry-errors", Static)
        assert str(errors.content) == "" and errors.size.height == 1
        entry.query_one("#in-amount", Input).focus()
        await pilot.press("minus", "1", "tab")  # an amount <= 0, shown once the field is left
        await settle(pilot)
        assert "Amount" in str(errors.content) and errors.size.height == 1
        entry.query_one("#in-price", Input).focus()
        with layouts(app) as laid_out:  # a second error: a second line
            await pilot.press("minus", "5", "tab")
            await settle(pilot)
        assert "Price" in str(errors.content) and errors.size.height == 2
        assert laid_out
        entry.query_one("#in-amount", Input).focus()
        with layouts(app) as laid_out:  # other text, as many lines: no layout
            await pilot.press("end", "2", "tab")
            await settle(pilot)
        assert "Amount" in str(errors.content) and errors.size.height == 2
        assert laid_out == []


async def test_deleting_right_of_the_cursor_keeps_the_text_in_view(app: TradedeskApp) -> None:
    """The Input's scroll offset was kept in range by the layout its value change set off: a
    Delete (the cursor, hence the selection, unchanged) left it past the new end, and the field
    showed the value's last few characters followed by blanks, even after it lost focus."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        price = app.q(OrderEntry).query_one("#in-price", Input)
        price.focus()
        await pilot.press(*"50990.123456789012345")
        assert price.scroll_x > 0  # longer than the field
        await pilot.press(*["left"] * 6, *["delete"] * 6, "tab")
        await pilot.pause()
        assert price.value == "50990.123456789"
        assert price.scroll_x == price.max_scroll_x
        shown = price.render_line(0).text.strip()
        assert shown and "50990.123456789".endswith(shown) and len(shown) >= price.content_size.width - 2


async def test_the_modify_dialog_shows_the_focused_field_s_value(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        order = await app.engine.place_order(limit("BTC/USDT", "50990", "0.01"))
        await settle(pilot)
        await pilot.press("f3", "m")
        await pilot.pause()
        assert isinstance(app.screen, ModifyScreen)
        price = app.screen.query_one("#modify-price", Input)
        assert app.focused is price and price.value == f"{order.price:f}"
        assert price.size.height == 1 and price.render_line(0).text.strip() == "50990"
