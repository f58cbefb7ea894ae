"""Keys that arrive together (a fast typist, a paste of keystrokes, a slow SSH link that sends
several in one packet) land where they would have landed one by one.

The terminal driver hands the app every key of a read at once, and Textual routes each key to
the widget focused when the app reads it: a Tab handled by a widget's binding moves the focus
only after the keys behind it were already routed to the old field. These tests post a burst
through the driver, as the terminal does, instead of Pilot's one-key-then-wait presses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from console.app import TradedeskApp
from core import ManualClock
from widgets.order_entry import OrderEntry
from widgets.orders_view import OrdersView

from .test_console_flows import SIZE, entry_errors, make_app, settle

_CHARACTERS = {"tab": "\t", "shift+tab": None, "enter": "\r", "down": None, "up": None, "f3": None, "f2": None}


@pytest.fixture
async def app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TradedeskApp]:
    app = make_app(tmp_path / "j.sqlite", clock)
    yield app
    await app.engine.close()


def burst(pilot: Pilot, *keys: str) -> None:
    """Every key posted before the app handles any of them, as the driver does with one read."""
    driver = pilot.app._driver
    assert driver is not None
    for key in keys:
        for k in [key] if key in _CHARACTERS else list(key):
            character = _CHARACTERS.get(k, k)
            driver.process_message(events.Key(k, character))


def field(app: TradedeskApp, name: str) -> str:
    return app.q(OrderEntry).query_one(f"#in-{name}", Input).value


async def test_tabs_typed_in_one_burst_move_to_the_next_fields(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.focused is not None and app.focused.id == "in-amount"
        burst(pilot, "0.01", "tab", "tab", "49000")
        await settle(pilot)
        assert field(app, "amount") == "0.01"
        assert field(app, "price") == "49000"
        assert app.focused.id == "in-price"


async def test_a_burst_with_enter_places_the_order_it_spells(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "0.02", "down", "down", "50900", "enter")
        await settle(pilot)
        orders = await app.engine.get_active_orders()
        assert [(str(o.amount), str(o.price)) for o in orders] == [("0.02", "50900")], entry_errors(app)


async def test_shift_tab_and_up_in_a_burst_go_back(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "tab", "tab", "47000", "shift+tab", "shift+tab", "0.03", "down", "down", "up", "up")
        await settle(pilot)
        assert (field(app, "amount"), field(app, "price")) == ("0.03", "47000")
        assert app.focused is not None and app.focused.id == "in-amount"


async def test_pane_key_in_a_burst_takes_the_keys_behind_it_along(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "f3", "x", "f2", "5")
        await settle(pilot)
        # "x" went to the orders pane (which ignores it), not into the amount field; "5" came back
        assert field(app, "amount") == "5"
        assert app.focused is not None and app.focused.id == "in-amount"
        burst(pilot, "f3")
        await settle(pilot)
        assert isinstance(app.focused, OrdersView)


async def test_entering_a_field_selects_it_so_typing_replaces_what_it_held(app: TradedeskApp) -> None:
    """As on an order ticket: "s" in Side replaces "buy", and after F2 a new amount replaces the
    last one. Typed after them, both were invalid ("buys", "0.010.02")."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"0.01", "tab", "tab", *"50900", "enter")
        await settle(pilot)
        await pilot.press("f2", *"0.02", "shift+tab", "shift+tab", "shift+tab", "s", "f2")  # amount, TIF, type, side
        await settle(pilot)
        assert (field(app, "amount"), field(app, "side"), field(app, "price")) == ("0.02", "s", "50900")
        await pilot.press("tab", "tab", *"51100", "enter")
        await settle(pilot)
        orders = sorted(await app.engine.get_active_orders(), key=lambda o: o.created_at)
        assert [(o.side.value, str(o.amount), str(o.price)) for o in orders] == [
            ("buy", "0.01", "50900"), ("sell", "0.02", "51100")], entry_errors(app)
