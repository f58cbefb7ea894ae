"""Rough edges a new trader hits, driven by keys: the order entry's messages in the form's own
words (never pydantic's), an empty TIF meaning GTC, and the algorithm dialog's fields walked
with up/down like the entry's.

Same rules as test_console_flows: a ManualClock and a market that moves only when a test ticks it.
"""

from __future__ import annotations

from decimal import Decimal as D

from textual.pilot import Pilot
from textual.widgets import Input, Select

from console.app import TradedeskApp
from core import OrderStatus, TimeInForce
from widgets.algo_dialog import AlgoScreen
from widgets.order_entry import OrderEntry

from .test_console_contingent import ORDER, replace
from .test_console_flows import SIZE, app, entry_errors, settle, type_text  # noqa: F401


async def go_to(pilot: Pilot, field: str) -> None:
    """Move focus from the focused entry field to ``field`` with up/down, as a trader would."""
    entry = pilot.app.q(OrderEntry)  # type: ignore[attr-defined]
    here = (pilot.app.focused.id or "").removeprefix("in-")  # type: ignore[union-attr]
    steps = ORDER.index(field) - ORDER.index(here)
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    assert pilot.app.focused is entry.query_one(f"#in-{field}")


async def test_an_empty_tif_means_gtc(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "0.01")
        await go_to(pilot, "price")
        await type_text(pilot, "50000")
        await go_to(pilot, "tif")
        await replace(pilot, "")  # the trader clears the TIF field
        await pilot.pause()
        assert app.q(OrderEntry).errors == {}
        assert entry_errors(app) == ""
        await pilot.press("enter")
        await settle(pilot)

        [order] = await app.engine.get_active_orders()
        assert (order.price, order.time_in_force, order.status) == (D("50000"), TimeInForce.GTC, OrderStatus.OPEN)


async def test_a_bad_tif_is_explained_in_the_forms_words(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "0.01")
        await go_to(pilot, "price")
        await type_text(pilot, "50000")
        await go_to(pilot, "tif")
        await replace(pilot, "day")
        await pilot.press("enter")
        await settle(pilot)

        assert "TIF: gtc, ioc, fok or po (empty: gtc)" in entry_errors(app)
        assert "Input should" not in entry_errors(app)
        assert app.focused is app.q(OrderEntry).query_one("#in-tif")
        assert await app.engine.get_active_orders() == []
        await replace(pilot, "po")  # the shorthand for post-only
        await pilot.press("enter")
        await settle(pilot)
        [order] = await app.engine.get_active_orders()
        assert order.time_in_force is TimeInForce.PO


async def test_model_refusals_name_the_field_without_internal_names(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        entry = app.q(OrderEntry)
        await type_text(pilot, "0.01")
        await go_to(pilot, "type")
        await replace(pilot, "s")  # a stop needs Stop, not Price
        await pilot.press("enter")
        await pilot.pause()
        errors = entry_errors(app)
        assert "Stop: required for a stop order" in errors
        assert "stop_price" not in errors
        assert entry.query_one("#in-stop_price", Input).has_class("-invalid")

        assert app.focused is entry.query_one("#in-stop_price")  # Enter went to the field to fix
        await go_to(pilot, "type")
        await replace(pilot, "l")
        await go_to(pilot, "leverage")
        await replace(pilot, "0.5")
        await go_to(pilot, "price")
        await type_text(pilot, "50000")
        await pilot.press("enter")
        await pilot.pause()
        assert "Lev: must be >= 1, got 0.5" in entry_errors(app)

        assert app.focused is entry.query_one("#in-leverage")
        await replace(pilot, "1")
        await go_to(pilot, "symbol")
        await replace(pilot, "")
        await pilot.press("enter")
        await pilot.pause()
        assert entry_errors(app) == "Symbol: required"  # not pydantic's "String should have at least 1 character"
        assert await app.engine.get_active_orders() == []


async def test_algo_dialog_walks_its_fields_with_up_and_down(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        orders = app.focused
        await pilot.press("f6")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AlgoScreen)
        assert app.focused is screen.query_one("#algo-amount")
        walk = [("down", "#algo-twap-duration"), ("down", "#algo-twap-slices"), ("down", "#algo-twap-child_type"),
                ("up", "#algo-twap-slices"), ("up", "#algo-twap-duration"), ("up", "#algo-amount"),
                ("up", "#algo-side"), ("up", "#algo-symbol"), ("up", "#algo-kind")]
        for key, selector in walk:
            await pilot.press(key)
            await pilot.pause()
            assert app.focused is screen.query_one(selector), (key, selector, app.focused)
        kind = screen.query_one("#algo-kind", Select)
        await pilot.press("down")  # on the kind list, down opens it (its own key wins)
        await pilot.pause()
        assert kind.expanded
        await pilot.press("down", "enter")  # iceberg
        await pilot.pause()
        assert screen.kind == "iceberg"
        await pilot.press("tab")  # on the kind list down would open it again
        await pilot.press("down", "down", "down")  # side, amount, visible
        await pilot.pause()
        assert app.focused is screen.query_one("#algo-iceberg-visible")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen
        assert app.focused is orders
