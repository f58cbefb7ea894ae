"""Contingent orders in the console, driven by keys: a bracket from the entry form, SL/TP on the
wrong side refused inline, a trailing stop typed in the form, OCO, and moving a position's
stop-loss / take-profit from the positions pane.

Same rules as test_console_flows: a ManualClock and a seeded market that moves only when a test
scripts the next price and ticks the engine; the bridge is flushed and action workers awaited.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from console.app import TradedeskApp
from core import Order, OrderStatus, OrderType
from widgets.help_screen import HelpScreen
from widgets.order_entry import FIELDS, OrderEntry
from widgets.orders_view import OrdersView
from widgets.positions_table import PositionsTable
from widgets.protection_dialog import ProtectionScreen

from .test_console_flows import app, entry_errors, log_text, market, order_lines, position_row, settle, tick, type_text  # noqa: F401

S = OrderStatus
BTC = "BTC/USDT"
SMALL = (130, 36)  # the smaller of the two layouts the form must fit; the flows tests use 160x45
ORDER = list(FIELDS)  # tab / down order of the entry's fields


async def go_to(pilot: Pilot, field: str) -> None:
    """Move focus from the amount field to ``field`` with up/down, as a trader would."""
    entry = pilot.app.q(OrderEntry)  # type: ignore[attr-defined]
    steps = ORDER.index(field) - ORDER.index("amount")
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    assert pilot.app.focused is entry.query_one(f"#in-{field}")


async def replace(pilot: Pilot, text: str) -> None:
    """Clear the focused field (its cursor is at the end) and type ``text``."""
    await pilot.press("end", "ctrl+u")
    await type_text(pilot, text)


def preview(app: TradedeskApp) -> str:
    return str(app.q(OrderEntry).query_one("#entry-preview", Static).content)


def contingent_id(order: Order) -> str:
    return (order.tag or "").split()[1]  # tags read "<kind> <contingent id> <role>"


async def test_bracket_from_the_entry_form_places_legs_after_the_fill(app: TradedeskApp) -> None:
    engine = app.engine
    async with app.run_test(size=SMALL) as pilot:
        await type_text(pilot, "0.5")
        await go_to(pilot, "price")
        await type_text(pilot, "50990")
        await pilot.press("down", "down")  # stop -> TP
        await type_text(pilot, "51500")
        await pilot.press("down")
        await type_text(pilot, "50500")
        await pilot.pause()
        assert preview(app).startswith("bracket: entry limit 50990, SL 50500, TP 51500")
        await pilot.press("enter")
        await settle(pilot)

        [entry] = await engine.get_active_orders()
        cid = contingent_id(entry)
        assert (entry.type, entry.price, entry.amount, entry.tag) == (OrderType.LIMIT, D("50990"), D("0.5"), f"bracket {cid} entry")
        assert engine.get_contingent(cid).legs["stop_loss"].orders == []  # type: ignore[union-attr]  # nothing filled yet
        assert app.q(OrdersView).visible_ids() == [entry.id]
        assert f"bracket: entry limit 50990, SL 50500, TP 51500 — bracket {cid}: entry {entry.id}" in log_text(app)

        await tick(pilot, {BTC: ["50989.9"]})  # a partial fill: legs for what filled
        c = engine.get_contingent(cid)
        assert c is not None
        sl, tp = (engine._orders[c.legs[r].orders[-1]] for r in ("stop_loss", "take_profit"))
        assert (sl.type, sl.side.value, sl.stop_price, sl.remaining, sl.tag) == (
            OrderType.STOP, "sell", D("50500"), D("0.25"), f"bracket {cid} stop-loss")
        assert (tp.type, tp.stop_price, tp.remaining) == (OrderType.TAKE_PROFIT, D("51500"), D("0.25"))
        view = app.q(OrdersView)
        assert set(view.visible_ids()) == {entry.id, sl.id, tp.id}
        assert position_row(app, BTC)["Size"] == "0.25"

        await tick(pilot, {BTC: ["50980"]})  # the rest fills: the legs grow with it
        assert {view.order(o.id).remaining for o in (sl, tp)} == {D("0.5")}  # type: ignore[union-attr]
        await tick(pilot, {BTC: ["51600"]})  # through the take-profit: it fills, the stop-loss goes
        assert view.order(tp.id).status is S.FILLED  # type: ignore[union-attr]
        assert view.order(sl.id).status is S.CANCELLED  # type: ignore[union-attr]
        assert view.row_count == 0 and app.q(PositionsTable).row_count == 0
        assert engine.get_contingent(cid).done == "position closed by its exit legs"  # type: ignore[union-attr]


@pytest.mark.parametrize(("side", "field", "value", "problem"), [
    ("b", "stop_loss", "51500", "SL: stop-loss 51500 is on the wrong side of entry 51000: it must be below it for a long"),
    ("b", "take_profit", "50500", "TP: take-profit 50500 is on the wrong side of entry 51000: it must be above it"),
    ("s", "stop_loss", "50500", "SL: stop-loss 50500 is on the wrong side of entry 51000: it must be above it for a short"),
    ("s", "take_profit", "0", "TP: must be > 0, got 0"),
])
async def test_sl_or_tp_on_the_wrong_side_names_the_field_and_places_nothing(
    app: TradedeskApp, side: str, field: str, value: str, problem: str
) -> None:
    engine = app.engine
    async with app.run_test(size=SMALL) as pilot:
        await type_text(pilot, "0.1")
        await go_to(pilot, "side")
        await replace(pilot, side)
        await pilot.press("down")
        await replace(pilot, "m")  # a market entry: the sides are judged against the last price, 51000
        await pilot.press("down", "down", "down", "down", "down", "down")  # type -> ... -> TP
        if field == "stop_loss":
            await pilot.press("down")
        await type_text(pilot, value)
        await pilot.press("enter")
        await settle(pilot)

        assert problem in entry_errors(app)
        bad = app.q(OrderEntry).query_one(f"#in-{field}", Input)
        assert bad.has_class("-invalid") and app.focused is bad  # Enter took the trader to it
        assert await engine.get_orders() == [] and engine.get_contingent("c1") is None
        assert app.q(OrdersView).row_count == 0


async def test_a_bracket_needs_a_market_or_limit_entry(app: TradedeskApp) -> None:
    async with app.run_test(size=SMALL) as pilot:
        entry = app.q(OrderEntry)
        for field, value in (("amount", "0.1"), ("type", "s"), ("stop_price", "51200"), ("stop_loss", "50500")):
            entry.set_value(field, value)
        assert entry.submit() is False
        assert "SL: a bracket needs a market or limit entry, not stop" in entry_errors(app)
        entry.set_value("type", "m")
        entry.set_value("stop_price", "")
        app.q(OrderEntry).query_one("#in-reduce_only").value = True  # type: ignore[attr-defined]
        assert entry.submit() is False
        assert "Reduce-only: a bracket's entry opens a position" in entry_errors(app)
        await settle(pilot)
        assert await app.engine.get_orders() == []


async def test_trailing_stop_typed_in_the_form_appears_as_an_order_and_trails(app: TradedeskApp) -> None:
    engine = app.engine
    async with app.run_test(size=SMALL) as pilot:
        await engine.place_order(market(BTC, "0.1"))  # a long to protect
        await settle(pilot)
        entry = app.q(OrderEntry)
        assert not entry.query_one("#in-trail").display  # the trailing row shows only for that type

        await type_text(pilot, "0.1")
        await go_to(pilot, "side")
        await replace(pilot, "s")
        await pilot.press("down")
        await replace(pilot, "tr")
        await pilot.pause()
        assert entry.query_one("#in-trail").display and entry.query_one("#in-activation").display
        await pilot.press(*["down"] * (ORDER.index("trail") - ORDER.index("type")))
        assert app.focused is entry.query_one("#in-trail")
        await type_text(pilot, "100")
        await pilot.pause()
        assert preview(app).startswith("trailing stop: sell at market when the price comes back 100 from its high")
        await pilot.press("enter")
        await settle(pilot)

        [ts] = await engine.get_active_orders()
        assert (ts.type, ts.side.value, ts.amount, ts.emulated, ts.reduce_only) == (OrderType.STOP, "sell", D("0.1"), True, True)
        assert ts.stop_price == D("50900")  # 100 under the last price, 51000
        view = app.q(OrdersView)
        assert view.visible_ids() == [ts.id]
        [line] = order_lines(app)
        assert line.split()[:6] == ["BTC/USDT", "sell", "0.1", "50900", "open", "emu"]  # the compact columns at 130 wide
        assert f"trailing stop: sell at market when the price comes back 100 from its high — {ts.id} open" in log_text(app)

        await tick(pilot, {BTC: ["51200"]})  # a new high: the stop follows it
        assert view.order(ts.id).stop_price == D("51100")  # type: ignore[union-attr]
        await tick(pilot, {BTC: ["51100"]})  # back to the stop: it fires and closes the long
        assert view.order(ts.id).status is S.FILLED  # type: ignore[union-attr]
        assert engine.ledger.signed_size(BTC) == 0 and app.q(PositionsTable).row_count == 0


async def test_trailing_stop_field_problems_are_named(app: TradedeskApp) -> None:
    async with app.run_test(size=SMALL) as pilot:
        entry = app.q(OrderEntry)
        for field, value in (("amount", "0.1"), ("side", "s"), ("type", "trailing"), ("price", "50000")):
            entry.set_value(field, value)
        assert entry.submit() is False
        errors = entry_errors(app)
        assert "Trail: required: an amount (100) or a percent (0.5%)" in errors
        assert "Price: not used by a trailing stop: clear it" in errors
        entry.set_value("price", "")
        entry.set_value("trail", "120%")
        assert entry.submit() is False and "Trail: a percent below 100, got 120%" in entry_errors(app)
        await settle(pilot)
        assert await app.engine.get_orders() == []


async def test_oco_typed_in_the_form_links_a_limit_and_a_stop(app: TradedeskApp) -> None:
    engine = app.engine
    async with app.run_test(size=SMALL) as pilot:
        await engine.place_order(market(BTC, "0.3"))
        await settle(pilot)
        entry = app.q(OrderEntry)
        for field, value in (("amount", "0.3"), ("side", "s"), ("type", "oco"), ("price", "50900"), ("stop_price", "50800")):
            entry.set_value(field, value)
        assert entry.submit() is False  # a sell limit under the last price would trade at once
        assert "Price: the limit must be above the last price 51000" in entry_errors(app)
        entry.set_value("price", "51100")
        entry.query_one("#in-reduce_only").value = True  # type: ignore[attr-defined]
        await pilot.pause()
        assert preview(app).startswith("OCO: sell limit 51100 / stop 50800, reduce-only: one fills, the other is cancelled")
        assert entry.submit() is True
        await settle(pilot)

        limit, stop = sorted(await engine.get_active_orders(), key=lambda o: o.type.value)
        assert (limit.type, limit.price, stop.type, stop.stop_price) == (OrderType.LIMIT, D("51100"), OrderType.STOP, D("50800"))
        assert limit.reduce_only and stop.reduce_only and contingent_id(limit) == contingent_id(stop)
        await tick(pilot, {BTC: ["51200"]})  # the limit fills: the stop is cancelled
        view = app.q(OrdersView)
        assert (view.order(limit.id).status, view.order(stop.id).status) == (S.FILLED, S.CANCELLED)  # type: ignore[union-attr]
        assert view.row_count == 0


async def test_move_stop_loss_from_the_positions_pane(app: TradedeskApp) -> None:
    engine = app.engine
    async with app.run_test(size=SMALL) as pilot:
        b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
        old_sl = b.legs["stop_loss"].orders[-1]
        await settle(pilot)
        await pilot.press("f4")
        assert app.focused is app.q(PositionsTable)
        await pilot.press("s")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ProtectionScreen) and dialog.role == "stop_loss"
        price = dialog.query_one("#protection-price", Input)
        assert app.focused is price and price.value == "50500"  # prefilled with the current stop-loss
        assert "last 51000; now at 50500 (1 order, all move)" in str(dialog.query_one("#protection-now", Static).content)

        await type_text(pilot, "51200")  # selected on focus: typing replaces it
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is dialog  # the core's refusal, as it words it, in the dialog that stays open
        assert "stop-loss 51200 must be below the last price 51000 for a long BTC/USDT position" in dialog.error_text
        assert "stop-loss 51200 must be below the last price 51000" in log_text(app)

        await replace(pilot, "50800")
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is app.main_screen
        [new_sl] = [o for o in await engine.get_active_orders() if o.type is OrderType.STOP]
        assert (new_sl.stop_price, new_sl.amount, new_sl.tag) == (D("50800"), D("0.2"), f"bracket {b.id} stop-loss")
        view = app.q(OrdersView)
        assert view.order(old_sl).status is S.CANCELLED  # type: ignore[union-attr]
        assert view.order(new_sl.id).stop_price == D("50800")  # type: ignore[union-attr]
        assert f"stop-loss BTC/USDT moved to 50800: {new_sl.id} open" in log_text(app)

        await pilot.press("t")  # the take-profit, the same way
        await settle(pilot)
        assert isinstance(app.screen, ProtectionScreen) and app.screen.role == "take_profit"
        assert app.screen.query_one("#protection-price", Input).value == "51500"
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is app.main_screen
        assert [o.stop_price for o in await engine.get_active_orders() if o.type is OrderType.TAKE_PROFIT] == [D("51500")]

        await tick(pilot, {BTC: ["50750"]})  # under the moved stop-loss: it closes the long
        assert view.order(new_sl.id).status is S.FILLED  # type: ignore[union-attr]
        assert engine.ledger.signed_size(BTC) == 0


async def test_move_take_profit_places_one_when_there_is_none(app: TradedeskApp) -> None:
    engine = app.engine
    async with app.run_test(size=SMALL) as pilot:
        await engine.place_order(market(BTC, "0.1", side="sell"))
        await settle(pilot)
        await pilot.press("f4", "t")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ProtectionScreen)
        assert dialog.query_one("#protection-price", Input).value == ""
        assert "no take-profit yet: one is placed for the whole position" in str(
            dialog.query_one("#protection-now", Static).content)
        await pilot.press("enter")
        assert dialog.error_text == "Price: required"
        await type_text(pilot, "50000")
        await pilot.press("enter")
        await settle(pilot)
        [tp] = await engine.get_active_orders()
        assert (tp.type, tp.side.value, tp.stop_price, tp.amount, tp.reduce_only) == (
            OrderType.TAKE_PROFIT, "buy", D("50000"), D("0.1"), True)
        assert app.q(OrdersView).visible_ids() == [tp.id]


async def test_help_lists_the_new_keys(app: TradedeskApp) -> None:
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table")
        rows = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]  # type: ignore[attr-defined]
        assert ("positions", "s", "Move SL", "positions.move_sl") in rows
        assert ("positions", "t", "Move TP", "positions.move_tp") in rows
        text = str(app.screen.query_one("#help-contingent", Static).content)
        assert "make a bracket" in text and "Type oco" in text and "Type tr: trailing stop" in text
